"""Pretrained word vectors in the word2vec / GloVe / fastText text format.

One token and its numbers per line, separated by spaces; word2vec and fastText files start
with a header line ``<count> <dimension>``, GloVe files do not. Only the rows of tokens in
the vocabulary are kept, so a large file costs one pass and little memory.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import torch

from rnnkit.errors import UserError


@dataclass
class PretrainedVectors:
    vectors: torch.Tensor  # (V, dimension), zero where nothing was found
    found: torch.Tensor  # (V,) bool
    dimension: int
    file_tokens: int  # vectors read from the file
    ordinary: torch.Tensor  # (V,) bool: not a special token such as <pad> or <unk>

    def share_found(self) -> float:
        """The share of the vocabulary's ordinary tokens that has a pretrained vector."""
        considered = self.found[self.ordinary]
        return float(considered.float().mean()) if len(considered) else 0.0


SPECIAL_TOKENS = ("<pad>", "<unk>", "<eos>")


def read_vectors(path: str | Path, vocabulary: list[str]) -> PretrainedVectors:
    """The vectors of ``vocabulary``'s tokens found in ``path`` (plain or .gz text)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"--pretrained-embeddings {path} does not exist or is not a file")
    index = {token: i for i, token in enumerate(vocabulary)}
    opener = gzip.open if path.suffix == ".gz" else open
    dimension, rows, read = 0, {}, 0
    try:
        with opener(path, "rt", encoding="utf-8", errors="strict") as handle:
            for number, line in enumerate(handle, start=1):
                parts = line.rstrip("\n\r ").split(" ")
                if number == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
                    dimension = int(parts[1])  # the word2vec / fastText header
                    continue
                if len(parts) < 2:
                    continue
                if not dimension:
                    dimension = len(parts) - 1
                if len(parts) - 1 != dimension:
                    raise UserError(f"{path}: line {number} has {len(parts) - 1} numbers; "
                                    f"expected {dimension} (a token and its vector per line)")
                read += 1
                token = parts[0]
                if token in index and token not in rows:
                    try:
                        rows[token] = [float(value) for value in parts[1:]]
                    except ValueError:
                        raise UserError(f"{path}: line {number}: the vector of {token!r} is "
                                        f"not all numbers") from None
    except UnicodeDecodeError as error:
        raise UserError(f"{path} is not UTF-8 text ({error.reason}); expected word vectors "
                        f"in the word2vec/GloVe/fastText text format") from None
    if not dimension or not read:
        raise UserError(f"{path} holds no vectors; expected lines of a token and its numbers")
    vectors = torch.zeros(len(vocabulary), dimension)
    found = torch.zeros(len(vocabulary), dtype=torch.bool)
    for token, values in rows.items():
        vectors[index[token]] = torch.tensor(values)
        found[index[token]] = True
    ordinary = torch.tensor([token not in SPECIAL_TOKENS for token in vocabulary])
    return PretrainedVectors(vectors, found, dimension, read, ordinary)
