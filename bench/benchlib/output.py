"""One JSON object per bench run, with the facts every result carries (bench, device, torch)."""

from __future__ import annotations

import json
from typing import Any

import torch


def ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator rounded to 3 places (0 when the denominator is 0)."""
    return round(numerator / denominator, 3) if denominator else 0.0


def emit(bench: str, device: str, **fields: Any) -> dict[str, Any]:
    """Print the result as one JSON line and return it; floats rounded to 3 places."""
    result = {"bench": bench, "device": device, "torch": torch.__version__,
              **{k: round(v, 3) if isinstance(v, float) else v for k, v in fields.items()}}
    print(json.dumps(result), flush=True)
    return result
