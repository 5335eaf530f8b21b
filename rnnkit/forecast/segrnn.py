"""A segment-recurrent forecaster in the spirit of SegRNN (Lin et al. 2023, arXiv 2308.11200).

Each channel is forecast on its own (channel independence) by one shared network:

1. the lookback window, minus its last value (or instance-normalised, RevIN, or minus its last
   segment repeated, ``norm="segment"``: with one season per segment the forecast is then the
   last season plus a learned change), is cut into ``lookback / segment`` segments, each
   projected to the hidden size (linear + ReLU);
2. one recurrent layer (rnnkit's GRU by default, the fused path) runs over the segments;
3. the horizon is cut into ``horizon / segment`` segments decoded in parallel: the same
   recurrent layer takes one step from the encoder's final state for each output segment,
   fed a learned embedding of the segment's position and of the channel;
4. dropout and a linear map turn each decoded state into the segment's values, and the
   normalisation is undone.

Inputs ``(N, L, C)``, outputs ``(N, H, C)``, both in the (standardised) units of the input.

The decoding step (3) runs one of two ways with the same weights and the same result.
``decoder="layer"`` runs the rnnkit layer on ``N * C * M`` one-step sequences (M output
segments), as the paper's code does. ``decoder="factored"`` (the default) uses that every
one of them starts from the same state per series and reads the same query per channel and
segment: it multiplies the recurrent weights by the ``N * C`` states and the input weights by
the ``C * M`` queries once each and forms the ``N * C * M`` gates by broadcasting, which
takes the horizon's length out of the matrix products (about 3x faster at horizon 720).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from rnnkit.backends import BACKENDS
from rnnkit.errors import UserError
from rnnkit.layers import app_cells

CELLS = app_cells()  # --cell: every family, as declared in rnnkit.families
NORMS = ("last", "revin", "segment", "none")
DECODERS = ("factored", "layer")


@dataclass
class SegRNNConfig:
    channels: int = 7
    lookback: int = 96
    horizon: int = 96
    segment: int = 48
    hidden: int = 512
    cell: str = "gru"
    dropout: float = 0.5
    # subtract the window's last value (SegRNN's default), its mean and scale (RevIN), or its
    # last segment from every segment (a seasonal anchor when the segment is the period)
    norm: str = "last"
    channel_embedding: bool = True
    decoder: str = "factored"
    backend: str = "auto"

    def validate(self) -> SegRNNConfig:
        if self.cell not in CELLS:
            raise UserError(f"--cell must be one of {', '.join(CELLS)}, got {self.cell!r}")
        if self.norm not in NORMS:
            raise UserError(f"--norm must be one of {', '.join(NORMS)}, got {self.norm!r}")
        if self.decoder not in DECODERS:
            raise UserError(f"--decoder must be one of {', '.join(DECODERS)}, got "
                            f"{self.decoder!r}")
        if self.backend not in BACKENDS:
            raise UserError(f"--backend must be one of {', '.join(BACKENDS)}, got "
                            f"{self.backend!r}")
        for name in ("channels", "lookback", "horizon", "segment", "hidden"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UserError(f"--{name} must be a positive integer, got {value!r}")
        for name in ("lookback", "horizon"):
            if getattr(self, name) % self.segment:
                raise UserError(f"--{name} {getattr(self, name)} is not a whole number of "
                                f"--segment {self.segment} steps; choose a segment length "
                                f"that divides both --lookback and every horizon")
        if not 0.0 <= self.dropout < 1.0:
            raise UserError(f"--dropout must be in [0, 1), got {self.dropout}")
        return self

    def to_dict(self) -> dict:
        return asdict(self)


class SegRNN(nn.Module):
    """``(N, lookback, C)`` -> ``(N, horizon, C)``; see the module docstring."""

    def __init__(self, config: SegRNNConfig) -> None:
        super().__init__()
        self.config = config.validate()
        hidden = config.hidden
        self.segments_in = config.lookback // config.segment
        self.segments_out = config.horizon // config.segment
        self.embed = nn.Sequential(nn.Linear(config.segment, hidden), nn.ReLU())
        self.rnn = CELLS[config.cell](hidden, hidden, batch_first=True, backend=config.backend)
        if config.channel_embedding:  # half position, half channel, as in the paper
            self.position = nn.Parameter(torch.randn(self.segments_out, hidden // 2))
            self.channel = nn.Parameter(torch.randn(config.channels, hidden - hidden // 2))
        else:
            self.position = nn.Parameter(torch.randn(self.segments_out, hidden))
        self.head = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(hidden, config.segment))

    def _queries(self) -> Tensor:
        """``(C, M, hidden)``: the decoder's input for each channel and output segment."""
        config = self.config
        channels, segments = config.channels, self.segments_out
        position = self.position.unsqueeze(0).expand(channels, -1, -1)
        if not config.channel_embedding:
            return position
        channel = self.channel.unsqueeze(1).expand(-1, segments, -1)
        return torch.cat([position, channel], dim=2)

    def forward(self, x: Tensor) -> Tensor:
        config = self.config
        batch, steps, channels = x.shape
        if steps != config.lookback or channels != config.channels:
            raise ValueError(f"SegRNN expects inputs (N, {config.lookback}, {config.channels}), "
                             f"got {tuple(x.shape)}")
        shift = shift_out = scale = None
        if config.norm == "last":
            shift = shift_out = x[:, -1:, :].detach()
        elif config.norm == "segment":  # the last segment, repeated over window and horizon
            last = x[:, -config.segment:, :].detach()
            shift = last.repeat(1, self.segments_in, 1)
            shift_out = last.repeat(1, self.segments_out, 1)
        elif config.norm == "revin":  # RevIN without the affine part (SegRNN's revin=1)
            shift = shift_out = x.mean(dim=1, keepdim=True).detach()
            scale = torch.sqrt(x.var(dim=1, keepdim=True, unbiased=False) + 1e-5).detach()
        if shift is not None:
            x = x - shift
        if scale is not None:
            x = x / scale
        # (N, L, C) -> (N*C, segments, segment)
        series = x.permute(0, 2, 1).reshape(batch * channels, self.segments_in, config.segment)
        _, state = self.rnn(self.embed(series))  # (1, N*C, hidden), or (h, c) for an LSTM
        if config.decoder == "factored":
            decoded = self._decode_factored(state, batch)  # (N*C*M, hidden)
        else:
            decoded = self._decode_layer(state, batch)
        y = self.head(decoded)  # (N*C*M, segment)
        y = y.view(batch, channels, config.horizon).permute(0, 2, 1)  # (N, H, C)
        if scale is not None:
            y = y * scale
        if shift_out is not None:
            y = y + shift_out
        return y

    def _decode_layer(self, state, batch: int) -> Tensor:
        """One step of the layer for each of the ``N*C*M`` (state, query) pairs."""
        config, segments = self.config, self.segments_out
        queries = self._queries().unsqueeze(0).expand(batch, -1, -1, -1)  # (N, C, M, hidden)
        queries = queries.reshape(-1, 1, config.hidden)

        def repeat(tensor: Tensor) -> Tensor:  # (1, N*C, hidden) -> (1, N*C*M, hidden)
            return tensor.repeat_interleave(segments, dim=1)

        start = tuple(map(repeat, state)) if isinstance(state, tuple) else repeat(state)
        decoded, _ = self.rnn(queries, start)  # (N*C*M, 1, hidden)
        return decoded[:, 0]

    def _decode_factored(self, state, batch: int) -> Tensor:
        """The same step as :meth:`_decode_layer`, its two products taken once each.

        The step is the family's readable cell (``rnnkit.cells``, declared in
        :mod:`rnnkit.families`), which broadcasts over leading dimensions.
        """
        config, rnn = self.config, self.rnn
        family = rnn.family
        channels, segments, hidden = config.channels, self.segments_out, config.hidden
        h = state[0] if isinstance(state, tuple) else state
        h = h[0].view(batch, channels, 1, hidden)  # (N, C, 1, hidden)
        states = (h,) if not family.has_cell else (h, state[1][0].view(batch, channels, 1, hidden))
        weights = {kind: getattr(rnn, f"{kind}_l0")
                   for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
        options = {"nonlinearity": rnn.nonlinearity} if family.nonlinearity else {}
        # the family's own cell (rnnkit.cells), its queries (C, M, ·) broadcast against the
        # states (N, C, 1, ·): each product once, as the docstring says
        (out, *_), _ = family.cell_step(self._queries(), states, weights, **options)
        return out.reshape(batch * channels * segments, hidden)
