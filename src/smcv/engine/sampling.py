"""Weighted sampling with replacement that also works across processes (class_balance=sampling)."""

from __future__ import annotations

from typing import Iterator, Sequence

import torch
from torch.utils.data import Sampler


class WeightedSampler(Sampler[int]):
    """Each epoch draws len(weights) indices with replacement in proportion to `weights`; every rank draws the same
    sequence (from seed and epoch) and keeps its share (rank, rank + world, ...), so ranks see disjoint draws."""

    def __init__(self, weights: Sequence[float], rank: int = 0, world: int = 1, seed: int = 0) -> None:
        self.weights = torch.as_tensor(weights, dtype=torch.float64)
        if self.weights.ndim != 1 or not len(self.weights) or bool((self.weights < 0).any()) or float(self.weights.sum()) <= 0:
            raise ValueError("sample weights must be a non-empty list of non-negative numbers with a positive sum")
        self.rank, self.world, self.seed, self.epoch = rank, world, seed, 0
        self.per_rank = len(self.weights) // world

    def set_epoch(self, epoch: int) -> None:
        """A new draw per epoch (the loop calls this before each epoch, as for DistributedSampler)."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        drawn = torch.multinomial(self.weights, self.per_rank * self.world, replacement=True, generator=generator)
        return iter(drawn[self.rank::self.world].tolist())

    def __len__(self) -> int:
        return self.per_rank
