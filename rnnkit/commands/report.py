"""``rnnkit report RUN``: one self-contained HTML file about a run, images embedded.

For a language-model run folder (from ``rnnkit train``): learning curves, gradient flow over
a passage, gate heatmaps and the cells that track the text, coloured over its characters,
gate saturation, and samples. For a folder written by ``rnnkit demo`` or ``rnnkit longdep``
(it holds ``results.json``): the results table, learning curves and gradient flow again.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from rnnkit.commands.helptext import examples
from rnnkit.errors import UserError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "report", help="write an HTML report (curves, gradient flow, gate heatmaps) of a run",
        description=__doc__.split("\n\n")[1].replace("\n", " "),
        epilog=examples("rnnkit report runs/shakespeare",
                        "rnnkit report runs/shakespeare --passage 'ROMEO:' --cells 3,17 --out "
                        "shakespeare.html", "rnnkit report rnnkit-demo"))
    parser.add_argument("run", type=Path, help="a run folder, a checkpoint, or a demo folder")
    parser.add_argument("--out", type=Path, default=None,
                        help="the HTML file (default RUN/report.html)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--text", type=Path, default=None,
                        help="a text file to take the passage from (default: the run's corpus)")
    source.add_argument("--passage", default=None,
                        help="the passage itself (default: taken from --text or the corpus)")
    parser.add_argument("--chars", type=int, default=600,
                        help="passage length in characters (default 600)")
    parser.add_argument("--cells", default="", help="comma-separated cell indices to show too "
                        "(default: none, only the cells the report finds)")
    parser.add_argument("--samples", type=int, default=2, help="samples to include (default 2)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the samples")
    parser.set_defaults(handler=run)


def run(args) -> int:
    if args.chars < 2:
        raise UserError(f"--chars must be at least 2, got {args.chars}")
    if args.samples < 0:
        raise UserError(f"--samples must be 0 or more, got {args.samples}")
    try:
        cells = [int(value) for value in args.cells.split(",") if value.strip()]
    except ValueError:
        raise UserError(f"--cells expects comma-separated integers, got {args.cells!r}") from None
    if (args.run / "results.json").is_file():
        html_text = long_range_report(args.run)
    else:
        html_text = language_model_report(args, cells)
    out = args.out or (args.run / "report.html")
    if out.parent and not out.parent.is_dir():
        raise UserError(f"--out {out}: the folder {out.parent} does not exist")
    out.write_text(html_text, encoding="utf-8")
    print(f"Report: {out}")
    return 0


def long_range_report(folder: Path) -> str:
    from rnnkit.diagnostics import longrange

    try:
        data = json.loads((folder / "results.json").read_text(encoding="utf-8"))
        return longrange.build(data, title=f"rnnkit: {folder.name}")
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise UserError(f"{folder / 'results.json'} is not an rnnkit results file ({error})")\
            from None


def choose_passage(args, corpus_path: str) -> str:
    if args.passage is not None:
        return args.passage[: args.chars] if args.passage else _empty()
    if args.text is not None and not args.text.is_file():
        raise UserError(f"--text {args.text} does not exist or is not a file")
    path = args.text or (Path(corpus_path) if corpus_path else None)
    if args.text is None and path is not None and path.is_dir():  # a folder corpus: its last
        from rnnkit.data.corpus import corpus_files  # text file, where validation text is

        path = corpus_files(path)[-1]
    if path is None or not path.is_file():
        raise UserError(
            f"{args.run}: the run's corpus {corpus_path or '(none recorded)'} is not here; "
            "give --text FILE or --passage TEXT")
    from rnnkit.diagnostics.text import corpus_passage

    return corpus_passage(path, args.chars) or _empty()


def _empty():
    raise UserError("the passage is empty: give --passage with some text or a non-empty --text")


def language_model_report(args, cells: list[int]) -> str:
    from rnnkit.diagnostics import run_report
    from rnnkit.models.language_model import generate
    from rnnkit.train.metrics import read_metrics
    from rnnkit.train.runs import load_run

    model, tokenizer, config = load_run(args.run)
    hidden = config.model.hidden
    outside = [cell for cell in cells if not 0 <= cell < hidden]
    if outside:
        raise UserError(f"--cells {','.join(map(str, outside))}: the model has {hidden} cells "
                        f"(0 to {hidden - 1})")
    passage = choose_passage(args, getattr(config.data, "path", ""))
    generator = torch.Generator().manual_seed(args.seed)
    samples = []
    prime = tokenizer.encode(passage[:1]) or [0]
    for _ in range(args.samples):
        ids = list(generate(model, prime, 300, temperature=0.8, generator=generator))
        samples.append(tokenizer.decode(prime + ids))
    return run_report.build(model, tokenizer, passage, title=f"rnnkit report: {args.run.name}",
                            records=read_metrics(args.run), samples=samples,
                            chosen_cells=cells, config=config.to_dict())
