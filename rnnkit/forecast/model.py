"""The forecaster: an rnnkit encoder over the lookback window and a multi-step head.

``direct`` maps the encoder's last hidden state to all ``horizon`` steps at once (darts'
BlockRNNModel); ``seq2seq`` runs a decoder of the same cell for ``horizon`` steps from the
encoder's final state, fed a learned embedding of the step number (MQ-RNN's decoder,
arXiv 1711.11053). Each step predicts one value, or one per quantile. Window normalisation
subtracts the window's last target value (``last``) or divides by its mean absolute value
(``mean``, DeepAR, arXiv 1704.04110) before the encoder and undoes it on the output, so
levels never seen in training are forecast in their own terms.

``model="segrnn"`` replaces the encoder and head by the segment-recurrent forecaster of
:mod:`rnnkit.forecast.segrnn` (segments of ``segment`` steps, a parallel decoder over the
horizon's segments), reading the same windows; its target-channel output is the forecast.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

import torch
from torch import Tensor, nn

from rnnkit.backends import BACKENDS
from rnnkit.errors import UserError
from rnnkit.layers import app_cells

CELLS = app_cells()  # --cell: every family, as declared in rnnkit.families
HEADS = ("direct", "seq2seq")
WINDOW_NORMS = ("last", "mean", "none")
SEGRNN_NORMS = ("last", "segment", "none")  # --window-norm with --model segrnn
LOSSES = ("mse", "mae")
MODELS = ("rnn", "segrnn")


@dataclass
class ForecasterConfig:
    """Shape of a :class:`Forecaster`."""

    inputs: int = 1  # channels per step: the target, then the covariates
    horizon: int = 1
    lookback: int = 24
    cell: str = "lstm"
    layers: int = 1
    hidden: int = 64
    dropout: float = 0.0
    head: str = "direct"
    window_norm: str = "last"
    quantiles: list[float] = field(default_factory=list)  # empty: one point forecast
    loss: str = "mse"  # without quantiles
    backend: str = "auto"
    model: str = "rnn"  # or segrnn
    segment: int = 12  # segrnn: steps per segment

    def validate(self) -> ForecasterConfig:
        if self.model not in MODELS:
            raise UserError(f"--model must be one of {', '.join(MODELS)}, got {self.model!r}")
        if self.model == "segrnn":
            if self.quantiles:
                raise UserError("--model segrnn forecasts one value per step; leave out "
                                "--quantiles (or use --model rnn)")
            if self.layers != 1 or self.head != "direct":
                raise UserError("--model segrnn has one recurrent layer and its own parallel "
                                "decoder: leave --layers and --head out")
            if self.window_norm not in SEGRNN_NORMS:
                raise UserError(f"--window-norm with --model segrnn must be one of "
                                f"{', '.join(SEGRNN_NORMS)}, got {self.window_norm!r}")
            self.segrnn_config().validate()
        if self.cell not in CELLS:
            raise UserError(f"--cell must be one of {', '.join(CELLS)}, got {self.cell!r}")
        if self.backend not in BACKENDS:
            raise UserError(f"--backend must be one of {', '.join(BACKENDS)}, got "
                            f"{self.backend!r}")
        if self.head not in HEADS:
            raise UserError(f"--head must be one of {', '.join(HEADS)}, got {self.head!r}")
        if self.model != "segrnn" and self.window_norm not in WINDOW_NORMS:
            raise UserError(f"--window-norm must be one of {', '.join(WINDOW_NORMS)}, "
                            f"got {self.window_norm!r}")
        if self.loss not in LOSSES:
            raise UserError(f"--loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        for name in ("inputs", "horizon", "lookback", "layers", "hidden"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise UserError(f"--{name} must be a positive integer, got {value!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise UserError(f"--dropout must be in [0, 1), got {self.dropout}")
        if any(not 0.0 < q < 1.0 for q in self.quantiles):
            raise UserError(f"--quantiles must lie strictly between 0 and 1, got "
                            f"{','.join(map(str, self.quantiles))}")
        if sorted(set(self.quantiles)) != list(self.quantiles):
            raise UserError("--quantiles must be increasing and distinct, e.g. 0.1,0.5,0.9")
        return self

    @property
    def outputs(self) -> int:
        return max(1, len(self.quantiles))

    @property
    def median_index(self) -> int:
        """The output taken as the point forecast: the quantile nearest 0.5."""
        if not self.quantiles:
            return 0
        return min(range(len(self.quantiles)), key=lambda i: abs(self.quantiles[i] - 0.5))

    def segrnn_config(self):
        from rnnkit.forecast.segrnn import SegRNNConfig

        return SegRNNConfig(channels=self.inputs, lookback=self.lookback, horizon=self.horizon,
                            segment=self.segment, hidden=self.hidden, cell=self.cell,
                            dropout=self.dropout, backend=self.backend,
                            norm=self.window_norm,
                            channel_embedding=self.inputs > 1)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ForecasterConfig:
        known = {item.name for item in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})


class Forecaster(nn.Module):
    """Forecasts ``horizon`` steps of the target from ``lookback`` steps of all channels.

    Inputs: ``x`` of shape ``(N, L, C)``, scaled, the target in channel 0.
    Outputs: ``(N, H, Q)``: per step one value per quantile (Q = 1 without quantiles), in
    the same scaled units as the target channel of ``x``.
    """

    def __init__(self, config: ForecasterConfig) -> None:
        super().__init__()
        self.config = config.validate()
        if config.model == "segrnn":
            from rnnkit.forecast.segrnn import SegRNN

            self.segrnn = SegRNN(config.segrnn_config())
            return
        layer = CELLS[config.cell]
        between = config.dropout if config.layers > 1 else 0.0
        self.encoder = layer(config.inputs, config.hidden, num_layers=config.layers,
                             batch_first=True, dropout=between, backend=config.backend)
        self.dropout = nn.Dropout(config.dropout)
        if config.head == "direct":
            self.head = nn.Linear(config.hidden, config.horizon * config.outputs)
        else:
            self.step_embedding = nn.Embedding(config.horizon, config.hidden)
            self.decoder = layer(config.hidden, config.hidden, num_layers=config.layers,
                                 batch_first=True, dropout=between, backend=config.backend)
            self.head = nn.Linear(config.hidden, config.outputs)

    def forward(self, x: Tensor) -> Tensor:
        config = self.config
        if config.model == "segrnn":
            return self.segrnn(x)[:, :, :1]  # (N, H, 1): the target channel
        target = x[:, :, :1]  # (N, L, 1)
        if config.window_norm == "last":
            shift, scale = target[:, -1:, :], torch.ones_like(target[:, -1:, :])
        elif config.window_norm == "mean":
            shift = torch.zeros_like(target[:, -1:, :])
            scale = target.abs().mean(dim=1, keepdim=True).clamp_min(1e-6)  # (N, 1, 1)
        else:
            shift = scale = None
        if shift is not None:
            x = torch.cat([(target - shift) / scale, x[:, :, 1:]], dim=2)
        output, state = self.encoder(x)  # (N, L, hidden)
        if config.head == "direct":
            last = self.dropout(output[:, -1])  # (N, hidden)
            result = self.head(last).view(-1, config.horizon, config.outputs)
        else:
            steps = self.step_embedding.weight.unsqueeze(0).expand(x.shape[0], -1, -1)
            decoded, _ = self.decoder(steps, state)  # (N, H, hidden)
            result = self.head(self.dropout(decoded))  # (N, H, Q)
        if shift is not None:
            result = result * scale + shift
        return result

    def point(self, x: Tensor) -> Tensor:
        """The point forecast ``(N, H)``: the median quantile, or the single output."""
        return self(x)[:, :, self.config.median_index]


def pinball_loss(prediction: Tensor, target: Tensor, quantiles: list[float]) -> Tensor:
    """Mean quantile (pinball) loss; ``prediction`` ``(N, H, Q)``, ``target`` ``(N, H)``."""
    levels = torch.tensor(quantiles, dtype=prediction.dtype, device=prediction.device)
    error = target.unsqueeze(-1) - prediction  # (N, H, Q)
    return torch.maximum(levels * error, (levels - 1.0) * error).mean()


def forecast_loss(config: ForecasterConfig, prediction: Tensor, target: Tensor) -> Tensor:
    if config.quantiles:
        return pinball_loss(prediction, target, config.quantiles)
    if config.loss == "mae":
        return (prediction[:, :, 0] - target).abs().mean()
    return ((prediction[:, :, 0] - target) ** 2).mean()
