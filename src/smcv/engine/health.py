"""Training-health rules (an open stand-in for SageMaker Debugger's built-in rules), fed numbers by the loop.

Each rule reports at most once per job run through `report(rule, message)`; the message says what to change.
"""

from __future__ import annotations

import math
from typing import Callable, Optional, Sequence

from smcv.task_api import class_label

#: intervals per window of LossNotDecreasing: the mean of the last window is compared with the window before
LOSS_WINDOW_INTERVALS = 5
#: the relative fall of the interval loss below which a window counts as not decreasing
LOSS_MIN_DECREASE = 0.01
#: total gradient norms (L2 over every trainable parameter) outside these bounds fire the gradient rules
VANISHING_GRAD_NORM = 1e-7
EXPLODING_GRAD_NORM = 1e3
#: epochs of rising validation loss (since its best) while the training loss falls
OVERFIT_EPOCHS = 3
OVERFIT_MARGIN = 0.01
#: validation passes in a row in which a class got no prediction (at the last epoch: every pass of the job)
NEVER_PREDICTED_EPOCHS = 5
#: share of an epoch spent waiting for the data loader above which the GPU counts as starved
DATA_WAIT_SHARE = 0.5

RULES = ("NonFiniteLoss", "LossNotDecreasing", "VanishingGradient", "ExplodingGradient", "Overfitting",
         "ClassNeverPredicted", "DataWait")


def loss_not_decreasing(interval_losses: Sequence[float], window: Optional[int] = None,
                        min_decrease: float = LOSS_MIN_DECREASE) -> Optional[tuple[float, float]]:
    """(previous window mean, last window mean) when the last window did not fall by min_decrease, else None."""
    window = window or LOSS_WINDOW_INTERVALS
    values = [v for v in interval_losses if math.isfinite(v)]
    if len(values) < 2 * window:
        return None
    previous = sum(values[-2 * window:-window]) / window
    last = sum(values[-window:]) / window
    return (previous, last) if last > previous - min_decrease * abs(previous) else None


def overfitting(train_losses: Sequence[float], val_losses: Sequence[float], epochs: int = OVERFIT_EPOCHS,
                margin: float = OVERFIT_MARGIN) -> bool:
    """True when validation loss rose in each of the last `epochs` epochs (by more than `margin` relative in all)
    while training loss fell in each of them."""
    if len(val_losses) <= epochs or len(train_losses) != len(val_losses):
        return False
    val, train = val_losses[-epochs - 1:], train_losses[-epochs - 1:]
    rising = all(b > a for a, b in zip(val, val[1:])) and val[-1] > val[0] * (1 + margin)
    falling = all(b < a for a, b in zip(train, train[1:]))
    return rising and falling


class HealthMonitor:
    """Applies the rules to what the loop measures; `report(rule, message)` is called once per rule."""

    def __init__(self, report: Callable[[str, str], None], interval_steps: int) -> None:
        self.report, self.interval_steps = report, interval_steps
        self.fired: set[str] = set()
        self.interval_losses: list[float] = []
        self.train_losses: list[float] = []
        self.val_losses: list[float] = []
        self.unpredicted: dict[int, int] = {}  # class id -> validation passes in a row without a prediction
        self.passes = 0

    def _fire(self, rule: str, message: str) -> None:
        if rule not in self.fired:
            self.fired.add(rule)
            self.report(rule, message)

    def nonfinite_loss(self, value: float, epoch: int, step: int) -> None:
        """The training loss became NaN or infinite (the loop then stops the job)."""
        self._fire("NonFiniteLoss", f"the training loss became {value} at epoch {epoch}, step {step}; the job stops. "
                                    "Lower learning_rate (e.g. 10x), or use precision_dtype=float32")

    def interval(self, mean_loss: float) -> None:
        """The mean training loss of one interval of `interval_steps` optimizer steps."""
        self.interval_losses.append(mean_loss)
        found = loss_not_decreasing(self.interval_losses)
        if found:
            self._fire("LossNotDecreasing", (
                f"the training loss fell by less than {LOSS_MIN_DECREASE:.0%} over the last {LOSS_WINDOW_INTERVALS} "
                f"intervals of {self.interval_steps} steps (window means {found[0]:.4g} -> {found[1]:.4g}). Early in "
                "training: change learning_rate (higher when the loss is flat, lower when it jumps), check that the "
                "labels match the images and that not every layer is frozen; late in training the model has "
                "converged: lower epochs or set early_stopping=1"))

    def gradients(self, total_norm: float) -> None:
        """The total gradient norm at a measuring step."""
        if not math.isfinite(total_norm) or total_norm > EXPLODING_GRAD_NORM:
            self._fire("ExplodingGradient", (
                f"the total gradient norm reached {total_norm:.4g} (limit {EXPLODING_GRAD_NORM:g}); lower "
                "learning_rate (e.g. 10x), raise mini_batch_size, or use precision_dtype=float32"))
        elif total_norm < VANISHING_GRAD_NORM:
            self._fire("VanishingGradient", (
                f"the total gradient norm fell to {total_norm:.3g} (limit {VANISHING_GRAD_NORM:g}): the weights "
                "barely change. Raise learning_rate, use a shallower network, or check that the labels vary and that "
                "not every layer is frozen"))

    def epoch(self, train_loss: Optional[float], val_loss: Optional[float]) -> None:
        """An epoch's training and validation loss (Overfitting)."""
        if train_loss is None or val_loss is None or not math.isfinite(train_loss) or not math.isfinite(val_loss):
            return
        self.train_losses.append(train_loss)
        self.val_losses.append(val_loss)
        if overfitting(self.train_losses, self.val_losses):
            k = OVERFIT_EPOCHS
            self._fire("Overfitting", (
                f"validation:loss rose in each of the last {k} epochs ({self.val_losses[-k - 1]:.4g} -> "
                f"{self.val_losses[-1]:.4g}) while train:loss fell ({self.train_losses[-k - 1]:.4g} -> "
                f"{self.train_losses[-1]:.4g}): the model memorises the training set. Turn augmentation on, raise "
                "weight_decay, set early_stopping=1 or fewer epochs, or add training data"))

    def predictions(self, counts: Optional[Sequence[int]], class_names: Sequence[str], final: bool) -> None:
        """Per-class prediction counts of one validation pass (ClassNeverPredicted); final: the last epoch."""
        if counts is None:
            return
        self.passes += 1
        for label, count in enumerate(counts):
            self.unpredicted[label] = self.unpredicted.get(label, 0) + 1 if count == 0 else 0
        needed = min(self.passes, NEVER_PREDICTED_EPOCHS) if final else NEVER_PREDICTED_EPOCHS
        missing = [label for label, passes in self.unpredicted.items() if passes >= needed]
        if missing:
            names = ", ".join(class_label(class_names, i) for i in missing)
            self._fire("ClassNeverPredicted", (
                f"class(es) {names} got no prediction in the last {max(self.unpredicted[i] for i in missing)} "
                "validation pass(es). Check that the training set has enough examples of them; use "
                "class_balance=weights or class_balance=sampling where the task has it; or train longer"))

    def data_wait(self, share: float, epoch: int) -> None:
        """The share of an epoch spent waiting for the data loader (DataWait)."""
        if share > DATA_WAIT_SHARE:
            self._fire("DataWait", (
                f"the training loop waited for data {share:.0%} of epoch {epoch}, so the GPU was idle that long. "
                "Raise num_workers, use smaller or pre-resized images (or RecordIO), or an instance with more CPUs "
                "per GPU"))
