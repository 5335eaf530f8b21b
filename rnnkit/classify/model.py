"""The sequence classifier: embedding -> (bidirectional) rnnkit layer -> pooling -> linear.

Texts of different lengths run as one packed batch, so each direction reads exactly its own
tokens (the backward direction starts at each text's last real token, not at the padding),
and pooling looks at valid steps only: ``last`` takes the final state of each direction,
``mean`` and ``max`` pool the outputs over the real tokens, ``mean-max`` concatenates both.
Padding never changes a prediction.

With ``ngrams`` N > 0 a second, bag-of-n-grams path (fastText's, arXiv 1607.01759) joins the
pooled features: every run of 1 to N consecutive tokens is hashed into one of
``ngram_buckets`` rows of its own embedding table, and the rows of a text's real n-grams are
averaged. The hash is integer arithmetic on the token ids inside the model, so checkpoints,
prediction and export need nothing beyond the tokens.

With ``members`` K > 1 the classifier is an ensemble (deep ensembles, arXiv 1612.01474): K
such networks from different random starts, each trained on its own loss over the same
batches, whose class probabilities are averaged.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from rnnkit.backends import BACKENDS
from rnnkit.classify.data import PADDING
from rnnkit.errors import UserError
from rnnkit.layers import app_cells
from rnnkit.onnx.ops import exporting_onnx

CELLS = app_cells()  # --cell: every family, as declared in rnnkit.families
POOLINGS = ("max", "mean", "last", "mean-max")
HASH_PRIME, HASH_MODULUS = 1_000_003, 2_147_483_647  # (h * P + id) < 2**63: no overflow


@dataclass
class ClassifierConfig:
    """Shape of a :class:`Classifier`."""

    vocab_size: int = 0  # with the two special ids (padding, unknown)
    classes: int = 2
    cell: str = "lstm"
    layers: int = 1
    hidden: int = 128
    embedding: int = 64
    bidirectional: bool = True
    pooling: str = "max"
    dropout: float = 0.0  # on the pooled features and between layers
    embedding_dropout: float = 0.0
    freeze_embeddings: bool = False
    ngrams: int = 0  # the bag-of-n-grams path: n-grams of 1..ngrams tokens; 0 off
    ngram_buckets: int = 2 ** 16
    ngram_dim: int = 16
    members: int = 1  # an ensemble: K networks, their probabilities averaged
    backend: str = "auto"

    def validate(self) -> ClassifierConfig:
        if self.cell not in CELLS:
            raise UserError(f"--cell must be one of {', '.join(CELLS)}, got {self.cell!r}")
        if self.backend not in BACKENDS:
            raise UserError(f"--backend must be one of {', '.join(BACKENDS)}, got "
                            f"{self.backend!r}")
        if self.pooling not in POOLINGS:
            raise UserError(f"--pooling must be one of {', '.join(POOLINGS)}, got "
                            f"{self.pooling!r}")
        for name in ("layers", "hidden", "embedding", "ngram_buckets", "ngram_dim", "members"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UserError(f"--{name.replace('_', '-')} must be a positive integer, "
                                f"got {value!r}")
        if isinstance(self.ngrams, bool) or not isinstance(self.ngrams, int) \
                or not 0 <= self.ngrams <= 8:
            raise UserError(f"--ngrams must be an n-gram length from 1 to 8 (0 turns the "
                            f"bag of n-grams off), got {self.ngrams!r}")
        for name in ("dropout", "embedding_dropout"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise UserError(f"--{name.replace('_', '-')} must be in [0, 1), got {value}")
        return self

    @property
    def features(self) -> int:
        directions = 2 if self.bidirectional else 1
        pooled = self.hidden * directions * (2 if self.pooling == "mean-max" else 1)
        return pooled + (self.ngram_dim if self.ngrams else 0)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ClassifierConfig:
        known = {item.name for item in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})


class Classifier(nn.Module):
    """Reads whole token sequences and gives one set of class logits each.

    Inputs: ``tokens`` ``(N, T)`` padded with 0 at the end, ``lengths`` ``(N,)`` (>= 1).
    Output: ``logits`` ``(N, classes)``.
    """

    def __init__(self, config: ClassifierConfig) -> None:
        super().__init__()
        self.config = config.validate()
        if config.vocab_size < 3:
            raise ValueError("Classifier: config.vocab_size must be set")
        if config.members > 1:  # each member built in turn: its own random start
            single = replace(config, members=1)
            self.members = nn.ModuleList(Classifier(single) for _ in range(config.members))
            return
        self.embedding = nn.Embedding(config.vocab_size, config.embedding, padding_idx=PADDING)
        self.embedding.weight.requires_grad_(not config.freeze_embeddings)
        self.embedding_dropout = nn.Dropout(config.embedding_dropout)
        self.rnn = CELLS[config.cell](
            config.embedding, config.hidden, num_layers=config.layers, batch_first=True,
            dropout=config.dropout if config.layers > 1 else 0.0,
            bidirectional=config.bidirectional, backend=config.backend,
        )
        if config.ngrams:
            self.ngram_embedding = nn.Embedding(config.ngram_buckets, config.ngram_dim)
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.features, config.classes)

    def singles(self) -> list[Classifier]:
        """The networks that make the prediction: the members, or this one."""
        return list(self.members) if self.config.members > 1 else [self]

    def load_vectors(self, vectors: Tensor, found: Tensor) -> None:
        """Copy pretrained rows ``vectors[found]`` into the embedding; the rest keep theirs."""
        if self.config.members > 1:
            for member in self.members:
                member.load_vectors(vectors, found)
            return
        with torch.no_grad():
            self.embedding.weight[found] = vectors[found].to(self.embedding.weight.dtype)
            self.embedding.weight[PADDING].zero_()

    def features(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        """The pooled features ``(N, features)`` the linear head reads."""
        pooled = self._pooled(tokens, lengths)
        if not self.config.ngrams:
            return pooled
        return torch.cat([pooled, self._ngram_bag(tokens, lengths)], dim=1)

    def ngram_ids(self, tokens: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """The bucket of every n-gram ``(N, ngrams * T)`` and whether it lies in the text.

        The n-gram of ``n`` tokens starting at step ``t`` is real when ``t + n <= length``.
        Its bucket is a polynomial hash of the ids, one order at a time:
        ``h_0 = 1``, ``h_n[t] = (h_{n-1}[t] * P + id[t + n - 1]) mod M``, bucket ``h_n mod B``
        (the leading 1 keeps the orders apart: ``P**n`` differs from one to the next).
        """
        steps = tokens.shape[1]
        position = torch.arange(steps, device=tokens.device).unsqueeze(0)  # (1, T)
        lengths = lengths.to(tokens.device).unsqueeze(1)  # (N, 1)
        hashed = torch.ones_like(tokens)
        ids, valid = [], []
        for order in range(1, self.config.ngrams + 1):
            # the ids order - 1 steps ahead (the last id repeated past the end, where the
            # n-grams are not real): a gather, so exported graphs keep any length
            ahead = tokens.gather(1, (position + order - 1).clamp(max=steps - 1)
                                  .expand_as(tokens))
            hashed = (hashed * HASH_PRIME + ahead) % HASH_MODULUS
            ids.append(hashed % self.config.ngram_buckets)
            valid.append(position + order <= lengths)
        return torch.cat(ids, dim=1), torch.cat(valid, dim=1)

    def _ngram_bag(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        """``(N, ngram_dim)``: the mean embedding of each text's real n-grams."""
        ids, valid = self.ngram_ids(tokens, lengths)
        rows = self.ngram_embedding(ids) * valid.unsqueeze(-1).to(self.ngram_embedding.weight.dtype)
        count = valid.sum(dim=1, keepdim=True).clamp_min(1).to(rows.dtype)
        return rows.sum(dim=1) / count

    def _pooled(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        embedded = self.embedding_dropout(self.embedding(tokens))  # (N, T, E)
        exporting = exporting_onnx()
        if exporting:  # a padded batch and its lengths: the ONNX node's sequence_lens
            from rnnkit.onnx import run_padded

            output, state = run_padded(self.rnn, embedded, lengths)
        else:
            packed = pack_padded_sequence(embedded, lengths.cpu(), batch_first=True,
                                          enforce_sorted=False)
            output, state = self.rnn(packed)
        pooling = self.config.pooling
        pooled = []
        if pooling == "last":
            h_n = state[0] if isinstance(state, tuple) else state  # (D * layers, N, H)
            directions = 2 if self.config.bidirectional else 1
            return torch.cat(list(h_n[-directions:]), dim=1)  # (N, D * H)
        steps = tokens.shape[1]
        if not exporting:
            output, _ = pad_packed_sequence(output, batch_first=True, total_length=steps)
        valid = (torch.arange(steps, device=tokens.device).unsqueeze(0)
                 < lengths.to(tokens.device).unsqueeze(1)).unsqueeze(-1)  # (N, T, 1)
        if pooling in ("mean", "mean-max"):
            total = output.masked_fill(~valid, 0.0).sum(dim=1)
            pooled.append(total / lengths.to(output.dtype).unsqueeze(1).to(output.device))
        if pooling in ("max", "mean-max"):
            pooled.append(output.masked_fill(~valid, float("-inf")).amax(dim=1))
        return torch.cat(pooled, dim=1) if len(pooled) > 1 else pooled[0]

    def forward(self, tokens: Tensor, lengths: Tensor, each: bool = False) -> Tensor:
        """Logits ``(N, classes)``; with ``each``, every member's ``(K, N, classes)``.

        An ensemble's logits are the log of its members' mean probabilities.
        """
        if self.config.members == 1:
            logits = self.head(self.dropout(self.features(tokens, lengths)))
            return logits.unsqueeze(0) if each else logits
        logits = torch.stack([member(tokens, lengths) for member in self.members])
        if each:
            return logits
        return torch.logsumexp(logits.log_softmax(dim=-1), dim=0) - math.log(len(self.members))
