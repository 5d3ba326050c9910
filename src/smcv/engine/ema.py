"""ema_decay: an exponential moving average of the network's weights, updated after every optimizer step."""

from __future__ import annotations

import copy
from typing import Any

import torch

#: the warm-up: the decay used at update n is min(ema_decay, (1 + n) / (WARMUP + n))
WARMUP = 10


def decay_at(decay: float, updates: int) -> float:
    """The decay of update number `updates` (0-based): warmed up so that the first steps follow the live weights."""
    return min(decay, (1 + updates) / (WARMUP + updates))


class WeightAverage:
    """A copy of the network whose floating-point parameters and buffers (BatchNorm running statistics included)
    follow the live network's as an EMA; integer buffers (BatchNorm's batch counter) are copied.

    One torch._foreach_lerp_ per update on the device, no host synchronisation. `module` is the averaged network
    (eval mode, no gradients), used for validation, best-epoch selection and the saved model."""

    def __init__(self, network: torch.nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"ema_decay must be in (0, 1) for an average, got {decay}")
        self.network, self.decay, self.updates = network, decay, 0
        self.module = copy.deepcopy(network).eval().requires_grad_(False)
        live, mine = network.state_dict(keep_vars=True), self.module.state_dict(keep_vars=True)
        seen: set[int] = set()
        self.floats: tuple[list[torch.Tensor], list[torch.Tensor]] = ([], [])
        self.others: tuple[list[torch.Tensor], list[torch.Tensor]] = ([], [])
        for name, tensor in live.items():
            if id(tensor) in seen:  # a tied weight is averaged once
                continue
            seen.add(id(tensor))
            group = self.floats if tensor.is_floating_point() else self.others
            group[0].append(mine[name].data)
            group[1].append(tensor.data)

    @torch.no_grad()
    def update(self) -> None:
        """Move the average towards the live weights by 1 - decay_at(decay, updates)."""
        if self.floats[0]:
            torch._foreach_lerp_(self.floats[0], self.floats[1], 1.0 - decay_at(self.decay, self.updates))
        for mine, live in zip(*self.others):
            mine.copy_(live)
        self.updates += 1

    @torch.no_grad()
    def restart(self) -> None:
        """Start the average again from the live weights (a resumed job whose checkpoint has no average)."""
        self.module.load_state_dict(self.network.state_dict())
        self.updates = 0

    def state_dict(self) -> dict[str, Any]:
        """The averaged weights and the update count, for checkpoints."""
        return {"weights": self.module.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Put back what state_dict() returned (in place, so the update lists stay valid)."""
        self.module.load_state_dict(state["weights"])
        self.updates = int(state["updates"])
