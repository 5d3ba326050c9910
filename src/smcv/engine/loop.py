"""The training loop: AMP, channels_last, accumulation, DDP, compile, EMA, validation, best model, early stopping,
checkpoints."""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import torch

from smcv.engine import distributed as dist_utils
from smcv.engine.checkpoint import load_latest, restore_rng_state, rng_state, save_checkpoint
from smcv.engine.compile import compile_network, synchronize, warn_fallback
from smcv.engine.early_stopping import EarlyStopping
from smcv.engine.ema import WeightAverage
from smcv.engine.loader import close_loader, make_loader
from smcv.engine.metrics_log import format_metric_line
from smcv.engine.observer import Observer
from smcv.engine.optim import build_optimizer, build_scheduler, trainable_parameters
from smcv.engine.precision import Precision, choose_precision
from smcv.engine.prefetch import prefetched
from smcv.engine.progress import Progress
from smcv.engine.signals import StopRequest
from smcv.engine.tensorboard import open_board
from smcv.errors import UserError
from smcv.task_api import OnDevice, PreparedData, Task, TrainSettings

log = logging.getLogger(__name__)
LOG_EVERY_STEPS = 50


class TrainingDiverged(UserError):
    """The loss became NaN or infinite."""

    category = "TrainingDiverged"


@dataclass
class FitResult:
    """What training produced: the selected weights and how it ended."""

    state_dict: dict[str, torch.Tensor]
    epochs_completed: int
    selected_epoch: int
    metrics: dict[str, float]
    stopped_by_signal: bool = False
    early_stopped: bool = False
    history: list[dict[str, float]] = field(default_factory=list)


def batch_size_of(batch: Any) -> int:
    """Number of samples in a collated or staged batch (tensor, tuple/list whose first item is a tensor or list, or
    dict)."""
    batch = batch.inputs if isinstance(batch, OnDevice) else batch
    first = batch[0] if isinstance(batch, (tuple, list)) else batch
    if isinstance(first, dict):
        first = next(iter(first.values()))
    if isinstance(first, torch.Tensor):
        return int(first.shape[0])
    return len(first)


class Trainer:
    """Runs `fit` for one task on one process of a possibly distributed job."""

    def __init__(self, task: Task, hp: dict, settings: TrainSettings, data: PreparedData, model: torch.nn.Module,
                 device: torch.device, checkpoint_dir: Optional[Path], stop: StopRequest,
                 on_snapshot: Optional[Callable[[int, dict], None]] = None, emit: Callable[[str], None] = print,
                 tensorboard_dir: Optional[Path] = None) -> None:
        self.task, self.hp, self.s, self.data, self.device = task, hp, settings, data, device
        self.checkpoint_dir, self.stop, self.on_snapshot, self.emit = checkpoint_dir, stop, on_snapshot, emit
        self.precision: Precision = choose_precision(settings.precision, settings.amp, device)
        if device.type == "cuda":
            model = model.to(device, memory_format=torch.channels_last)
        else:
            model = model.to(device)
        params = trainable_parameters(model, settings.freeze_pattern)
        self.network = model  # the plain network: checkpoints, and its state_dict has no wrapper prefixes
        self.ema = WeightAverage(model, settings.ema_decay) if settings.ema_decay > 0 else None
        compiled = compile_network(model) if settings.compile else None
        self.compiled = compiled is not None  # training runs compiled (False again after a fallback)
        self.compile_pending = self.compiled  # the next optimizer step is the first compiled one
        # torch.compile inside DistributedDataParallel, as PyTorch's docs advise (docs/architecture.md)
        self.model = self._wrap(compiled if compiled is not None else model)
        self.optimizer = build_optimizer(params, settings)
        self.train_loader = make_loader(data.train, dist_utils.per_process_batch(settings.batch_size), train=True,
                                        collate_fn=data.collate_fn, num_workers=settings.num_workers, device=device,
                                        seed=settings.seed, sample_weights=data.sample_weights)
        self.val_loader = None
        if data.validation is not None and len(data.validation) > 0:
            val_batch = settings.validation_batch_size or settings.batch_size
            self.val_loader = make_loader(data.validation, dist_utils.per_process_batch(val_batch), train=False, drop_last=False,
                                          collate_fn=data.collate_fn, num_workers=settings.num_workers, device=device, seed=settings.seed)
        if len(self.train_loader) == 0:
            raise UserError(f"the training set ({len(data.train)} samples) is smaller than one batch; lower mini_batch_size")
        self.accum = max(1, settings.gradient_accumulation_steps)
        self.steps_per_epoch = math.ceil(len(self.train_loader) / self.accum)
        self.scheduler = build_scheduler(self.optimizer, settings, self.steps_per_epoch)
        self.progress = Progress(settings.log_interval_seconds if dist_utils.is_main() else 0, settings.epochs,
                                 len(self.train_loader), emit)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.precision.needs_scaler)
        self.observer = Observer(open_board(settings.tensorboard, tensorboard_dir, dist_utils.is_main()), model,
                                 self.steps_per_epoch, device, self.precision.needs_scaler, data.class_names,
                                 dist_utils.world_size(), active=dist_utils.is_main())
        self.prediction_counts: Optional[list[int]] = None
        maximize = getattr(task, "objective_type", "Maximize") == "Maximize"
        self.early = EarlyStopping(settings.early_stopping_min_epochs, settings.early_stopping_patience,
                                   settings.early_stopping_tolerance, maximize=maximize)
        self.best_state: Optional[dict[str, torch.Tensor]] = None
        self.best_epoch = 0
        self.best_metrics: dict[str, float] = {}
        self.history: list[dict[str, float]] = []
        self.start_epoch = 0

    def _wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        if not dist_utils.is_distributed():
            return model
        ids = [self.device.index] if self.device.type == "cuda" else None
        return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)

    # ---- checkpoints -------------------------------------------------------------------------------------
    def _state(self, completed_epochs: int) -> dict[str, Any]:
        return {
            "epoch": completed_epochs, "model": self.network.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
            "early_stopping": self.early.state_dict(), "best_state": self.best_state, "best_epoch": self.best_epoch,
            "best_metrics": self.best_metrics, "history": self.history, "task": self.task.name,
            "rng": rng_state(), "ema": self.ema.state_dict() if self.ema is not None else None,
        }

    def save(self, completed_epochs: int, partial: bool) -> None:
        """Checkpoint from the main process only."""
        if self.checkpoint_dir is not None and dist_utils.is_main():
            save_checkpoint(self.checkpoint_dir, self._state(completed_epochs), completed_epochs, partial)

    def resume(self) -> None:
        """Continue from the newest checkpoint in the checkpoint directory, if any."""
        state = load_latest(self.checkpoint_dir) if self.checkpoint_dir is not None else None
        if state is None:
            return
        if state.get("task") != self.task.name:
            log.warning("ignoring checkpoint %s written by task %s", state["_path"], state.get("task"))
            return
        self.network.load_state_dict(state["model"])
        if self.ema is not None:
            if state.get("ema") is not None:
                self.ema.load_state_dict(state["ema"])
            else:
                self.ema.restart()
                log.warning("the checkpoint has no weight average (it was written with ema_decay=0): the average "
                            "starts again from the checkpoint's weights")
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.early.load_state_dict(state["early_stopping"])
        self.best_state, self.best_epoch = state["best_state"], state["best_epoch"]
        self.best_metrics, self.history = state["best_metrics"], state["history"]
        self.start_epoch = int(state["epoch"])
        restore_rng_state(state["rng"])
        self.emit(f"resuming from checkpoint {Path(state['_path']).name}: {self.start_epoch} epoch(s) already done")

    # ---- epochs ------------------------------------------------------------------------------------------
    def train_epoch(self, epoch: int) -> dict[str, float]:
        """One pass over the training data; stops early (returns partial stats) when a stop is requested."""
        self.model.train()
        sampler = getattr(self.train_loader, "sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        loss_sum = torch.zeros((), device=self.device)
        seen, started, n_batches, world = 0, time.perf_counter(), len(self.train_loader), dist_utils.world_size()
        timing = self.compile_pending  # this epoch's first optimizer step compiles the network: timed apart
        step_started, step_images, compile_s, compile_images = started, 0, 0.0, 0
        self.optimizer.zero_grad(set_to_none=True)
        self.progress.start_epoch(epoch)
        self.observer.start_epoch(epoch, (epoch - 1) * self.steps_per_epoch)
        for i, batch in enumerate(prefetched(self.train_loader, self.task.stage_batch, self.device)):
            self.progress.batch_arrived()
            last_micro = (i + 1) % self.accum == 0 or i + 1 == n_batches
            sync = last_micro or not hasattr(self.model, "no_sync")
            loss = self._micro_batch(batch, sync)
            step_loss, images = loss.detach().float(), batch_size_of(batch)
            step_images += images
            self.observer.micro_batch(step_loss, images)
            if last_micro:
                if self.observer.measuring():
                    self.observer.gradients(self.scaler, self.optimizer)
                self.scaler.step(self.optimizer)
                self.scaler.update()
                self.optimizer.zero_grad(set_to_none=True)
                self.scheduler.step()
                if self.ema is not None:
                    self.ema.update()
                if timing:
                    timing = False
                    compile_s, compile_images = self._first_step_done(step_started, step_images)
                self.observer.after_step(self.optimizer.param_groups[0]["lr"])
                step_images = 0
            loss_sum += step_loss
            seen += images
            self.progress.step_done(i + 1, images * world, lambda: float(loss_sum / (i + 1)))
            if (i + 1) % LOG_EVERY_STEPS == 0:
                self._check_finite(loss_sum / (i + 1), epoch, i + 1)
            if dist_utils.any_rank(self.stop.requested, self.device):
                self.stop.request(self.stop.signal_name or "peer")
                return {"train:loss": float(loss_sum / (i + 1)), "partial": 1.0}
        mean_loss = float(loss_sum / max(n_batches, 1))
        self._check_finite(mean_loss, epoch, n_batches)
        stats = {"train:loss": dist_utils.mean_across_ranks(mean_loss, seen, self.device)}
        measured = seen - compile_images  # the compiling step is left out so that images/s is the steady rate
        if measured > 0:
            stats["train:throughput"] = measured * world / max(time.perf_counter() - started - compile_s, 1e-9)
        if compile_images and self.compiled:
            stats["train:compile_seconds"] = compile_s
        return stats

    def _micro_batch(self, batch: Any, sync: bool) -> torch.Tensor:
        """Forward and backward of one micro-batch; while the first compiled step runs, a failure falls back to
        eager mode (one warning) and the micro-batch runs again: an error eager mode repeats is raised as usual."""
        try:
            return self._forward_backward(batch, sync)
        except Exception as exc:
            if not self.compile_pending or not self.compiled:
                raise
            warn_fallback(exc)
            self.compiled = False
            self.model = self._wrap(self.network)
            self.optimizer.zero_grad(set_to_none=True)  # drops what the failed attempt may have accumulated
            return self._forward_backward(batch, sync)

    def _forward_backward(self, batch: Any, sync: bool) -> torch.Tensor:
        context = self.model.no_sync() if not sync else contextlib.nullcontext()
        with context:
            with self.precision.autocast():
                loss = self.task.training_loss(self.model, batch, self.device)
            self.scaler.scale(loss / self.accum).backward()
        return loss

    def _first_step_done(self, started: float, images: int) -> tuple[float, int]:
        """The first optimizer step under compile=1 ended: its time and images, reported apart from the rates."""
        synchronize(self.device)
        seconds = time.perf_counter() - started
        self.compile_pending = False
        world = dist_utils.world_size()
        self.progress.exclude(seconds, images * world)
        self.observer.exclude(seconds, images * world)
        if self.compiled:
            self.observer.compile_time(seconds)
            if dist_utils.is_main():
                self.emit(f"compile: {seconds:.1f} s (first training step; left out of train:throughput)")
        return seconds, images

    def evaluation_network(self) -> torch.nn.Module:
        """The weights validation, the best-epoch choice and the saved model use: the average with ema_decay > 0,
        else the plain (uncompiled, unwrapped) training network."""
        return self.ema.module if self.ema is not None else self.network

    def _check_finite(self, value: Any, epoch: int, step: int) -> None:
        if not math.isfinite(float(value)):
            self.observer.nonfinite_loss(float(value), epoch, step)
            raise TrainingDiverged(f"the training loss became {float(value)} at epoch {epoch}, step {step}; "
                                   "lower learning_rate, or use precision_dtype=float32")

    @torch.inference_mode()
    def validate(self) -> dict[str, float]:
        """Loss and task metrics over the whole validation set (all ranks combined)."""
        if self.val_loader is None:
            return {}
        model = self.evaluation_network()
        model.eval()
        evaluator = self.task.new_evaluator(self.hp, self.data)
        loss_sum, count = 0.0, 0
        for batch in self.val_loader:
            with self.precision.autocast():
                loss = self.task.validation_step(model, batch, self.device, evaluator)
            n = batch_size_of(batch)
            loss_sum += float(loss) * n
            count += n
        states = dist_utils.all_gather_objects(evaluator.state())
        if len(states) > 1:
            evaluator.merge([s for r, s in enumerate(states) if r != dist_utils.rank()])
        metrics = {"validation:loss": dist_utils.mean_across_ranks(loss_sum / max(count, 1), count, self.device)}
        metrics.update(evaluator.compute())
        self.prediction_counts = evaluator.prediction_counts()
        return metrics

    def _after_epoch(self, epoch: int, metrics: dict[str, float]) -> bool:
        """Log, track the best model, checkpoint; True when early stopping says stop."""
        self.history.append({"epoch": epoch, **metrics})
        if dist_utils.is_main():
            self.emit(format_metric_line(epoch, metrics))
            for line in self.task.extra_metric_lines(metrics):
                self.emit(line)
        objective = metrics.get(self.task.objective_metric)
        stop = False
        if objective is not None and math.isfinite(objective):
            if self.best_state is None or self._better(objective, self.best_metrics.get(self.task.objective_metric)):
                self.best_state = {k: v.detach().to("cpu", copy=True)
                                   for k, v in self.evaluation_network().state_dict().items()}
                self.best_epoch, self.best_metrics = epoch, dict(metrics)
            stop = self.early.update(epoch, objective) and self.s.early_stopping
        else:
            self.best_metrics = dict(metrics)
        self.save(epoch, partial=False)
        freq = self.s.checkpoint_frequency
        if freq and epoch % freq == 0 and self.on_snapshot is not None and dist_utils.is_main():
            self.on_snapshot(epoch, self.evaluation_network().state_dict())
        return stop

    def _better(self, value: float, best: Optional[float]) -> bool:
        if best is None or not math.isfinite(best):
            return True
        return value > best if self.early.maximize else value < best

    def fit(self) -> FitResult:
        """Train from the latest checkpoint (or from scratch) to the last epoch, a stop request or early stopping;
        the data loader workers are stopped on every way out, errors included."""
        try:
            return self._fit()
        finally:
            self.close()

    def close(self) -> None:
        """Stop the data loader worker processes; flush and close the TensorBoard event file."""
        self.observer.close()
        close_loader(self.train_loader)
        close_loader(self.val_loader)

    def _fit(self) -> FitResult:
        self.resume()
        completed, early_stopped = self.start_epoch, False
        for epoch in range(self.start_epoch + 1, self.s.epochs + 1):
            stats = self.train_epoch(epoch)
            if self.stop.requested:
                self.save(completed, partial=True)
                self.emit(f"stopped by {self.stop.signal_name} during epoch {epoch}; checkpoint saved, "
                          f"a restarted job resumes from it")
                break
            self.prediction_counts = None
            metrics = {**stats, **self.validate()}
            completed = epoch
            self.observer.epoch_end(epoch, metrics, self.progress.data_wait_share(), self.prediction_counts,
                                    final=epoch == self.s.epochs)
            if self._after_epoch(epoch, metrics):
                early_stopped = True
                self.emit(f"early stopping after epoch {epoch}: {self.task.objective_metric} has not improved by more "
                          f"than {self.s.early_stopping_tolerance:g} (relative) for {self.s.early_stopping_patience} epochs")
                break
            if self.stop.requested:
                break
        return self._result(completed, early_stopped)

    def _result(self, completed: int, early_stopped: bool) -> FitResult:
        if self.best_state is not None:
            state, selected, metrics = self.best_state, self.best_epoch, self.best_metrics
        else:
            state = {k: v.detach().cpu() for k, v in self.evaluation_network().state_dict().items()}
            selected, metrics = completed, (self.history[-1] if self.history else {})
        return FitResult(copy.copy(state), completed, selected, {k: v for k, v in metrics.items() if k != "epoch"},
                         stopped_by_signal=self.stop.requested, early_stopped=early_stopped, history=list(self.history))

