"""``rnnkit longdep``: train cells on a long-range task over seeds; table, curves and JSON.

``rnnkit longdep --task adding --T 100 --cells rnn,gru,lstm,lstm-chrono --seeds 3`` trains
every cell with every seed for ``--steps`` steps (the reference settings: hidden 64, batch
64, Adam 1e-3, clip 1), prints final and best scores, the step each run solved the task and
its seconds, and writes ``DIR/results.json``, ``DIR/learning_curves.png`` and
``DIR/report.html``.
"""

from __future__ import annotations

from pathlib import Path

from tqdm import tqdm

from rnnkit.commands.demo import (
    add_training_arguments,
    prepare_out,
    result_line,
    settings_from,
    write_outputs,
)
from rnnkit.commands.helptext import examples
from rnnkit.errors import UserError
from rnnkit.tasks import TASKS, make_task
from rnnkit.tasks.models import DEFAULT_CELLS, build_layer, parse_cells
from rnnkit.tasks.results import format_table


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "longdep", help="train cells on a long-range dependency task over several seeds",
        description=__doc__.split("\n\n")[1].replace("\n", " "),
        epilog=examples("rnnkit longdep --task adding --T 100 --cells rnn,gru,lstm --seeds 3",
                        "rnnkit longdep --task copy --T 50 --cells lstm --layer-norm"))
    parser.add_argument("--task", default="adding",
                        help=f"one of {', '.join(TASKS)} (default adding)")
    parser.add_argument("--T", type=int, default=100, help="dependency length (default 100)")
    parser.add_argument("--cells", default=",".join(DEFAULT_CELLS),
                        help=f"comma-separated (default {','.join(DEFAULT_CELLS)})")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 (default 3)")
    parser.add_argument("--stop-when-solved", type=int, default=None, metavar="STEPS",
                        help="stop a run STEPS steps after it solves the task (default: never)")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default longdep-<task>-T<T>)")
    add_training_arguments(parser, steps=2000, learning_rate=1e-3)
    variants = parser.add_argument_group(
        "layer variants (each applied to the cells that take it; rnnkit.variants)")
    for switch, text in (("--layer-norm", "layer-normalised gates (gru, lstm)"),
                         ("--peephole", "gates see the cell state (lstm)"),
                         ("--coupled-gates", "input gate = 1 - forget gate (lstm)")):
        variants.add_argument(switch, action="store_true", help=text)
    for option, text in (("--zoneout", "zoneout probability on h"),
                         ("--zoneout-cell", "zoneout probability on c (lstm)"),
                         ("--recurrent-dropout", "variational dropout on h_{t-1}"),
                         ("--weight-drop", "DropConnect on W_hh")):
        variants.add_argument(option, type=float, default=0.0, metavar="P", help=text)
    parser.set_defaults(handler=run)


VARIANT_FLAGS = ("layer_norm", "peephole", "coupled_gates", "zoneout", "zoneout_cell",
                 "recurrent_dropout", "weight_drop")


def run(args) -> int:
    task = make_task(args.task, args.T)
    cells = parse_cells(args.cells)
    if args.seeds < 1:
        raise UserError(f"--seeds must be at least 1, got {args.seeds}")
    settings = settings_from(args, args.stop_when_solved)
    settings.variants = {name: getattr(args, name) for name in VARIANT_FLAGS
                         if getattr(args, name)}
    for cell in cells:  # refuse bad probabilities before any run starts
        build_layer(cell, 2, 2, 3, variants=settings.variants)
    out = prepare_out(args.out or Path(f"longdep-{args.task}-T{args.T}"))
    print(task.describe())
    print(f"cells: {', '.join(cells)}; seeds 0..{args.seeds - 1}; {settings.steps} steps, "
          f"batch {settings.batch_size}, hidden {settings.hidden}, "
          f"Adam {settings.learning_rate:g}, clip {settings.clip:g}; "
          f"{args.workers} runs in parallel"
          + (f"; variants {settings.variants}" if settings.variants else "") + "\n")
    from rnnkit.tasks.experiment import run_experiment

    data, _ = run_experiment(
        [(args.task, args.T)], cells, list(range(args.seeds)), settings,
        flow_length=args.T, workers=args.workers,
        on_result=lambda result: tqdm.write(result_line(result)),
    )
    write_outputs(out, data, [], f"rnnkit longdep: {task.summary}, T={args.T}")
    print()
    print(format_table(data["runs"]))
    print(f"\nResults: {out / 'results.json'}  curves: {out / 'learning_curves.png'}  "
          f"report: {out / 'report.html'}")
    return 0
