"""The sequence classifier: embedding -> (bidirectional) rnnkit layer -> pooling -> linear.

Texts of different lengths run as one packed batch, so each direction reads exactly its own
tokens (the backward direction starts at each text's last real token, not at the padding),
and pooling looks at valid steps only: ``last`` takes the final state of each direction,
``mean`` and ``max`` pool the outputs over the real tokens, ``mean-max`` concatenates both.
Padding never changes a prediction.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

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
        for name in ("layers", "hidden", "embedding"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise UserError(f"--{name} must be a positive integer, got {value!r}")
        for name in ("dropout", "embedding_dropout"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise UserError(f"--{name.replace('_', '-')} must be in [0, 1), got {value}")
        return self

    @property
    def features(self) -> int:
        directions = 2 if self.bidirectional else 1
        return self.hidden * directions * (2 if self.pooling == "mean-max" else 1)

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
        self.embedding = nn.Embedding(config.vocab_size, config.embedding, padding_idx=PADDING)
        self.embedding.weight.requires_grad_(not config.freeze_embeddings)
        self.embedding_dropout = nn.Dropout(config.embedding_dropout)
        self.rnn = CELLS[config.cell](
            config.embedding, config.hidden, num_layers=config.layers, batch_first=True,
            dropout=config.dropout if config.layers > 1 else 0.0,
            bidirectional=config.bidirectional, backend=config.backend,
        )
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.features, config.classes)

    def load_vectors(self, vectors: Tensor, found: Tensor) -> None:
        """Copy pretrained rows ``vectors[found]`` into the embedding; the rest keep theirs."""
        with torch.no_grad():
            self.embedding.weight[found] = vectors[found].to(self.embedding.weight.dtype)
            self.embedding.weight[PADDING].zero_()

    def features(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        """The pooled features ``(N, features)`` the linear head reads."""
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

    def forward(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        return self.head(self.dropout(self.features(tokens, lengths)))
