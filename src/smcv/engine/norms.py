"""Gradient and weight norms per layer group (the model's top-level child modules)."""

from __future__ import annotations

import math
from collections import defaultdict

import torch


def parameter_groups(model: torch.nn.Module) -> dict[str, list[torch.nn.Parameter]]:
    """Trainable parameters grouped by the name of the top-level child module holding them ('conv1', 'layer1', ...)."""
    groups: dict[str, list[torch.nn.Parameter]] = defaultdict(list)
    for name, param in model.named_parameters():
        if param.requires_grad:
            groups[name.split(".", 1)[0]].append(param)
    return dict(groups)


def _group_norms(groups: dict[str, list[torch.Tensor]]) -> dict[str, float]:
    names = [name for name, tensors in groups.items() if tensors]
    if not names:
        return {}
    per_group = torch.stack([torch.linalg.vector_norm(torch.stack(
        [torch.linalg.vector_norm(t.detach().float()) for t in groups[name]])) for name in names])
    return dict(zip(names, per_group.cpu().tolist()))  # one device sync for all groups


def gradient_norms(groups: dict[str, list[torch.nn.Parameter]]) -> dict[str, float]:
    """L2 norm of the gradients of each group (groups without gradients left out)."""
    return _group_norms({name: [p.grad for p in params if p.grad is not None] for name, params in groups.items()})


def weight_norms(groups: dict[str, list[torch.nn.Parameter]]) -> dict[str, float]:
    """L2 norm of the weights of each group."""
    return _group_norms({name: list(params) for name, params in groups.items()})


def total_norm(norms: dict[str, float]) -> float:
    """The L2 norm over all groups from the per-group norms."""
    return math.sqrt(sum(value * value for value in norms.values()))
