"""``rnnkit export RUN --onnx model.onnx``: a trained run as one ONNX file, checked.

Any run kind (language model, classifier, forecaster): the network with its embedding and
head in one self-contained ``.onnx`` file (dynamic batch and length), and beside it
``<name>.json`` with what a runtime needs besides the network (the vocabulary, the class
names, the scaler, input and output names). Then onnxruntime and PyTorch run the same sample
input and the largest difference is printed; above 1e-4 the command fails (exit 1).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from rnnkit.commands.helptext import CHECKPOINT_HELP, examples
from rnnkit.errors import UserError

TOLERANCE = 1e-4
DEFAULT_NAME = "model.onnx"


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "export", help="export a trained run to ONNX, checked",
        description="Export a trained run (language model, classifier or forecaster) to an ONNX "
                    "file, then check that onnxruntime gives the same outputs as PyTorch.",
        epilog=examples("rnnkit export runs/shakespeare",
                        "rnnkit export runs/nsmc --onnx deploy/nsmc.onnx --checkpoint last"))
    parser.add_argument("run", metavar="RUN", help="a run folder (its best checkpoint)")
    parser.add_argument("--onnx", metavar="PATH", default=None,
                        help=f"the file to write (default: RUN/{DEFAULT_NAME})")
    parser.add_argument("--checkpoint", choices=("best", "last"), default="best",
                        help=CHECKPOINT_HELP)
    parser.set_defaults(handler=run)


def _writable(path: Path) -> None:
    """Refuse an output path that cannot be written, before the slow export."""
    if path.is_dir():
        raise UserError(f"--onnx {path}: is a folder; name the .onnx file to write")
    existed = path.exists()
    try:
        with open(path, "ab"):
            pass
    except OSError as error:
        raise UserError(f"--onnx {path}: cannot write there ({error.strerror})") from None
    if not existed:
        path.unlink()


def load_any(path, tag: str = "best"):
    """(kind, loaded run) for a run folder of any app."""
    from rnnkit.train.checkpoint import load_checkpoint

    checkpoint = load_checkpoint(path, tag, trainer_state=False)
    kind = checkpoint.config.get("kind")
    if kind == "language_model":
        from rnnkit.train.runs import run_from_checkpoint

        return kind, run_from_checkpoint(checkpoint)
    if kind == "classifier":
        from rnnkit.classify.run import _from_checkpoint

        return kind, _from_checkpoint(checkpoint)
    if kind == "forecaster":
        from rnnkit.forecast.run import _from_checkpoint

        return kind, _from_checkpoint(checkpoint)
    raise UserError(f"{checkpoint.path}: unknown run kind {kind!r} (language_model, "
                    "classifier or forecaster)")


def _sample(kind, loaded):
    """(graph module, sample inputs for the export, other inputs for the check, sidecar)."""
    from rnnkit.onnx.models import ClassifierGraph, ForecasterGraph, LanguageModelGraph

    generator = torch.Generator().manual_seed(0)
    if kind == "language_model":
        graph = LanguageModelGraph(loaded.model)
        vocab = loaded.model.config.vocab_size

        def tokens(steps, batch):
            return torch.randint(0, vocab, (steps, batch), generator=generator)

        sidecar = {"tokenizer": loaded.tokenizer.to_dict(), "model": loaded.config.model.to_dict()}
        return (graph, graph.sample_inputs(tokens(6, 2)), graph.sample_inputs(tokens(9, 3)),
                sidecar)
    if kind == "classifier":
        graph = ClassifierGraph(loaded.model)
        vocab = loaded.model.config.vocab_size

        def batch(lengths):
            lengths = torch.tensor(lengths)
            tokens = torch.randint(3, vocab, (len(lengths), int(lengths.max())),
                                   generator=generator)
            tokens = tokens.masked_fill(torch.arange(tokens.shape[1]) >= lengths[:, None], 0)
            return tokens, lengths

        sidecar = {"classes": loaded.classes, "tokenizer": loaded.encoder.tokenizer.to_dict(),
                   "max_len": loaded.config.data.max_len}
        return graph, batch([5, 3]), batch([7, 2, 4]), sidecar
    graph = ForecasterGraph(loaded.model)
    config = loaded.model.config

    def series(batch):
        return torch.randn(batch, config.lookback, config.inputs, generator=generator)

    sidecar = {"scaler": loaded.scaler.to_dict(), "run": loaded.config.to_dict()}
    return graph, (series(2),), (series(3),), sidecar


def export_run(run_path, out: Path, tag: str = "best") -> float:
    """Export a run to ``out`` (and ``out``.json); the largest |onnxruntime - PyTorch|."""
    from rnnkit import onnx as rnnkit_onnx

    rnnkit_onnx.require()
    kind, loaded = load_any(run_path, tag)
    _writable(out)
    graph, example, check, sidecar = _sample(kind, loaded)
    inputs, outputs = graph.names()
    rnnkit_onnx.export(graph, example, out, input_names=inputs, output_names=outputs,
                       dynamic_shapes=graph.dynamic_shapes())
    meta = {"kind": kind, "inputs": inputs, "outputs": outputs, **sidecar}
    out.with_suffix(".json").write_text(json.dumps(meta, indent=1, ensure_ascii=False) + "\n",
                                        encoding="utf-8")
    return max_difference(graph, out, check, inputs)


def max_difference(graph, path, inputs, names) -> float:
    from rnnkit.onnx import session

    with torch.no_grad():
        expected = graph(*inputs)
    expected = expected if isinstance(expected, tuple) else (expected,)
    got = session(path).run(None, {name: t.numpy() for name, t in zip(names, inputs)})
    return max(float((torch.from_numpy(g) - e).abs().max()) for g, e in zip(got, expected))


def run(args) -> int:
    from rnnkit import onnx as rnnkit_onnx

    rnnkit_onnx.require()
    out = Path(args.onnx) if args.onnx else Path(args.run) / DEFAULT_NAME
    difference = export_run(args.run, out, args.checkpoint)
    print(f"Wrote {out} and {out.with_suffix('.json')}")
    verdict = "matches" if difference <= TOLERANCE else "DIFFERS FROM"
    print(f"onnxruntime {verdict} PyTorch on a sample input (other batch and length than "
          f"the export's): max |difference| {difference:.2e} (tolerance {TOLERANCE:.0e})")
    return 0 if difference <= TOLERANCE else 1
