"""The recurrent language model: embedding -> rnnkit RNN/GRU/LSTM -> dropout -> decoder.

As in pytorch/examples word_language_model and char-rnn, with optional weight tying
(Press & Wolf 2017, arXiv 1608.05859; Inan et al. 2017, arXiv 1611.01462).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
from torch import Tensor, nn

from rnnkit import GRU, LSTM, RNN
from rnnkit import init as gate_init
from rnnkit.errors import UserError

CELLS = {"rnn": RNN, "gru": GRU, "lstm": LSTM}
INITS = ("default", "chrono")


@dataclass
class ModelConfig:
    """Shape and initialisation of a :class:`LanguageModel`."""

    vocab_size: int = 0
    cell: str = "lstm"
    layers: int = 2
    hidden: int = 256
    embedding: int = 64
    dropout: float = 0.0
    tie_weights: bool = False
    bidirectional: bool = False
    forget_bias: float | None = None
    init: str = "default"
    chrono_max_len: int = 0  # 0: the training sequence length
    backend: str = "auto"

    def validate(self) -> ModelConfig:
        if self.cell not in CELLS:
            raise UserError(f"--cell must be one of {', '.join(CELLS)}, got {self.cell!r}")
        for name in ("layers", "hidden", "embedding"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise UserError(f"--{name} must be a positive integer, got {value!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise UserError(f"--dropout must be in [0, 1), got {self.dropout}")
        if self.bidirectional:
            raise UserError(
                "bidirectional layers cannot be used in a language model: the backward "
                "direction would read the very tokens it is asked to predict"
            )
        if self.tie_weights and self.embedding != self.hidden:
            raise UserError(
                f"--tie-weights needs --embedding equal to --hidden (got {self.embedding} "
                f"and {self.hidden}): the decoder reuses the embedding matrix"
            )
        if self.init not in INITS:
            raise UserError(f"--init must be one of {', '.join(INITS)}, got {self.init!r}")
        if (self.forget_bias is not None or self.init == "chrono") and self.cell == "rnn":
            raise UserError("--forget-bias and --init chrono need a gated cell (gru or lstm)")
        return self

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        known = {field.name for field in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})

    def to_dict(self) -> dict:
        return asdict(self)


class LanguageModel(nn.Module):
    """Predicts the next token at every step.

    Arguments:
        config: a :class:`ModelConfig` with ``vocab_size`` set.

    Inputs: ``tokens`` of shape ``(L, N)`` (time first, as the recurrent layers), and the
    recurrent ``state`` (``h`` of shape ``(layers, N, hidden)``, or ``(h, c)`` for LSTM) or
    None. Outputs: ``logits`` of shape ``(L, N, vocab_size)`` and the new state.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config.validate()
        if config.vocab_size < 1:
            raise ValueError("LanguageModel: config.vocab_size must be set")
        self.embedding = nn.Embedding(config.vocab_size, config.embedding)
        self.input_dropout = nn.Dropout(config.dropout)
        self.rnn = CELLS[config.cell](
            config.embedding,
            config.hidden,
            num_layers=config.layers,
            dropout=config.dropout if config.layers > 1 else 0.0,
            backend=config.backend,
        )
        self.output_dropout = nn.Dropout(config.dropout)
        self.decoder = nn.Linear(config.hidden, config.vocab_size)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # small uniform embedding and decoder, as pytorch/examples word_language_model
        nn.init.uniform_(self.embedding.weight, -0.1, 0.1)
        nn.init.zeros_(self.decoder.bias)
        if self.config.tie_weights:
            self.decoder.weight = self.embedding.weight
        else:
            nn.init.uniform_(self.decoder.weight, -0.1, 0.1)
        self.rnn.reset_parameters()
        if self.config.forget_bias is not None:
            gate_init.forget_bias(self.rnn, self.config.forget_bias)
        if self.config.init == "chrono":
            gate_init.chrono_init(self.rnn, max(3, self.config.chrono_max_len))

    def forward(self, tokens: Tensor, state=None, return_internals: bool = False):
        embedded = self.input_dropout(self.embedding(tokens))  # (L, N, E)
        output, state, *internals = self.rnn(
            embedded, state, return_internals=return_internals
        )
        logits = self.decoder(self.output_dropout(output))  # (L, N, V)
        if return_internals:
            return logits, state, internals[0]
        return logits, state

    def initial_state(self, batch_size: int, device=None):
        """Zeros in the layout the recurrent layer takes: ``h`` or ``(h, c)``."""
        zeros = torch.zeros(self.config.layers, batch_size, self.config.hidden, device=device)
        return (zeros, zeros.clone()) if self.config.cell == "lstm" else zeros


def detach_state(state):
    """Cut the graph at a batch boundary (truncated BPTT) but keep the values."""
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(part.detach() for part in state)
    return state.detach()


def select_state(state, index: Tensor):
    """Keep only the batch entries ``index`` of a state (dimension 1)."""
    if isinstance(state, tuple):
        return tuple(part.index_select(1, index) for part in state)
    return state.index_select(1, index)
