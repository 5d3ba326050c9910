"""Mixed precision: BF16 autocast where the GPU supports it, FP16 with loss scaling on request, FP32 otherwise."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Optional

import torch

from smcv.errors import ConfigError


@dataclass(frozen=True)
class Precision:
    """The autocast dtype (None = full precision) and whether a GradScaler is needed."""

    dtype: Optional[torch.dtype]
    device_type: str

    @property
    def needs_scaler(self) -> bool:
        return self.dtype == torch.float16 and self.device_type == "cuda"

    @property
    def name(self) -> str:
        return {None: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16"}[self.dtype]

    def autocast(self):
        """A context manager for forward passes."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device_type, dtype=self.dtype)


def choose_precision(precision_dtype: str, amp: bool, device: torch.device) -> Precision:
    """float16 -> FP16 autocast with loss scaling; otherwise BF16 autocast where the GPU has it and amp is on."""
    requested = (precision_dtype or "float32").lower()
    if requested not in ("float32", "float16", "bfloat16"):
        raise ConfigError(f"unknown precision_dtype {precision_dtype!r}; use float32, float16 or bfloat16")
    if device.type != "cuda":
        return Precision(None, device.type)
    bf16_ok = torch.cuda.is_bf16_supported()
    if requested == "float16":
        return Precision(torch.float16, "cuda")
    if requested == "bfloat16" and not bf16_ok:
        raise ConfigError("precision_dtype=bfloat16 needs a GPU with BF16 support (Ampere or newer); use float16")
    if (requested == "bfloat16" or amp) and bf16_ok:
        return Precision(torch.bfloat16, "cuda")
    if amp:
        return Precision(torch.float16, "cuda")
    return Precision(None, "cuda")
