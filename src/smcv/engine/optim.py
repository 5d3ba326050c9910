"""Optimizers and learning-rate schedules named as the SageMaker built-ins name them."""

from __future__ import annotations

import math
import re
from typing import Iterable

import torch

from smcv.errors import ConfigError
from smcv.task_api import TrainSettings

OPTIMIZERS = ("sgd", "nag", "adam", "rmsprop", "adadelta", "adagrad")
SCHEDULERS = ("step", "poly", "cosine", "none")


def trainable_parameters(model: torch.nn.Module, freeze_pattern: str | None) -> list[torch.nn.Parameter]:
    """Parameters to optimise; names matching freeze_pattern (a regex) are frozen."""
    if freeze_pattern:
        try:
            regex = re.compile(freeze_pattern)
        except re.error as exc:
            raise ConfigError(f"freeze_layer_pattern {freeze_pattern!r} is not a valid regular expression: {exc}") from exc
        for name, param in model.named_parameters():
            if regex.search(name):
                param.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ConfigError(f"freeze_layer_pattern {freeze_pattern!r} froze every layer; nothing is left to train")
    return params


def build_optimizer(params: Iterable[torch.nn.Parameter], s: TrainSettings) -> torch.optim.Optimizer:
    """The optimizer named by settings.optimizer."""
    name = s.optimizer.lower()
    if name in ("sgd", "nag"):
        return torch.optim.SGD(params, lr=s.learning_rate, momentum=s.momentum, weight_decay=s.weight_decay,
                               nesterov=name == "nag" and s.momentum > 0)
    if name == "adam":
        return torch.optim.Adam(params, lr=s.learning_rate, betas=(s.beta_1, s.beta_2), eps=s.eps, weight_decay=s.weight_decay)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=s.learning_rate, alpha=s.rho, eps=s.eps, weight_decay=s.weight_decay,
                                   momentum=s.rmsprop_momentum)
    if name == "adadelta":
        return torch.optim.Adadelta(params, lr=s.learning_rate, rho=s.rho, eps=s.eps, weight_decay=s.weight_decay)
    if name == "adagrad":
        return torch.optim.Adagrad(params, lr=s.learning_rate, eps=s.eps, weight_decay=s.weight_decay)
    raise ConfigError(f"unknown optimizer {s.optimizer!r}; use one of {', '.join(OPTIMIZERS)}")


def lr_factor(s: TrainSettings, progress_epochs: float) -> float:
    """Multiplier of the initial learning rate after `progress_epochs` (fractional) epochs."""
    kind = s.lr_scheduler.lower()
    if kind == "step" or kind == "none":
        passed = sum(1 for step in s.lr_scheduler_step if progress_epochs >= step) if kind == "step" else 0
        return s.lr_scheduler_factor ** passed
    frac = min(max(progress_epochs / max(s.epochs, 1), 0.0), 1.0)
    if kind == "poly":
        return (1.0 - frac) ** 0.9
    if kind == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * frac))
    raise ConfigError(f"unknown lr_scheduler {s.lr_scheduler!r}; use one of {', '.join(SCHEDULERS)}")


def warmup_factor(s: TrainSettings, progress_epochs: float) -> float:
    """Linear warm-up multiplier: progress / lr_warmup_epochs until it reaches 1 (1 without warm-up)."""
    if s.lr_warmup_epochs <= 0:
        return 1.0
    return min(1.0, max(progress_epochs, 0.0) / s.lr_warmup_epochs)


def build_scheduler(optimizer: torch.optim.Optimizer, s: TrainSettings, steps_per_epoch: int) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-optimizer-step schedule following lr_factor, times the warm-up (the first step already moves: the
    warm-up counts the step being taken)."""
    steps = max(steps_per_epoch, 1)
    lr_factor(s, 0.0)  # validate the name early
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(s, step / steps) * warmup_factor(s, (step + 1) / steps))
