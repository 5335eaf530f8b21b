"""A segment-recurrent forecaster in the spirit of SegRNN (Lin et al. 2023, arXiv 2308.11200).

Each channel is forecast on its own (channel independence) by one shared network:

1. the lookback window, minus its last value (or instance-normalised, RevIN), is cut into
   ``lookback / segment`` segments, each projected to the hidden size (linear + ReLU);
2. one recurrent layer (rnnkit's GRU by default, the fused path) runs over the segments;
3. the horizon is cut into ``horizon / segment`` segments decoded in parallel: the same
   recurrent layer takes one step from the encoder's final state for each output segment,
   fed a learned embedding of the segment's position and of the channel;
4. dropout and a linear map turn each decoded state into the segment's values, and the
   normalisation is undone.

Inputs ``(N, L, C)``, outputs ``(N, H, C)``, both in the (standardised) units of the input.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from rnnkit import GRU, LSTM, RNN
from rnnkit.backends import BACKENDS
from rnnkit.errors import UserError

CELLS = {"gru": GRU, "lstm": LSTM, "rnn": RNN}
NORMS = ("last", "revin", "none")


@dataclass
class SegRNNConfig:
    channels: int = 7
    lookback: int = 96
    horizon: int = 96
    segment: int = 48
    hidden: int = 512
    cell: str = "gru"
    dropout: float = 0.5
    norm: str = "last"  # subtract the window's last value (SegRNN's default), or RevIN
    channel_embedding: bool = True
    backend: str = "auto"

    def validate(self) -> SegRNNConfig:
        if self.cell not in CELLS:
            raise UserError(f"--cell must be one of {', '.join(CELLS)}, got {self.cell!r}")
        if self.norm not in NORMS:
            raise UserError(f"--norm must be one of {', '.join(NORMS)}, got {self.norm!r}")
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
        if config.norm == "last":
            shift, scale = x[:, -1:, :].detach(), None
        elif config.norm == "revin":  # RevIN without the affine part (SegRNN's revin=1)
            shift = x.mean(dim=1, keepdim=True).detach()
            scale = torch.sqrt(x.var(dim=1, keepdim=True, unbiased=False) + 1e-5).detach()
        else:
            shift = scale = None
        if shift is not None:
            x = x - shift
        if scale is not None:
            x = x / scale
        # (N, L, C) -> (N*C, segments, segment)
        series = x.permute(0, 2, 1).reshape(batch * channels, self.segments_in, config.segment)
        _, state = self.rnn(self.embed(series))  # (1, N*C, hidden), or (h, c) for an LSTM
        segments = self.segments_out
        queries = self._queries().unsqueeze(0).expand(batch, -1, -1, -1)  # (N, C, M, hidden)
        queries = queries.reshape(batch * channels * segments, 1, config.hidden)

        def repeat(tensor: Tensor) -> Tensor:  # (1, N*C, hidden) -> (1, N*C*M, hidden)
            return tensor.repeat_interleave(segments, dim=1)

        start = tuple(map(repeat, state)) if isinstance(state, tuple) else repeat(state)
        decoded, _ = self.rnn(queries, start)  # (N*C*M, 1, hidden)
        y = self.head(decoded[:, 0])  # (N*C*M, segment)
        y = y.view(batch, channels, config.horizon).permute(0, 2, 1)  # (N, H, C)
        if scale is not None:
            y = y * scale
        if shift is not None:
            y = y + shift
        return y
