"""The on-disk token cache: trained tokenizers and token ids as numpy memmaps.

Entries are keyed by the corpus content hash and the tokenizer settings, so a second run on
the same text neither re-trains the tokenizer nor re-tokenises, and training reads token ids
from a memmap instead of holding the corpus in memory. Entries are written into a temporary
folder and renamed into place: a killed process never leaves half an entry. The cache lives
in ``--cache-dir``, else ``$RNNKIT_CACHE``, else ``$XDG_CACHE_HOME/rnnkit`` (``~/.cache``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np
from tqdm import tqdm

from rnnkit.data.corpus import Corpus
from rnnkit.data.tokenizers import BPETokenizer, Tokenizer, tokenizer_from_dict, train_tokenizer

logger = logging.getLogger(__name__)

CACHE_FORMAT = 1


def cache_root(cache_dir: str | Path | None = None) -> Path:
    if cache_dir:
        return Path(cache_dir)
    if os.environ.get("RNNKIT_CACHE"):
        return Path(os.environ["RNNKIT_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "rnnkit"


def _key(**parts) -> str:
    text = json.dumps({"cache_format": CACHE_FORMAT, **parts}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _publish(temporary: Path, final: Path) -> None:
    """Rename a finished entry into place; if another process won the race, keep theirs."""
    try:
        os.replace(temporary, final)
    except OSError:
        shutil.rmtree(temporary, ignore_errors=True)


def tokenizer_for(
    corpus: Corpus, level: str, settings: dict, cache_dir=None
) -> tuple[Tokenizer, bool]:
    """The tokenizer of ``level`` trained on ``corpus``, from the cache when it is there.

    Returns the tokenizer and whether it came from the cache.
    """
    key = _key(content=corpus.content_hash, encoding=corpus.encoding, level=level, **settings)
    folder = cache_root(cache_dir) / "tokenizers"
    path = folder / f"{key}.json"
    if path.is_file():
        try:
            return tokenizer_from_dict(json.loads(path.read_text(encoding="utf-8"))), True
        except Exception:  # a damaged entry is rebuilt, not trusted
            logger.warning("rnnkit: rebuilding the damaged tokenizer cache entry %s", path)
    logger.info("Training the %s tokenizer on %s (%d bytes)", level, corpus.path, corpus.size)
    texts = corpus.lines() if level == "bpe" else corpus.chunks()
    tokenizer = train_tokenizer(level, texts, **settings)
    folder.mkdir(parents=True, exist_ok=True)
    temporary = folder / f".{key}.tmp-{os.getpid()}"
    temporary.write_text(json.dumps(tokenizer.to_dict()), encoding="utf-8")
    os.replace(temporary, path)
    return tokenizer, False


def token_dtype(vocab_size: int):
    return np.uint16 if vocab_size <= np.iinfo(np.uint16).max + 1 else np.uint32


def encode_corpus(
    corpus: Corpus, tokenizer: Tokenizer, cache_dir=None, progress: bool = False
) -> tuple[np.memmap, bool]:
    """The token ids of ``corpus`` as a read-only memmap, and whether they came from the cache.

    Tokenisation streams: chunks of the corpus are encoded and appended to the cache file.
    """
    key = _key(
        content=corpus.content_hash, encoding=corpus.encoding, tokenizer=tokenizer.to_dict()
    )
    root = cache_root(cache_dir) / "tokens"
    folder = root / key
    if (folder / "meta.json").is_file():
        try:
            return _open(folder), True
        except (OSError, ValueError, KeyError, json.JSONDecodeError):
            logger.warning("rnnkit: rebuilding the damaged token cache entry %s", folder)
            shutil.rmtree(folder, ignore_errors=True)
    root.mkdir(parents=True, exist_ok=True)
    temporary = root / f".{key}.tmp-{os.getpid()}"
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir()
    dtype = token_dtype(tokenizer.vocab_size)
    count = 0
    with open(temporary / "tokens.bin", "wb") as handle, tqdm(
        total=corpus.size, unit="B", unit_scale=True, desc="tokenising", disable=not progress,
        leave=False,
    ) as bar:
        for chunk in corpus.chunks():
            if isinstance(tokenizer, BPETokenizer):
                ids = [i for line in tokenizer.encode_many(chunk.splitlines(True)) for i in line]
            else:
                ids = tokenizer.encode(chunk)
            np.asarray(ids, dtype=dtype).tofile(handle)
            count += len(ids)
            bar.update(len(chunk.encode(corpus.encoding, errors="replace")))
        handle.flush()
        os.fsync(handle.fileno())
    meta = {"count": count, "dtype": np.dtype(dtype).name, "corpus": str(corpus.path),
            "level": tokenizer.level, "vocab_size": tokenizer.vocab_size}
    (temporary / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
    _publish(temporary, folder)
    logger.info("Cached %d tokens of %s in %s", count, corpus.path, folder)
    return _open(folder), False


def _open(folder: Path) -> np.memmap:
    meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    count, dtype = int(meta["count"]), np.dtype(meta["dtype"])
    if (folder / "tokens.bin").stat().st_size != count * dtype.itemsize:
        raise ValueError("token file size does not match its count")
    if count == 0:
        return np.zeros(0, dtype=dtype)  # numpy cannot memmap an empty file
    return np.memmap(folder / "tokens.bin", dtype=dtype, mode="r", shape=(count,))
