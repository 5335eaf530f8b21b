"""An exponential moving average of the weights (Polyak averaging), kept beside the live ones.

With ``--ema DECAY`` the training loop updates it after every optimizer step and evaluates,
checkpoints and saves the average, while the optimizer keeps stepping the live weights: on a
noisy plateau the average of the last ~1/(1-DECAY) steps generalises better than any one of
them. The first updates use ``min(DECAY, (1 + t) / (10 + t))`` (t counts the updates), as
TensorFlow's ``ExponentialMovingAverage`` does with ``num_updates``, so the average is not
pulled towards the starting weights.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


class WeightAverage:
    """The moving average of ``model``'s floating-point parameters."""

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        self.decay = decay
        self.named = [(name, parameter) for name, parameter in model.named_parameters()
                      if parameter.is_floating_point()]
        self.average = {name: parameter.detach().clone() for name, parameter in self.named}
        self.updates = 0

    def rate(self) -> float:
        """The decay the next update uses."""
        t = self.updates + 1
        return min(self.decay, (1 + t) / (10 + t))

    @torch.no_grad()
    def update(self) -> None:
        """Move the average towards the live weights (after an optimizer step)."""
        weight = 1.0 - self.rate()
        self.updates += 1
        for name, parameter in self.named:
            self.average[name].lerp_(parameter.detach(), weight)

    @contextmanager
    def swapped(self) -> Iterator[None]:
        """The model holds the average inside the block, its live weights again after it."""
        live = [parameter.detach().clone() for _, parameter in self.named]
        with torch.no_grad():
            for name, parameter in self.named:
                parameter.copy_(self.average[name])
        try:
            yield
        finally:
            with torch.no_grad():
                for (_, parameter), weights in zip(self.named, live):
                    parameter.copy_(weights)

    def state_dict(self) -> dict:
        """What a resume needs besides the checkpoint's weights (which hold the average)."""
        return {"updates": self.updates,
                "live": {name: parameter.detach().clone() for name, parameter in self.named}}

    @torch.no_grad()
    def load_state_dict(self, state: dict | None) -> None:
        """After the checkpoint's (averaged) weights were loaded into the model: take them as
        the average and put the live weights back (a run saved without an average starts one
        from its weights)."""
        self.average = {name: parameter.detach().clone() for name, parameter in self.named}
        if state is None:
            self.updates = 0
            return
        self.updates = int(state["updates"])
        for name, parameter in self.named:
            parameter.copy_(state["live"][name])
