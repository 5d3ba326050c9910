"""What the loop measures besides its metric lines: TensorBoard scalars and the health rules, at step intervals."""

from __future__ import annotations

import logging
import math
import time
from typing import Any, Optional, Sequence

import torch

from smcv.engine.health import HealthMonitor
from smcv.engine.norms import gradient_norms, parameter_groups, total_norm, weight_norms
from smcv.engine.tensorboard import Board

log = logging.getLogger("smcv.health")
#: optimizer steps between measurements (interval loss, learning rate, images/s, GPU memory, gradient/weight norms);
#: an epoch shorter than this is measured once per epoch
INTERVAL_STEPS = 50


class Observer:
    """Feeds the TensorBoard board and the health rules; inactive (every call a no-op) on ranks other than 0."""

    def __init__(self, board: Board, model: torch.nn.Module, steps_per_epoch: int, device: torch.device,
                 scaled: bool, class_names: Sequence[str], world: int = 1, active: bool = True) -> None:
        self.board, self.device, self.scaled, self.world, self.active = board, device, scaled, world, active
        self.class_names = list(class_names)
        self.interval = max(1, min(INTERVAL_STEPS, steps_per_epoch))
        self.health = HealthMonitor(self._report, self.interval)
        self.groups = parameter_groups(model)
        self.step = 0  # optimizer steps of the job so far (the x axis of step scalars)
        self.first_epoch: Optional[int] = None
        self._reset_interval()

    def _reset_interval(self) -> None:
        self.loss_sum: Any = 0.0
        self.micro_batches, self.images, self.started = 0, 0, time.perf_counter()
        self.grad_norms: dict[str, float] = {}

    def _report(self, rule: str, message: str) -> None:
        log.warning("health rule %s: %s", rule, message)
        self.board.text(f"health/{rule}", message, self.step)

    def start_epoch(self, epoch: int, global_step: int) -> None:
        """Called before an epoch's first step; global_step counts the optimizer steps of earlier epochs."""
        if self.first_epoch is None:
            self.first_epoch = epoch
        self.step = global_step

    def micro_batch(self, loss: torch.Tensor, images: int) -> None:
        """One forward/backward pass: its detached loss and the images of all processes."""
        if self.active:
            self.loss_sum = self.loss_sum + loss
            self.micro_batches += 1
            self.images += images * self.world

    def measuring(self) -> bool:
        """True when the coming optimizer step ends an interval (gradients are measured before it)."""
        return self.active and (self.step + 1) % self.interval == 0

    def gradients(self, scaler: torch.amp.GradScaler, optimizer: torch.optim.Optimizer) -> None:
        """Per-group gradient norms before the optimizer step (unscaled first with FP16 loss scaling)."""
        if scaler.is_enabled():
            scaler.unscale_(optimizer)
        self.grad_norms = gradient_norms(self.groups)
        total = total_norm(self.grad_norms)
        if not (self.scaled and not math.isfinite(total)):  # the scaler skips steps with inf/NaN gradients itself
            self.health.gradients(total)

    def exclude(self, seconds: float, images: int) -> None:
        """Leave a step out of the interval's images/s (the compiling first step of compile=1)."""
        if self.active:
            self.started += seconds
            self.images -= images

    def compile_time(self, seconds: float) -> None:
        """The first training step's time under compile=1, as the scalar compile/seconds."""
        if self.active:
            self.board.scalars({"compile/seconds": seconds}, self.step + 1)

    def after_step(self, learning_rate: float) -> None:
        """After an optimizer step: at the end of an interval, write its scalars and feed the interval rules."""
        if not self.active:
            return
        self.step += 1
        if self.step % self.interval or not self.micro_batches:
            return
        loss = float(self.loss_sum) / self.micro_batches
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        values = {"step/loss": loss, "step/learning_rate": learning_rate, "step/images_per_second": self.images / elapsed}
        values.update(self._gpu_memory())
        values.update({f"grad_norm/{name}": value for name, value in self.grad_norms.items()})
        if self.grad_norms:
            values["grad_norm/total"] = total_norm(self.grad_norms)
        weights = weight_norms(self.groups) if self.board.enabled else {}
        values.update({f"weight_norm/{name}": value for name, value in weights.items()})
        self.board.scalars(values, self.step)
        self.health.interval(loss)
        self._reset_interval()

    def _gpu_memory(self) -> dict[str, float]:
        if self.device.type != "cuda":
            return {}
        peak, reserved = torch.cuda.max_memory_allocated(self.device), torch.cuda.memory_reserved(self.device)
        torch.cuda.reset_peak_memory_stats(self.device)
        return {"gpu/memory_allocated_peak_gib": peak / 2 ** 30, "gpu/memory_reserved_gib": reserved / 2 ** 30}

    def nonfinite_loss(self, value: float, epoch: int, step: int) -> None:
        """The loss became NaN/inf: report the rule (the loop then raises)."""
        if self.active:
            self.health.nonfinite_loss(value, epoch, step)

    def epoch_end(self, epoch: int, metrics: dict[str, float], data_wait_share: float,
                  prediction_counts: Optional[Sequence[int]], final: bool) -> None:
        """Per-epoch scalars (every metric, the data-wait share) and the per-epoch rules."""
        if not self.active:
            return
        values = {f"epoch/{name}": value for name, value in metrics.items() if name != "partial"}
        self.board.scalars({**values, "epoch/data_wait_share": data_wait_share}, epoch)
        self.health.epoch(metrics.get("train:loss"), metrics.get("validation:loss"))
        self.health.predictions(prediction_counts, self.class_names, final)
        if self.device.type == "cuda" and epoch != self.first_epoch:  # the first epoch includes worker start-up
            self.health.data_wait(data_wait_share, epoch)
        self.board.flush()

    def close(self) -> None:
        """Flush and close the event file."""
        self.board.close()
