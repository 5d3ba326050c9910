"""Early stopping as the SageMaker built-ins define it: relative gain of the objective, after a minimum of epochs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass
class EarlyStopping:
    """Tracks the objective; `update` returns True when training should stop."""

    min_epochs: int
    patience: int
    tolerance: float
    maximize: bool = True
    best: Optional[float] = None
    epochs_without_gain: int = 0

    def improved(self, value: float) -> bool:
        """Whether value beats the best so far by more than the relative tolerance."""
        if self.best is None:
            return True
        gain = (value - self.best) if self.maximize else (self.best - value)
        return gain / max(abs(self.best), 1e-12) > self.tolerance

    def update(self, epoch: int, value: float) -> bool:
        """Record the objective of a finished epoch (1-based); True means stop."""
        if self.improved(value):
            self.best = value
            self.epochs_without_gain = 0
        else:
            self.epochs_without_gain += 1
        return epoch >= self.min_epochs and self.epochs_without_gain >= self.patience

    def state_dict(self) -> dict:
        return {"best": self.best, "epochs_without_gain": self.epochs_without_gain}

    def load_state_dict(self, state: dict) -> None:
        self.best = state.get("best")
        self.epochs_without_gain = int(state.get("epochs_without_gain", 0))
