"""``rnnkit sample RUN``: generate text from a trained language model, streamed to stdout."""

from __future__ import annotations

import sys

import torch

from rnnkit.commands import int8flag
from rnnkit.commands.helptext import CHECKPOINT_HELP, examples
from rnnkit.data.tokenizers import END_OF_LINE, UNKNOWN, Tokenizer, UnknownTokenError
from rnnkit.errors import UserError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "sample", help="generate text from a trained run",
        description="Generate text from a trained language model, streamed to stdout: sampled "
                    "(--temperature, --top-k, --top-p), always the likeliest token (--greedy) or "
                    "by beam search (--beam).",
        epilog=examples("rnnkit sample runs/shakespeare --prime 'ROMEO:' --length 300 "
                        "--temperature 0.8", "rnnkit sample runs/shakespeare --greedy --length 100",
                        "rnnkit sample runs/shakespeare --beam 4 --length 60 --prime 'KING'"))
    parser.add_argument("run", metavar="RUN", help="a run folder (its best checkpoint)")
    parser.add_argument("--prime", default="", help="text to start from (default: a line break)")
    parser.add_argument("--length", type=int, default=500, help="tokens to generate (500)")
    # the sampling options default to None ("not given") so that a conflict is one the user
    # typed: --greedy or --beam with a sampling option is refused, never silently ignored
    parser.add_argument("--temperature", type=float, default=None,
                        help="below 1: safer text (default: 1.0)")
    parser.add_argument("--top-k", type=int, default=None,
                        help="sample among the K likeliest (default: 0, off)")
    parser.add_argument("--top-p", type=float, default=None,
                        help="nucleus sampling mass (default: 1.0, off)")
    parser.add_argument("--greedy", action="store_true", help="always the likeliest token")
    parser.add_argument("--beam", type=int, default=None, metavar="W",
                        help="beam search of width W >= 1 (prints when done; default: off)")
    parser.add_argument("--seed", type=int, default=None,
                        help="random seed for sampling (default: a fresh one each run)")
    parser.add_argument("--checkpoint", choices=("best", "last"), default="best",
                        help=CHECKPOINT_HELP)
    parser.add_argument("--runtime", choices=("torch", "onnxruntime"), default="torch",
                        help="onnxruntime: run the file `rnnkit export` wrote (RUN/model.onnx)")
    parser.add_argument("--onnx", metavar="PATH", default=None,
                        help="the exported file for --runtime onnxruntime (default: "
                             "RUN/model.onnx)")
    int8flag.add_argument(parser)
    parser.set_defaults(handler=run)


def onnx_model(args, model_or_config, default_name: str = "model.onnx"):
    """The exported file for ``--runtime onnxruntime``: --onnx, else RUN/model.onnx."""
    from pathlib import Path

    from rnnkit import onnx as rnnkit_onnx

    rnnkit_onnx.require()
    path = Path(args.onnx) if args.onnx else Path(args.run) / default_name
    if not path.is_file():
        raise UserError(f"{path}: no exported model; run `rnnkit export {args.run}` first "
                        "or name the file with --onnx")
    return path


class TextStream:
    """Turns generated ids into text pieces as they come (byte-level BPE may need several
    ids for one character; words need a space between them)."""

    def __init__(self, tokenizer: Tokenizer, after: str) -> None:
        self.tokenizer = tokenizer
        self.pending: list[int] = []
        self.at_line_start = after == "" or after.endswith("\n")

    def push(self, token: int) -> str:
        tokenizer = self.tokenizer
        if tokenizer.level == "word":
            word = tokenizer.vocab[token]
            if word == END_OF_LINE:
                self.at_line_start = True
                return "\n"
            piece = word if self.at_line_start else " " + word
            self.at_line_start = False
            return piece
        self.pending.append(token)
        text = tokenizer.decode(self.pending)
        if text.endswith("\ufffd") and len(self.pending) < 4:  # an unfinished UTF-8 sequence
            return ""
        self.pending = []
        return text


SAMPLING_DEFAULTS = {"temperature": 1.0, "top_k": 0, "top_p": 1.0}


def check_arguments(args) -> None:
    """Refuse bad values and conflicting choices (options the user gave, not defaults), then
    fill the sampling options left out with their defaults."""
    if args.length < 1:
        raise UserError(f"--length must be at least 1, got {args.length}")
    if args.temperature is not None:
        if args.temperature == 0:
            raise UserError("--temperature must be positive, got 0; for the likeliest token "
                            "at every step use --greedy")
        if not 0 < args.temperature < float("inf"):
            raise UserError(f"--temperature must be a finite positive number, "
                            f"got {args.temperature}")
    if args.top_k is not None and args.top_k < 0:
        raise UserError(f"--top-k must be 0 (off) or positive, got {args.top_k}")
    if args.top_p is not None and not 0 < args.top_p <= 1:
        raise UserError(f"--top-p must be in (0, 1], got {args.top_p}")
    if args.beam is not None and args.beam < 1:
        raise UserError(f"--beam must be at least 1 (the beam's width), got {args.beam}")
    if args.greedy and args.beam is not None:
        raise UserError("choose one of --greedy and --beam")
    given = [f"--{name.replace('_', '-')}" for name in SAMPLING_DEFAULTS
             if getattr(args, name) is not None]
    for choice, name in ((args.greedy, "--greedy"), (args.beam is not None, "--beam")):
        if choice and given:
            raise UserError(f"{name} does not sample, so {' and '.join(given)} would be "
                            f"ignored; drop {' and '.join(given)} or {name}")
    for name, default in SAMPLING_DEFAULTS.items():
        if getattr(args, name) is None:
            setattr(args, name, default)


def prime_ids(tokenizer: Tokenizer, prime: str) -> list[int]:
    text = prime or "\n"
    try:
        ids = tokenizer.encode(text)
    except UnknownTokenError as error:
        raise UserError(f"--prime {prime!r}: {error}") from None
    if tokenizer.level == "word":
        unknown = tokenizer.unknown_symbols(text)
        if unknown:
            print(f"rnnkit: note: --prime word(s) {', '.join(unknown[:5])} are not in the "
                  f"vocabulary and are read as {UNKNOWN}", file=sys.stderr)
        if not ids:
            ids = tokenizer.encode("\n")  # a blank prime: start after a line end (<eos>)
    return ids


def run(args) -> int:
    from rnnkit.models.language_model import beam_search, generate
    from rnnkit.train.runs import load_run

    check_arguments(args)
    model, tokenizer, _ = load_run(args.run, args.checkpoint)
    model = int8flag.apply(args, model)
    if args.runtime == "onnxruntime":
        from rnnkit.onnx.models import OnnxLanguageModel

        model = OnnxLanguageModel(onnx_model(args, model), model.config)
    elif args.onnx:
        raise UserError("--onnx is read with --runtime onnxruntime")
    ids = prime_ids(tokenizer, args.prime)
    stream = TextStream(tokenizer, args.prime)
    sys.stdout.write(args.prime)
    if args.beam is not None:
        tokens, _ = beam_search(model, ids, args.length, args.beam)
        sys.stdout.write("".join(stream.push(token) for token in tokens))
    else:
        generator = torch.Generator()
        if args.seed is not None:
            generator.manual_seed(args.seed)
        else:
            generator.seed()
        for token in generate(model, ids, args.length, temperature=args.temperature,
                              top_k=args.top_k, top_p=args.top_p, greedy=args.greedy,
                              generator=generator):
            sys.stdout.write(stream.push(token))
            sys.stdout.flush()
    if stream.pending:
        sys.stdout.write(tokenizer.decode(stream.pending))
    sys.stdout.write("\n")
    return 0
