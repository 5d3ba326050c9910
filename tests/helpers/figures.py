"""Figures of the reliability tests, one JSON line per test, for docs/reliability.md to quote."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def report(figures: dict[str, Any]) -> None:
    """Print the test's figures as one JSON line (prefix RELIABILITY); also append it to $SMCV_RELIABILITY_FIGURES."""
    line = json.dumps(figures, sort_keys=False)
    print(f"RELIABILITY {line}", flush=True)
    target = os.environ.get("SMCV_RELIABILITY_FIGURES")
    if target:
        with open(Path(target), "a") as out:
            out.write(line + "\n")
