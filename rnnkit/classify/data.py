"""Labelled texts for classification: reading them, turning them into token ids, batching.

Input is a TSV/CSV file with a text and a label column, or a folder with one subfolder per
class holding one text per file (the aclImdb layout). Tokens come from the language-model
tokenizers (char, word, BPE) fitted on the training texts; id 0 is padding and id 1 stands
for anything the vocabulary lacks. Batches gather texts of similar length (buckets), so
little is padded, in an order fixed by the seed and the epoch.
"""

from __future__ import annotations

import csv
import hashlib
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch

from rnnkit.data.tokenizers import CharTokenizer, Tokenizer, WordTokenizer, train_tokenizer
from rnnkit.errors import UserError

TEXT_NAMES = ("text", "document", "sentence", "review", "content", "comment", "body")
LABEL_NAMES = ("label", "labels", "sentiment", "class", "category", "target", "y")
PADDING, UNKNOWN = 0, 1
SPECIAL = 2  # ids below this are padding and unknown
BUCKET_POOL = 50  # batches per pool sorted by length: long enough to pad little

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


@dataclass
class LabelledTexts:
    texts: list[str]
    labels: list[str]
    source: str
    text_col: str | None = None  # None for a folder of class subfolders
    label_col: str | None = None
    skipped_empty: int = 0

    def __len__(self) -> int:
        return len(self.texts)

    def content_hash(self) -> str:
        digest = hashlib.sha256()
        for text, label in zip(self.texts, self.labels):
            digest.update(f"{label}\t{text}\n".encode())
        return digest.hexdigest()[:16]


def _pick_column(header: list[str], given: str | None, names: tuple, flag: str, path) -> int:
    folded = [name.strip().lower() for name in header]
    if given is not None:
        if given in header:
            return header.index(given)
        if given.lower() in folded:
            return folded.index(given.lower())
        raise UserError(f"{path}: no column {given!r} ({flag}); the columns found are "
                        f"{', '.join(repr(c) for c in header)}")
    for name in names:
        if name in folded:
            return folded.index(name)
    raise UserError(f"{path}: no {flag[2:-4]} column found by name (tried {', '.join(names)}); "
                    f"the columns found are {', '.join(repr(c) for c in header)}: name it with "
                    f"{flag}")


def read_labelled(path: str | Path, text_col: str | None = None, label_col: str | None = None,
                  what: str = "DATA") -> LabelledTexts:
    """Texts and labels from a TSV/CSV file (a header line first) or a folder of classes."""
    path = Path(path)
    if path.is_dir():
        return _read_folder(path, what)
    if not path.is_file():
        raise UserError(f"{what} {path} does not exist")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise UserError(f"{what} {path} is not UTF-8 text ({error.reason} at byte "
                        f"{error.start})") from None
    lines = text.splitlines()
    if not lines:
        raise UserError(f"{what} {path} is empty; expected a header line and labelled texts")
    if path.suffix.lower() == ".tsv" or ("\t" in lines[0] and path.suffix.lower() != ".csv"):
        rows = csv.reader(lines, delimiter="\t", quoting=csv.QUOTE_NONE)  # TSV: no quoting
    else:
        rows = csv.reader(lines)
    header = next(rows)
    text_index = _pick_column(header, text_col, TEXT_NAMES, "--text-col", path)
    label_index = _pick_column(header, label_col, LABEL_NAMES, "--label-col", path)
    if text_index == label_index:
        raise UserError(f"{path}: --text-col and --label-col name the same column")
    result = LabelledTexts([], [], str(path), header[text_index], header[label_index])
    needed = max(text_index, label_index) + 1
    for number, row in enumerate(rows, start=2):
        if not row:
            continue
        if len(row) < needed:
            raise UserError(f"{path}: line {number} has {len(row)} field(s); expected at least "
                            f"{needed} (the text in column {text_index + 1}, the label in "
                            f"column {label_index + 1})")
        label = row[label_index].strip()
        if not label:
            raise UserError(f"{path}: line {number} has an empty label")
        content = row[text_index].strip()
        if not content:
            result.skipped_empty += 1
            continue
        result.texts.append(content)
        result.labels.append(label)
    if not result.texts:
        raise UserError(f"{what} {path} holds no labelled text")
    return result


def _read_folder(path: Path, what: str) -> LabelledTexts:
    classes = sorted(child for child in path.iterdir() if child.is_dir()
                     and not child.name.startswith("."))
    if not classes:
        raise UserError(f"{what} {path} is a folder without class subfolders; expected one "
                        f"subfolder per class, each with one text per file")
    result = LabelledTexts([], [], str(path))
    for folder in classes:
        for file in sorted(folder.rglob("*")):
            if not file.is_file() or file.name.startswith("."):
                continue
            try:
                content = file.read_text(encoding="utf-8").strip()
            except UnicodeDecodeError:
                raise UserError(f"{file} is not UTF-8 text") from None
            if content:
                result.texts.append(content)
                result.labels.append(folder.name)
            else:
                result.skipped_empty += 1
    if not result.texts:
        raise UserError(f"{what} {path}: the class subfolders hold no text files")
    return result


def class_names(labels: list[str], where: str) -> list[str]:
    """The sorted distinct labels (numerically when they are all integers); at least two."""
    distinct = set(labels)
    if len(distinct) < 2:
        raise UserError(f"{where} has only one class ({next(iter(distinct))!r}); a classifier "
                        f"needs at least two")
    if all(label.lstrip("-").isdigit() for label in distinct):
        return sorted(distinct, key=int)
    return sorted(distinct)


def fit_tokenizer(texts: list[str], level: str, min_count: int = 1, max_vocab: int = 0,
                  vocab_size: int = 8000) -> Tokenizer:
    """A tokenizer fitted to the training texts; rare characters and words become unknown."""
    if level == "char":
        counts = Counter()
        for text in texts:
            counts.update(text)
        kept = [character for character, count in counts.items() if count >= min_count]
        return CharTokenizer(kept or counts)
    if level == "word":
        return WordTokenizer.train(texts, min_count=min_count, max_vocab=max_vocab)
    return train_tokenizer(level, texts, vocab_size=vocab_size)


class TextEncoder:
    """Text -> model ids: the tokenizer's ids shifted by two (0 padding, 1 unknown)."""

    def __init__(self, tokenizer: Tokenizer, max_len: int = 0) -> None:
        self.tokenizer = tokenizer
        self.max_len = max_len
        self._characters = ({c: i for i, c in enumerate(tokenizer.vocab)}
                            if tokenizer.level == "char" else None)

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.vocab_size + SPECIAL

    def tokens(self) -> list[str]:
        """The token of every id (``<pad>`` and ``<unk>`` first), for pretrained vectors."""
        return ["<pad>", "<unk>", *self.tokenizer.vocab]

    def encode(self, text: str) -> list[int]:
        if self._characters is not None:
            ids = [self._characters.get(c, UNKNOWN - SPECIAL) + SPECIAL for c in text]
        else:
            ids = [i + SPECIAL for i in self.tokenizer.encode(text)]
        if self.max_len:
            ids = ids[: self.max_len]
        return ids or [UNKNOWN]  # an empty text still gives one step to read

    def encode_many(self, texts: list[str]) -> list[list[int]]:
        if hasattr(self.tokenizer, "encode_many") and self._characters is None:
            encoded = [[i + SPECIAL for i in ids] for ids in self.tokenizer.encode_many(texts)]
            if self.max_len:
                encoded = [ids[: self.max_len] for ids in encoded]
            return [ids or [UNKNOWN] for ids in encoded]
        return [self.encode(text) for text in texts]


def pad(sequences: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids ``(N, T)`` padded with 0 at the end, and the lengths ``(N,)``."""
    lengths = torch.tensor([len(ids) for ids in sequences], dtype=torch.long)
    tokens = torch.zeros(len(sequences), int(lengths.max()), dtype=torch.long)
    for row, ids in enumerate(sequences):
        tokens[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
    return tokens, lengths


def bucket_batches(lengths: list[int], batch_size: int, generator: torch.Generator) -> list:
    """Index lists of about ``batch_size`` texts of similar length, in a shuffled order.

    Shuffle, cut into pools of ``BUCKET_POOL`` batches, sort each pool by length, cut the
    pool into batches, shuffle the batches (torchtext's BucketIterator).
    """
    order = torch.randperm(len(lengths), generator=generator).tolist()
    pool = batch_size * BUCKET_POOL
    batches = []
    for start in range(0, len(order), pool):
        chunk = sorted(order[start:start + pool], key=lambda i: lengths[i])
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    shuffled = torch.randperm(len(batches), generator=generator).tolist()
    return [batches[i] for i in shuffled]


def stratified_split(labels: list[str], fraction: float, seed: int) -> tuple[list, list]:
    """Train and validation indices; each class keeps its share in both."""
    if not 0.0 < fraction < 1.0:
        raise UserError(f"--val-fraction must be in (0, 1), got {fraction}")
    generator = torch.Generator().manual_seed(seed)
    by_class: dict[str, list[int]] = {}
    for index, label in enumerate(labels):
        by_class.setdefault(label, []).append(index)
    train, valid = [], []
    for label in sorted(by_class):
        members = by_class[label]
        order = [members[i] for i in torch.randperm(len(members), generator=generator)]
        count = max(1, round(len(members) * fraction)) if len(members) > 1 else 0
        valid += order[:count]
        train += order[count:]
    return sorted(train), sorted(valid)
