"""Text in, token streams out: what a language-model run trains and validates on.

:func:`prepare_language_data` finds and checks the corpus, trains (or loads from the cache)
the tokenizer, tokenises into the memmap cache, and splits off validation: the last
``val_fraction`` of the token stream, or a separate ``--val`` file.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass

import numpy as np

from rnnkit.data.cache import encode_corpus, tokenizer_for
from rnnkit.data.corpus import Corpus
from rnnkit.data.tokenizers import Tokenizer, UnknownTokenError, train_tokenizer
from rnnkit.errors import UserError

logger = logging.getLogger(__name__)


@dataclass
class LanguageData:
    tokenizer: Tokenizer
    train: np.ndarray  # (T_train,) token ids, usually a memmap
    valid: np.ndarray  # (T_valid,)
    cache_hit: bool  # the training tokens came from the cache
    content_hash: str  # of the training corpus, to check a resumed run reads the same text


def encode_file(path, tokenizer: Tokenizer, encoding="utf-8", cache_dir=None, what="text file",
                progress=False, corpus: Corpus | None = None) -> np.ndarray:
    """Token ids of another text file (validation, evaluation) with ``tokenizer``
    (``corpus``: that file already checked)."""
    corpus = corpus or Corpus(path, encoding, what=what)
    try:
        tokens, _ = encode_corpus(corpus, tokenizer, cache_dir, progress=progress)
    except UnknownTokenError as error:
        raise UserError(f"{what} {path}: {error}") from None
    unknown: set[str] = set()
    if tokenizer.level == "word":
        for chunk in corpus.chunks():
            unknown.update(tokenizer.unknown_symbols(chunk))
    if unknown:
        logger.info("%s %s: %d distinct word(s) not in the vocabulary are read as <unk>",
                    what, path, len(unknown))
    return tokens


def prepare_language_data(
    config, tokenizer: Tokenizer | None = None, progress: bool = False
) -> LanguageData:
    """Tokenizer, training and validation token streams for a :class:`DataConfig`.

    A resumed run passes its saved ``tokenizer``; otherwise one is trained (or cached).
    """
    corpus = Corpus(config.path, config.encoding)
    # a missing or unreadable --val file is refused before the tokenizer is trained
    valid_corpus = Corpus(config.val, config.encoding, what="--val file") if config.val else None
    if tokenizer is None and config.vocab_from:
        extra = [Corpus(path, config.encoding, what="--vocab-from") for path in config.vocab_from]
        read = Corpus.lines if config.level == "bpe" else Corpus.chunks
        texts = itertools.chain(read(corpus), *(read(other) for other in extra))
        tokenizer = train_tokenizer(config.level, texts, **config.tokenizer_settings())
    elif tokenizer is None:
        tokenizer, _ = tokenizer_for(
            corpus, config.level, config.tokenizer_settings(), config.cache_dir
        )
    try:
        tokens, cache_hit = encode_corpus(corpus, tokenizer, config.cache_dir, progress=progress)
    except UnknownTokenError as error:
        raise UserError(f"corpus {config.path}: {error}") from None
    if config.val:
        valid = encode_file(config.val, tokenizer, config.encoding, config.cache_dir,
                            what="--val file", progress=progress, corpus=valid_corpus)
        train = tokens
    else:
        split = int(round(len(tokens) * (1.0 - config.val_fraction)))
        train, valid = tokens[:split], tokens[split:]
    if len(valid) < 2:
        raise UserError(
            f"the validation text has {len(valid)} tokens; raise --val-fraction or give --val FILE"
        )
    logger.debug(  # (the train command prints these numbers itself)
        "Corpus %s: %d %s tokens (vocabulary %d): %d for training, %d for validation%s",
        config.path, len(tokens), config.level, tokenizer.vocab_size, len(train), len(valid),
        " (from the token cache)" if cache_hit else "",
    )
    return LanguageData(tokenizer, train, valid, cache_hit, corpus.content_hash)
