"""``rnnkit gradflow``: how far back the error signal reaches, per cell, at initialisation.

For each cell, one batch of the task with the loss at the last step: ||dL/dh_t|| (and
||dL/dc_t|| for the LSTM) for every t, read from the layers' internals after the
hand-written backward; prints the decay per step and writes a log-scale plot.
"""

from __future__ import annotations

from pathlib import Path

from rnnkit.commands.helptext import BACKEND_HELP, examples
from rnnkit.diagnostics import plots
from rnnkit.errors import UserError
from rnnkit.tasks import TASKS, make_task
from rnnkit.tasks.models import DEFAULT_CELLS, parse_cells
from rnnkit.tasks.results import write_json


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "gradflow", help="gradient norm over time per cell, at initialisation",
        description=__doc__.split("\n\n")[1].replace("\n", " "),
        epilog=examples("rnnkit gradflow", "rnnkit gradflow --task recall --T 400 --cells "
                        "rnn,lstm --out recall.png"))
    parser.add_argument("--cells", default=",".join(DEFAULT_CELLS),
                        help=f"comma-separated (default {','.join(DEFAULT_CELLS)})")
    parser.add_argument("--T", type=int, default=200, help="sequence length (default 200)")
    parser.add_argument("--task", default="adding", help=f"one of {', '.join(TASKS)}")
    parser.add_argument("--batch-size", type=int, default=128, help="default 128")
    parser.add_argument("--hidden", type=int, default=64, help="default 64")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--out", type=Path, default=Path("gradflow.png"),
                        help="the plot (PNG); the numbers go beside it as .json")
    parser.add_argument("--backend", choices=("auto", "fused", "reference"), default="auto",
                        help=BACKEND_HELP)
    parser.set_defaults(handler=run)


def run(args) -> int:
    cells = parse_cells(args.cells)
    make_task(args.task, args.T)
    for name in ("batch_size", "hidden"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be at least 1, "
                            f"got {getattr(args, name)}")
    if args.out.suffix.lower() != ".png":
        raise UserError(f"--out {args.out}: expected a .png file name")
    if not args.out.parent.is_dir():
        raise UserError(f"--out {args.out}: the folder {args.out.parent} does not exist")
    from rnnkit.tasks.experiment import initial_gradient_flow

    flows = initial_gradient_flow(cells, args.task, args.T, args.seed, args.batch_size,
                                  args.hidden, args.backend)
    print(f"Gradient flow at initialisation: {args.task}, T={args.T}, loss at the last step, "
          f"mean over {args.batch_size} sequences")
    print(f"{'cell':<12} {'‖dL/dh‖ ×/step':>15} {'50 back':>9} {'T back':>9}"
          f" {'‖dL/dc‖ ×/step':>15} {'50 back':>9} {'T back':>9}")
    for cell, flow in flows.items():
        line = (f"{cell:<12} {flow.hidden_decay:>15.4f} {flow.ratio(50):>9.1e} "
                f"{flow.ratio(args.T):>9.1e}")
        if flow.cell_norm is not None:
            line += (f" {flow.cell_decay:>15.4f} {flow.ratio(50, 'cell'):>9.1e} "
                     f"{flow.ratio(args.T, 'cell'):>9.1e}")
        print(line)
    args.out.write_bytes(plots.gradient_flow(
        list(flows.items()), f"gradient flow at initialisation, {args.task} T={args.T}"))
    numbers = {cell: flow.to_dict() for cell, flow in flows.items()}
    write_json(args.out.with_suffix(".json"), numbers)
    print(f"Plot: {args.out}  numbers: {args.out.with_suffix('.json')}")
    return 0
