"""The recurrent language model: embedding -> rnnkit RNN/GRU/LSTM -> dropout -> decoder.

As in pytorch/examples word_language_model and char-rnn, with optional weight tying
(Press & Wolf 2017, arXiv 1608.05859; Inan et al. 2017, arXiv 1611.01462).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
from torch import Tensor, nn

from rnnkit import families
from rnnkit import init as gate_init
from rnnkit.backends import BACKENDS
from rnnkit.errors import UserError
from rnnkit.layers import app_cells

CELLS = app_cells()  # --cell: every family, as declared in rnnkit.families
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
    # variants of the recurrent layer (rnnkit.variants)
    layer_norm: bool = False
    zoneout: float = 0.0  # on h
    zoneout_cell: float = 0.0  # on c (LSTM)
    recurrent_dropout: float = 0.0
    weight_drop: float = 0.0
    peephole: bool = False
    coupled_gates: bool = False

    def variant_options(self) -> dict:
        """The layer's keyword options for the variants that are switched on."""
        options = {}
        for name in ("layer_norm", "recurrent_dropout", "weight_drop", "peephole",
                     "coupled_gates"):
            if getattr(self, name):
                options[name] = getattr(self, name)
        if self.zoneout or self.zoneout_cell:
            options["zoneout"] = (
                (self.zoneout, self.zoneout_cell) if self.family.has_cell else self.zoneout
            )
        return options

    @property
    def family(self) -> families.Family:
        return families.get(CELLS[self.cell].__name__)

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
        if (self.forget_bias is not None or self.init == "chrono") and (
            self.family.keep_gate is None
        ):
            gated = " or ".join(cell for cell, layer in CELLS.items()
                              if families.get(layer.__name__).keep_gate is not None)
            raise UserError(f"--forget-bias and --init chrono need a gated cell ({gated})")
        if self.backend not in BACKENDS:
            raise UserError(f"--backend must be one of {', '.join(BACKENDS)}, got "
                            f"{self.backend!r}")
        if not isinstance(self.chrono_max_len, int) or self.chrono_max_len < 0:
            raise UserError(f"--chrono-max-len must be 0 (the --seq-len) or positive, got "
                            f"{self.chrono_max_len!r}")
        if self.zoneout_cell and not self.family.has_cell:
            raise UserError(f"--zoneout-cell needs --cell lstm (the {self.cell} has no cell state)")
        try:  # the layer's own checks, as one-line messages naming the flag
            CELLS[self.cell](1, 2, **self.variant_options())
        except ValueError as error:
            message = str(error).split(": ", 1)[-1]
            raise UserError(f"--cell {self.cell}: {message}") from None
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
            **config.variant_options(),
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
        return (zeros, zeros.clone()) if self.config.family.has_cell else zeros


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


def _prime(model: LanguageModel, prime_ids: list[int]):
    """Run the prime through the model: the logits for the next token and the state."""
    if not prime_ids:
        raise ValueError("generation needs at least one prime token")
    tokens = torch.tensor(prime_ids, dtype=torch.long).unsqueeze(1)  # (L, 1)
    logits, state = model(tokens)
    return logits[-1, 0], state  # (V,)


def filter_logits(logits: Tensor, top_k: int = 0, top_p: float = 1.0) -> Tensor:
    """Keep the ``top_k`` largest logits and the smallest set whose probability reaches
    ``top_p`` (nucleus sampling, Holtzman et al. 2019, arXiv 1904.09751); mask the rest."""
    if top_k and top_k < logits.numel():
        threshold = logits.topk(top_k).values[-1]
        logits = logits.masked_fill(logits < threshold, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = logits.sort(descending=True)
        cumulative = sorted_logits.softmax(-1).cumsum(-1)
        remove = cumulative > top_p
        remove[1:] = remove[:-1].clone()  # keep the token that crosses top_p
        remove[0] = False
        logits = logits.masked_fill(remove.scatter(0, order, remove), float("-inf"))
    return logits


@torch.no_grad()
def generate(
    model: LanguageModel,
    prime_ids: list[int],
    length: int,
    *,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    greedy: bool = False,
    generator: torch.Generator | None = None,
):
    """Yield ``length`` token ids, one at a time, continuing ``prime_ids``.

    Sampling from ``softmax(logits / temperature)`` after top-k / top-p filtering, or the
    most likely token with ``greedy``.
    """
    model.eval()
    logits, state = _prime(model, prime_ids)
    for _ in range(length):
        if greedy:
            token = int(logits.argmax())
        else:
            filtered = filter_logits(logits / temperature, top_k, top_p)
            token = int(torch.multinomial(filtered.softmax(-1), 1, generator=generator))
        yield token
        output, state = model(torch.tensor([[token]]), state)
        logits = output[0, 0]


@torch.no_grad()
def beam_search(model: LanguageModel, prime_ids: list[int], length: int, width: int):
    """The ``length`` tokens after ``prime_ids`` with the highest total log-probability found
    by a beam of ``width``; returns ``(token ids, total log-probability)``."""
    model.eval()
    logits, state = _prime(model, prime_ids)
    scores = logits.log_softmax(-1)  # (V,)
    scores, tokens = scores.topk(min(width, scores.numel()))
    beams = [[int(token)] for token in tokens]
    index = torch.zeros(len(beams), dtype=torch.long)
    state = select_state(state, index)  # (layers, W, H)
    for _ in range(length - 1):
        output, state = model(torch.tensor([beam[-1] for beam in beams]).unsqueeze(0), state)
        candidates = scores.unsqueeze(1) + output[0].log_softmax(-1)  # (W, V)
        vocab = candidates.shape[1]
        scores, flat = candidates.flatten().topk(min(width, candidates.numel()))
        parents = flat // vocab
        beams = [beams[int(parent)] + [int(token)] for parent, token in
                 zip(parents, flat % vocab)]
        state = select_state(state, parents)
    best = int(scores.argmax())
    return beams[best], float(scores[best])
