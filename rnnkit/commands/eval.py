"""``rnnkit eval RUN FILE``: loss, perplexity and bits per token/character on a text file."""

from __future__ import annotations

import json

from rnnkit.commands.helptext import CHECKPOINT_HELP, examples
from rnnkit.errors import UserError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "eval", help="measure a trained run on a text file",
        description="Score a trained language model on a text file (or folder): loss in nats per "
                    "token, perplexity, bits per token and per character. The text is read as "
                    "equal parallel streams, each with its state carried along; the tokens past "
                    "the last full stream are not scored, and the output says how many.",
        epilog=examples("rnnkit eval runs/shakespeare held_out.txt",
                        "rnnkit eval runs/shakespeare held_out.txt --batch-size 1 --json"))
    parser.add_argument("run", metavar="RUN", help="a run folder (its best checkpoint)")
    parser.add_argument("file", metavar="FILE", help="a text file (or folder) to score")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--batch-size", type=int, default=0,
                        help="parallel streams (default: the run's evaluation batch size)")
    parser.add_argument("--seq-len", type=int, default=0, help="default: the run's --seq-len")
    parser.add_argument("--encoding", default=None, help="default: the run's encoding")
    parser.add_argument("--checkpoint", choices=("best", "last"), default="best",
                        help=CHECKPOINT_HELP)
    parser.set_defaults(handler=run)


def run(args) -> int:
    from rnnkit.data.corpus import Corpus
    from rnnkit.data.language_data import encode_file
    from rnnkit.train.evaluate import evaluate, evaluation_streams
    from rnnkit.train.metrics import LOG2, perplexity
    from rnnkit.train.runs import load_run

    if args.batch_size < 0 or args.seq_len < 0:
        raise UserError("--batch-size and --seq-len must be positive (0: the run's value)")
    model, tokenizer, config = load_run(args.run, args.checkpoint)
    encoding = args.encoding or config.data.encoding
    tokens = encode_file(args.file, tokenizer, encoding, config.data.cache_dir, what="FILE")
    if len(tokens) < 2:
        raise UserError(f"FILE {args.file} has {len(tokens)} token(s); at least 2 are needed")
    batch_size = args.batch_size or config.train.eval_batch_size or config.train.batch_size
    loss, count = evaluate(model, tokens, batch_size, args.seq_len or config.train.seq_len)
    # the text is cut into equal streams; the tokens past the last full one are not read
    streams = evaluation_streams(tokens, batch_size)
    dropped = len(tokens) - streams * (len(tokens) // streams)
    characters = sum(len(chunk) for chunk in Corpus(args.file, encoding, what="FILE").chunks())
    # the tokens scored are all but the first of each stream: spread the characters alike
    scored_characters = characters * count / len(tokens)
    result = {
        "loss": loss,
        "perplexity": perplexity(loss),
        "bits_per_token": loss / LOG2,
        "bits_per_character": loss * count / LOG2 / scored_characters,
        "tokens": count,
        "dropped_tokens": dropped,  # the last partial stream, not scored
        "characters": characters,
        "level": tokenizer.level,
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{args.file}: loss {loss:.4f} nats/token, perplexity {result['perplexity']:.2f}, "
              f"{result['bits_per_token']:.4f} bits/token, {result['bits_per_character']:.4f} "
              f"bits/character over {count:,} {tokenizer.level} tokens")
        if dropped:
            print(f"note: the last {dropped:,} of the file's {len(tokens):,} tokens were not "
                  f"scored (they do not fill one of the {streams} equal streams "
                  f"evaluation reads; --batch-size 1 scores every token but the first)")
    return 0
