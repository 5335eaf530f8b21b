"""``rnnkit demo``: watch an RNN forget and an LSTM remember, measured, with pictures.

Trains a vanilla RNN, a GRU, a default LSTM and a chrono-initialised LSTM on the adding
problem and on delayed recall (T=100), measures the gradient flow over 200 steps at
initialisation, prints the table and writes ``DIR/results.json`` and ``DIR/report.html``.
No data to download; a few minutes on two CPU cores.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

from tqdm import tqdm

from rnnkit.commands.helptext import BACKEND_HELP, examples
from rnnkit.diagnostics import longrange, plots
from rnnkit.errors import UserError
from rnnkit.tasks import make_task
from rnnkit.tasks.models import DEFAULT_CELLS, TaskModel, parse_cells
from rnnkit.tasks.results import format_table, write_json
from rnnkit.tasks.runner import default_workers
from rnnkit.tasks.training import TrainSettings

TASKS = ("adding", "recall")
FLOW_LENGTH = 200


def add_training_arguments(parser, steps: int, learning_rate: float) -> None:
    """The options ``demo`` and ``longdep`` share."""
    parser.add_argument("--steps", type=int, default=steps,
                        help=f"training steps per run (default {steps})")
    parser.add_argument("--batch-size", type=int, default=64, help="default 64")
    parser.add_argument("--hidden", type=int, default=64, help="hidden units (default 64)")
    parser.add_argument("--lr", type=float, default=learning_rate,
                        help=f"Adam learning rate (default {learning_rate:g})")
    parser.add_argument("--clip", type=float, default=1.0, help="gradient-norm clip (default 1)")
    parser.add_argument("--eval-every", type=int, default=50,
                        help="steps between test-set evaluations (default 50)")
    parser.add_argument("--workers", type=int, default=default_workers(),
                        help=f"runs in parallel, one core each (default {default_workers()})")
    parser.add_argument("--backend", choices=("auto", "fused", "reference"), default="auto",
                        help=BACKEND_HELP)


def settings_from(args, stop_after_solved: int | None) -> TrainSettings:
    if args.workers < 1:
        raise UserError(f"--workers must be at least 1, got {args.workers}")
    return TrainSettings(
        steps=args.steps, batch_size=args.batch_size, hidden=args.hidden,
        learning_rate=args.lr, clip=args.clip, eval_every=args.eval_every,
        stop_after_solved=stop_after_solved, backend=args.backend,
    ).validate()


def result_line(result) -> str:
    solved = (f"solved at step {result.solved_step}" if result.solved_step is not None
              else "not solved")
    return (f"  {result.task} T={result.length}  {result.cell:<11} seed {result.seed}: "
            f"{result.metric} {result.final:.4f} (best {result.best:.4f}), {solved}, "
            f"{result.seconds:.0f} s")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo", help="watch an RNN forget and an LSTM remember (no data needed)",
        description=__doc__.split("\n\n")[1].replace("\n", " "),
        epilog=examples("rnnkit demo", "rnnkit demo --T 200 --cells rnn,lstm --out demo-T200"))
    parser.add_argument("--out", default="rnnkit-demo", type=Path,
                        help="folder for report.html and results.json (default rnnkit-demo)")
    parser.add_argument("--T", type=int, default=100, help="dependency length (default 100)")
    parser.add_argument("--cells", default=",".join(DEFAULT_CELLS),
                        help=f"comma-separated cells (default {','.join(DEFAULT_CELLS)})")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--flow-T", type=int, default=FLOW_LENGTH,
                        help=f"length of the gradient-flow measurement (default {FLOW_LENGTH})")
    add_training_arguments(parser, steps=1200, learning_rate=3e-3)
    parser.set_defaults(handler=run)


def run(args) -> int:
    cells = parse_cells(args.cells)
    tasks = [(name, args.T) for name in TASKS]
    for name, length in [*tasks, ("adding", args.flow_T)]:
        make_task(name, length)  # one-line errors for a bad --T before anything runs
    settings = settings_from(args, stop_after_solved=200)
    out = prepare_out(args.out)
    print("rnnkit demo: can a recurrent network remember what it saw 100 steps ago?")
    for name, length in tasks:
        print(f"  {make_task(name, length).describe()}")
    print(f"  cells: {', '.join(cells)}; up to {settings.steps} steps each (a run stops "
          f"200 steps after it solves its task), {args.workers} runs in parallel\n")
    started = time.perf_counter()
    from rnnkit.tasks.experiment import run_experiment

    data, models = run_experiment(
        tasks, cells, [args.seed], settings, flow_length=args.flow_T,
        workers=args.workers, on_result=lambda result: tqdm.write(result_line(result)),
        keep_models=lambda job: job.task == "recall" and job.cell == "lstm-chrono",
    )
    extra = []
    state = models.get(("recall", "lstm-chrono", args.seed))
    if state is not None:
        task = make_task("recall", args.T)
        model = TaskModel(task, "lstm-chrono", settings.hidden, settings.backend)
        model.load_state_dict(state)
        inputs, _ = task.subset(*task.test_set(16, args.seed), 1)
        extra.append(longrange.gate_section(
            model, task, inputs, f"Inside the trained chrono LSTM on delayed recall, T={args.T}"))
    write_outputs(out, data, extra, "rnnkit demo: an RNN forgets, an LSTM remembers")
    print()
    print(format_table(data["runs"]))
    print()
    print_flow_summary(data)
    print(f"\nDone in {time.perf_counter() - started:.0f} s. Report: {out / 'report.html'}  "
          f"(results: {out / 'results.json'})")
    return 0


def prepare_out(out: Path) -> Path:
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; expected a folder (it is created if missing)")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"--out {out}: cannot create the folder ({error.strerror})") from None
    return out


def write_outputs(out: Path, data: dict, extra_sections, title: str) -> None:
    """results.json, report.html and the two main pictures as PNG files."""
    write_json(out / "results.json", data)
    (out / "report.html").write_text(longrange.build(data, extra_sections, title),
                                     encoding="utf-8")
    panels = longrange.curve_panels(data["runs"])
    (out / "learning_curves.png").write_bytes(plots.learning_curves(panels))
    flow = data.get("gradient_flow")
    if flow:
        flows = [(cell, longrange.flow_from_dict(value)) for cell, value in flow["initial"].items()]
        (out / "gradient_flow.png").write_bytes(plots.gradient_flow(
            flows, f"gradient flow at initialisation, {flow['task']} T={flow['length']}"))


def print_flow_summary(data: dict) -> None:
    flow = data.get("gradient_flow")
    if not flow:
        return
    print(f"Gradient flow at initialisation (loss at step {flow['length']}; share of "
          "‖dL/dh‖ left 50 steps back, and of ‖dL/dc‖ over the whole sequence):")
    for cell, value in flow["initial"].items():
        measured = longrange.flow_from_dict(value)
        line = (f"  {cell:<11} ‖dL/dh‖ ×{measured.hidden_decay:.3f} per step, "
                f"{measured.ratio(50):.1e}")
        if measured.cell_norm is not None:
            spread = measured.spread("cell")
            shown = f"{spread:.3g}" if math.isfinite(spread) else "∞ (it underflows to 0)"
            line += (f";  ‖dL/dc‖ ×{measured.cell_decay:.3f} per step, max/min over "
                     f"{len(measured.cell_norm)} steps {shown}")
        print(line)
