"""``rnnkit train PATH``: train a character, word or BPE language model on a text corpus.

Settings come from the dataclass defaults, then ``--config run.toml``, then flags; the
resolved configuration is saved in the run folder (and printed at start with ``-v``, as TOML
reusable with ``--config``). ``--resume RUN`` continues a run exactly; Ctrl-C saves and exits.
"""

from __future__ import annotations

import argparse
import sys

from rnnkit.commands import launch
from rnnkit.commands.helptext import examples, with_default
from rnnkit.commands.output import NORMAL, budget_text, say, settings_dump, verbosity
from rnnkit.commands.trainflags import OPTIONAL, training_flags
from rnnkit.errors import UserError
from rnnkit.train.config import DEFAULT_EPOCHS, RunConfig, gives_budget
from rnnkit.train.metrics import bits_per_token, perplexity
from rnnkit.train.pipeline import resume_run, start_run

# flag -> (config key, type, help); every flag defaults to "not given" so TOML values hold
FLAGS = {
    "--level": ("data.level", str, "char | word | bpe (default char)"),
    "--val": ("data.val", str, "validation text file (default: the last --val-fraction)"),
    "--val-fraction": ("data.val_fraction", float, "share of the corpus kept for validation"),
    "--encoding": ("data.encoding", str, "text encoding of the corpus (default utf-8)"),
    "--min-count": ("data.min_count", int, "word level: rarer words become <unk>"),
    "--max-vocab": ("data.max_vocab", int, "word level: keep at most this many words"),
    "--vocab-size": ("data.vocab_size", int, "bpe level: vocabulary size (default 1000)"),
    "--cache-dir": ("data.cache_dir", str, "token cache (default $RNNKIT_CACHE or ~/.cache)"),
    "--cell": ("model.cell", str, "rnn | gru | lstm (default lstm)"),
    "--layers": ("model.layers", int, "recurrent layers (default 2)"),
    "--hidden": ("model.hidden", int, "hidden units per layer (default 256)"),
    "--embedding": ("model.embedding", int, "embedding size (default 64)"),
    "--dropout": ("model.dropout", float, "dropout on embeddings, between layers, on outputs"),
    "--forget-bias": ("model.forget_bias", float, "initial forget-gate (GRU: update) bias "
                      "(default: none, the layer's usual initialisation)"),
    "--init": ("model.init", str, "default | chrono (Tallec & Ollivier 2018)"),
    "--chrono-max-len": ("model.chrono_max_len", int, "chrono: longest memory (default seq-len)"),
    "--backend": ("model.backend", str, "auto | fused | reference"),
    "--zoneout": ("model.zoneout", float, "zoneout probability on h (arXiv 1606.01305)"),
    "--zoneout-cell": ("model.zoneout_cell", float, "lstm: zoneout probability on c"),
    "--recurrent-dropout": ("model.recurrent_dropout", float, "variational dropout on h_{t-1}"),
    "--weight-drop": ("model.weight_drop", float, "DropConnect on W_hh (AWD-LSTM)"),
    **{flag: (f"train.{field}", kind, text) for flag, (field, kind, text)
       in training_flags("streams", DEFAULT_EPOCHS, OPTIONAL).items()},
}


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "train", help="train a language model on a text file or folder",
        description=__doc__.splitlines()[0],
        epilog=examples("rnnkit train corpus.txt --time-budget 600",
                        "rnnkit train corpus/ --level bpe --vocab-size 2000 --out runs/bpe",
                        "rnnkit train --config run.toml --lr 1e-3",
                        "rnnkit train --resume runs/corpus-char --epochs 20"),
    )
    parser.add_argument("path", nargs="?", metavar="PATH",
                        help="a UTF-8 text file, or a folder: its .txt files (recursively, "
                             "sorted; other files are not read, the files read are listed)")
    parser.add_argument("--config", metavar="TOML", help="a run.toml with [data] [model] [train] "
                        "(default: none, the defaults below and the flags given)")
    parser.add_argument("--out", metavar="RUN", help="run folder (default runs/<corpus>-<level>)")
    parser.add_argument("--resume", metavar="RUN",
                        help="continue this run exactly (default: start a new run)")
    parser.add_argument("--tie-weights", action="store_const", const=True, default=None,
                        help="decoder shares the embedding matrix (needs --embedding = --hidden)")
    for switch, text in (("--layer-norm", "layer-normalised gates and cell (arXiv 1607.06450; "
                                          "default: on where the cell offers it: lstm, gru)"),
                         ("--peephole", "lstm: gates see the cell state (Gers & Schmidhuber)"),
                         ("--coupled-gates", "lstm: input gate = 1 - forget gate (CIFG)")):
        parser.add_argument(switch, action="store_const", const=True, default=None, help=text)
    parser.add_argument("--no-layer-norm", dest="layer_norm", action="store_const", const=False,
                        help="plain gates (the default has --layer-norm where the cell offers "
                             "it; this overrides a --config that sets layer_norm)")
    parser.add_argument("--bidirectional", action="store_const", const=True, default=None,
                        help=argparse.SUPPRESS)  # refused with a message: a language model
    parser.add_argument("--vocab-from", action="append", metavar="FILE",
                        help="also add this text's symbols to the vocabulary (repeatable; "
                             "default: none)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    launch.add_arguments(parser)
    defaults = RunConfig().to_dict()  # shown in --help; None here lets --config's values hold
    for name, (key, kind, text) in FLAGS.items():
        section, field = key.split(".")
        parser.add_argument(name, type=kind, default=None,
                            help=with_default(text, defaults[section][field], percent=True))
    parser.set_defaults(handler=run)


def overrides_from(args) -> dict:
    overrides = {key: getattr(args, name[2:].replace("-", "_")) for name, (key, _, _) in
                 FLAGS.items()}
    overrides["model.tie_weights"] = args.tie_weights
    overrides["model.bidirectional"] = args.bidirectional
    for name in ("layer_norm", "peephole", "coupled_gates"):
        overrides[f"model.{name}"] = getattr(args, name)
    overrides["data.path"] = args.path
    overrides["data.vocab_from"] = args.vocab_from
    overrides["out"] = args.out
    return {key: value for key, value in overrides.items() if value is not None}


def summary_line(config, default_budget: bool = False) -> str:
    """One line on what a run trains: model, data level, batch, optimiser, budget, folder."""
    model, train = config.model, config.train
    budget = budget_text(train) + (" (the default: no --max-steps, --epochs or --time-budget "
                                   "given)" if default_budget else "")
    variants = ", ".join(name.replace("_", " ") for name in model.variant_options())
    schedule = {"cosine": f", cosine to {train.min_lr:g}",
                "plateau": ", decayed on plateaus"}.get(train.schedule, "")
    return (f"rnnkit train: {model.cell} {model.layers}x{model.hidden}"
            f"{f' ({variants})' if variants else ''} on {config.data.level} tokens; batch "
            f"{train.batch_size} x {train.seq_len} steps, {train.optimizer} lr {train.lr:g}"
            f"{schedule}; budget {budget}; every setting in {config.out}/config.json (-v "
            f"prints them)")


def report_evaluations(trainer) -> None:
    """Print one line per evaluation: the step, the mean training loss since the previous
    evaluation (of the logged windows) and the validation loss."""
    windows: list[float] = []

    def on_step(_, record: dict) -> None:
        windows.append(record["loss"])

    def on_eval(trainer, record: dict) -> None:
        train = f"{sum(windows) / len(windows):.4f}" if windows else "-"
        windows.clear()
        best = " (best)" if record["val_loss"] <= record["best_val_loss"] else ""
        epochs = record["step"] / len(trainer.batches)
        print(f"step {record['step']} ({epochs:.2f} epochs): train loss {train}, validation "
              f"loss {record['val_loss']:.4f}{best}", flush=True)

    trainer.on_step.append(on_step)
    trainer.on_eval.append(on_eval)


def run(args) -> int:
    from rnnkit.train.config import RunConfig

    status = launch.launched(args)
    if status is not None:
        return status
    overrides = overrides_from(args)
    progress = not args.no_progress and sys.stderr.isatty()
    if args.resume:
        if args.config:
            raise UserError("--resume takes its settings from the run; drop --config")
        if args.path:
            raise UserError(f"--resume continues the run with its saved corpus; drop PATH "
                            f"{args.path}")
        if args.out:
            raise UserError("--resume continues the run in its own folder; drop --out")
        trainer = resume_run(args.resume, overrides, progress=progress)
        launch.quiet_unless_rank_zero()
        say(args, f"Resuming {args.resume} at step {trainer.progress.step}; budget "
                  f"{budget_text(trainer.config.train)}")
        settings_dump(args, "rnnkit train", trainer.run_dir)
    else:
        if not args.path and not args.config:
            raise UserError("give the corpus: rnnkit train PATH (a text file or folder)")
        merged = RunConfig.merge_sources(args.config, overrides)
        config = RunConfig.from_merged(merged)
        if not config.data.path:
            raise UserError("give the corpus: rnnkit train PATH, or [data] path in --config")
        trainer = start_run(config, progress=progress)
        launch.quiet_unless_rank_zero()
        say(args, summary_line(trainer.config, default_budget=not gives_budget(merged)))
        settings_dump(args, "rnnkit train", trainer.run_dir)
    data, model = trainer.data, trainer.model
    parameters = sum(p.numel() for p in model.parameters())
    say(args, f"{len(data.train):,} training and {len(data.valid):,} validation tokens, "
              f"vocabulary {data.tokenizer.vocab_size}"
              f"{' (token cache reused)' if data.cache_hit else ''}; {parameters:,} parameters")
    if verbosity(args) >= NORMAL and not (progress and sys.stdout.isatty()):
        report_evaluations(trainer)  # no progress bar in view: one line per evaluation
    result = trainer.fit()
    best = result.best_val_loss
    summary = (f"best validation loss {best:.4f} nats/token (perplexity {perplexity(best):.2f}, "
               f"{bits_per_token(best):.3f} bits/token)" if best < float("inf")
               else "no evaluation yet")
    if result.stopped == "interrupted":
        print(f"Interrupted at step {result.steps}; saved {result.run_dir}/last; {summary}. "
              f"Continue with: rnnkit train --resume {result.run_dir}")
        return 130
    print(f"Stopped at step {result.steps} ({result.stopped.replace('_', ' ')}); {summary}. "
          f"Sample with: rnnkit sample {result.run_dir}")
    return 0
