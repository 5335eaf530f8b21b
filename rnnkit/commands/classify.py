"""``rnnkit classify train | predict | eval``: sequence classification of texts.

``train`` reads a TSV/CSV with a text and a label column (or a folder with one subfolder per
class), fits a char, word or BPE tokenizer on the training texts and trains embedding ->
(bidirectional) rnnkit layer -> pooling over the real tokens -> linear; ``predict`` prints
a label and the class probabilities per input line; ``eval`` scores a labelled file.
"""

from __future__ import annotations

import json
import sys

from rnnkit.commands import int8flag, launch
from rnnkit.commands.helptext import CHECKPOINT_HELP, examples, with_default
from rnnkit.commands.output import budget_text, say, settings_dump
from rnnkit.commands.trainflags import training_flags
from rnnkit.errors import UserError
from rnnkit.train.config import CLASSIFIER_DEFAULT_EPOCHS

# flag -> (section, key, type, help)
TRAIN_FLAGS = {
    "--text-col": ("data", "text_col", str, "text column (default: text, document, ...)"),
    "--label-col": ("data", "label_col", str, "label column (default: label, class, ...)"),
    "--val": ("data", "val", str, "validation file (default: --val-fraction of DATA)"),
    "--val-fraction": ("data", "val_fraction", float, "share kept for validation (0.1)"),
    "--level": ("data", "level", str, "char | word | bpe (default char)"),
    "--min-count": ("data", "min_count", int, "char/word: rarer symbols become unknown"),
    "--max-vocab": ("data", "max_vocab", int, "word level: keep at most this many words"),
    "--vocab-size": ("data", "vocab_size", int, "bpe level: vocabulary size (default 8000)"),
    "--max-len": ("data", "max_len", int, "tokens read per text (default 400; 0: all)"),
    "--pretrained-embeddings": ("data", "pretrained_embeddings", str,
                                "word2vec/GloVe/fastText text file to start the embedding "
                                "(default: none, a random start)"),
    "--cell": ("model", "cell", str, "rnn | gru | lstm (default lstm)"),
    "--layers": ("model", "layers", int, "recurrent layers (default 1)"),
    "--hidden": ("model", "hidden", int, "hidden units per direction (default 128)"),
    "--embedding": ("model", "embedding", int, "embedding size (default 64)"),
    "--pooling": ("model", "pooling", str, "max | mean | last | mean-max (default max)"),
    "--dropout": ("model", "dropout", float, "dropout on pooled features, between layers"),
    "--embedding-dropout": ("model", "embedding_dropout", float, "dropout on embeddings"),
    "--ngrams": ("model", "ngrams", int, "a bag of hashed n-grams of 1 to N tokens beside "
                 "the recurrent features (fastText's); 0: none"),
    "--ngram-buckets": ("model", "ngram_buckets", int, "rows of the n-gram table"),
    "--ngram-dim": ("model", "ngram_dim", int, "n-gram embedding size"),
    "--members": ("model", "members", int, "an ensemble: this many networks from different "
                  "random starts, trained side by side, their probabilities averaged"),
    "--backend": ("model", "backend", str, "auto | fused | reference"),
    **{flag: ("train", field, kind, text) for flag, (field, kind, text)
       in training_flags("texts", CLASSIFIER_DEFAULT_EPOCHS, ("eval_batch_size",)).items()},
}


def register(subparsers) -> None:
    from rnnkit.classify.run import ClassifyConfig

    parser = subparsers.add_parser(
        "classify", help="train a text classifier, predict, eval",
        description=__doc__.splitlines()[0],
        epilog=examples("rnnkit classify train reviews.tsv --time-budget 600",
                        "rnnkit classify eval runs/classify-reviews test.tsv",
                        "rnnkit classify predict runs/classify-reviews texts.txt"))
    commands = parser.add_subparsers(dest="classify_command", metavar="COMMAND")
    parser.set_defaults(handler=lambda args: parser.print_help() or 2)

    train = commands.add_parser(
        "train", help="train a classifier on labelled texts",
        description="Train a text classifier (embedding, a bidirectional recurrent layer, "
                    "pooling over the real tokens, linear) on a TSV/CSV with text and label "
                    "columns, or on a folder with one subfolder of texts per class.",
        epilog=examples("rnnkit classify train reviews.tsv --time-budget 600",
                        "rnnkit classify train reviews.tsv --level word --pretrained-embeddings "
                        "vectors.txt --freeze-embeddings",
                        "rnnkit classify train --resume runs/classify-reviews --epochs 10"))
    train.add_argument("data", nargs="?", metavar="DATA",
                       help="a TSV/CSV with text and label columns, or a folder of classes")
    train.add_argument("--unidirectional", action="store_true",
                       help="read forward only (default: bidirectional)")
    train.add_argument("--freeze-embeddings", action="store_true",
                       help="keep the pretrained embedding fixed")
    train.add_argument("--out", metavar="RUN", help="run folder (default runs/classify-<file>)")
    train.add_argument("--resume", metavar="RUN",
                       help="continue this run exactly (default: start a new run)")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    launch.add_arguments(train)
    defaults = ClassifyConfig().to_dict()  # shown in --help (None: not given, for --resume)
    for name, (section, key, kind, text) in TRAIN_FLAGS.items():
        train.add_argument(name, type=kind, default=None,
                           help=with_default(text, defaults[section][key], percent=True))
    train.set_defaults(handler=run_train)

    predict = commands.add_parser(
        "predict", help="a label and probabilities per line (an empty line: a row without a "
        "label)",
        description="Print the predicted label and the class probabilities for each line of "
                    "FILE (- reads stdin), one row per line; an empty line gets a row without "
                    "a label.",
        epilog=examples("rnnkit classify predict runs/classify-reviews texts.txt",
                        "rnnkit classify predict runs/classify-reviews - --json"))
    predict.add_argument("run", metavar="RUN")
    predict.add_argument("file", metavar="FILE", help="one text per line; - reads stdin")
    predict.add_argument("--json", action="store_true", help="one JSON object per line")
    predict.add_argument("--checkpoint", choices=("best", "last"), default="best",
                         help=CHECKPOINT_HELP)
    predict.add_argument("--runtime", choices=("torch", "onnxruntime"), default="torch",
                         help="onnxruntime: run the file `rnnkit export` wrote (RUN/model.onnx)")
    predict.add_argument("--onnx", metavar="PATH", default=None,
                         help="the exported file for --runtime onnxruntime (default: "
                              "RUN/model.onnx)")
    int8flag.add_argument(predict)
    predict.set_defaults(handler=run_predict)

    evaluate = commands.add_parser(
        "eval", help="accuracy, macro-F1, confusion on labelled data",
        description="Score a trained classifier on labelled data (a TSV/CSV or a folder of "
                    "classes): accuracy, macro-F1 and the confusion matrix.",
        epilog=examples("rnnkit classify eval runs/classify-reviews test.tsv",
                        "rnnkit classify eval runs/classify-reviews test.csv --text-col review "
                        "--label-col stars --json"))
    evaluate.add_argument("run", metavar="RUN")
    evaluate.add_argument("file", metavar="FILE", help="labelled TSV/CSV or folder of classes")
    evaluate.add_argument("--text-col", help="default: the run's text column")
    evaluate.add_argument("--label-col", help="default: the run's label column")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")
    evaluate.add_argument("--checkpoint", choices=("best", "last"), default="best",
                          help=CHECKPOINT_HELP)
    evaluate.set_defaults(handler=run_eval)


def run_train(args) -> int:
    from rnnkit.classify.run import ClassifyConfig, resume_classifier, start_classifier

    status = launch.launched(args)
    if status is not None:
        return status
    progress = not args.no_progress and sys.stderr.isatty()
    given = {name: getattr(args, name[2:].replace("-", "_")) for name in TRAIN_FLAGS}
    given = {name: value for name, value in given.items() if value is not None}
    if args.resume:
        if args.data:
            raise UserError("--resume continues the run with its saved data and model; give "
                            "only budgets (--max-steps, --epochs, --time-budget, --patience)")
        # every setting given: budgets change, the others must repeat their saved values
        overrides = {".".join(TRAIN_FLAGS[name][:2]): value for name, value in given.items()}
        if args.unidirectional:
            overrides["model.bidirectional"] = False
        if args.freeze_embeddings:
            overrides["model.freeze_embeddings"] = True
        trainer = resume_classifier(args.resume, overrides, progress=progress)
        launch.quiet_unless_rank_zero()
        say(args, f"Resuming {args.resume} at step {trainer.progress.step}; budget "
                  f"{budget_text(trainer.train)}")
        settings_dump(args, "rnnkit classify train", trainer.run_dir)
    else:
        if not args.data:
            raise UserError("give the data: rnnkit classify train DATA (a TSV/CSV with text "
                            "and label columns, or a folder with one subfolder per class)")
        config = ClassifyConfig()
        config.data.path = args.data
        config.model.bidirectional = not args.unidirectional
        config.model.freeze_embeddings = args.freeze_embeddings
        if args.out:
            config.out = args.out
        for name, value in given.items():
            section, key, _, _ = TRAIN_FLAGS[name]
            setattr(getattr(config, section), key, value)
        trainer, vectors = start_classifier(config, progress=progress,
                                            embedding_given="--embedding" in given)
        launch.quiet_unless_rank_zero()
        data = trainer.task.data
        where = (f"columns {data.train.text_col!r} (text) and {data.train.label_col!r} (label)"
                 if data.train.text_col else "one subfolder per class")
        say(args, f"{config.data.path}: {len(data.train):,} training and {len(data.valid):,} "
                  f"validation texts, {where}; classes {', '.join(data.classes)}"
                  + (f"; {data.skipped_empty} empty text(s) skipped" if data.skipped_empty
                     else ""))
        parameters = sum(p.numel() for p in trainer.model.parameters())
        say(args, f"{data.tokenizer.level} tokens, vocabulary {data.encoder.vocab_size:,}; "
                  f"{parameters:,} parameters; budget {budget_text(trainer.train)}; run folder "
                  f"{trainer.run_dir} (-v prints every setting)")
        if vectors is not None:
            say(args, f"Pretrained embeddings: {vectors.share_found():.1%} of the vocabulary "
                      f"found in {config.data.pretrained_embeddings} ({vectors.file_tokens:,} "
                      f"vectors of {vectors.dimension})"
                      f"{'; frozen' if args.freeze_embeddings else ''}")
        settings_dump(args, "rnnkit classify train", trainer.run_dir)
    result = trainer.fit()
    metrics = result.last_metrics
    if metrics:
        print(f"Stopped at step {result.steps} ({result.stopped.replace('_', ' ')}); best "
              f"validation accuracy {1 - result.best_score:.4f}; last: accuracy "
              f"{metrics['val_accuracy']:.4f}, macro-F1 {metrics['val_macro_f1']:.4f}")
        print_confusion(trainer.task.data.classes, metrics["val_confusion"])
    if result.stopped == "interrupted":
        print(f"Continue with: rnnkit classify train --resume {result.run_dir}")
        return 130
    print(f"Evaluate with: rnnkit classify eval {result.run_dir} FILE")
    return 0


def print_confusion(classes: list[str], confusion: list[list[int]]) -> None:
    width = max(8, *(len(name) + 2 for name in classes))
    print("confusion (rows: true, columns: predicted)")
    print(" " * width + "".join(f"{name:>{width}}" for name in classes))
    for name, row in zip(classes, confusion):
        print(f"{name:>{width}}" + "".join(f"{count:>{width}}" for count in row))


def _read_lines(file: str) -> list[str]:
    if file == "-":
        return sys.stdin.read().splitlines()
    try:
        with open(file, encoding="utf-8") as handle:
            return handle.read().splitlines()
    except FileNotFoundError:
        raise UserError(f"FILE {file} does not exist") from None
    except IsADirectoryError:
        raise UserError(f"FILE {file} is a folder; expected one text per line") from None
    except UnicodeDecodeError as error:
        raise UserError(f"FILE {file} is not UTF-8 text ({error.reason})") from None


def run_predict(args) -> int:
    from rnnkit.classify.run import load_classifier, predict_probabilities

    run = load_classifier(args.run, args.checkpoint)
    model = int8flag.apply(args, run.model)
    if args.runtime == "onnxruntime":
        from rnnkit.commands.sample import onnx_model
        from rnnkit.onnx.models import OnnxClassifier

        model = OnnxClassifier(onnx_model(args, model), model.config)
    elif args.onnx:
        raise UserError("--onnx is read with --runtime onnxruntime")
    lines = _read_lines(args.file)
    # an empty (or blank) line has nothing to classify: its row says so, with no label
    texts = [line for line in lines if line.strip()]
    rows = iter(predict_probabilities(model, run.encoder.encode_many(texts)).tolist()
                if texts else [])
    empty = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            empty.append(number)
            print(json.dumps({"label": None, "probabilities": None, "empty": True})
                  if args.json else f"-\t{EMPTY_ROW}")
            continue
        row = next(rows)
        label = run.classes[max(range(len(row)), key=row.__getitem__)]
        if args.json:
            print(json.dumps({"label": label, "probabilities": dict(zip(run.classes, row))},
                             ensure_ascii=False))
        else:
            shares = " ".join(f"{name}:{p:.4f}" for name, p in zip(run.classes, row))
            print(f"{label}\t{shares}")
    if empty:
        shown = ", ".join(map(str, empty[:10])) + (" ..." if len(empty) > 10 else "")
        print(f"rnnkit: note: {len(empty)} empty line(s) not classified (line {shown})",
              file=sys.stderr)
    return 0


EMPTY_ROW = "(empty line: nothing to classify)"


def run_eval(args) -> int:
    from rnnkit.classify.data import read_labelled
    from rnnkit.classify.metrics import scores
    from rnnkit.classify.run import load_classifier, predict_probabilities

    run = load_classifier(args.run, args.checkpoint)
    data = run.config.data
    labelled = read_labelled(args.file, args.text_col or data.text_col,
                             args.label_col or data.label_col, what="FILE")
    index = {name: i for i, name in enumerate(run.classes)}
    unknown = sorted(set(labelled.labels) - index.keys())
    if unknown:
        raise UserError(f"FILE {args.file} has label(s) {', '.join(map(repr, unknown))} the "
                        f"model does not know; its classes are {', '.join(run.classes)}")
    import torch

    targets = torch.tensor([index[label] for label in labelled.labels])
    probabilities = predict_probabilities(run.model, run.encoder.encode_many(labelled.texts))
    result = scores(targets, probabilities.argmax(dim=1), len(run.classes))
    result["classes"] = run.classes
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
        return 0
    print(f"{args.file}: accuracy {result['accuracy']:.4f}, macro-F1 {result['macro_f1']:.4f} "
          f"over {result['count']:,} texts")
    print_confusion(run.classes, result["confusion"])
    return 0
