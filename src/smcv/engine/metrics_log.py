"""Metric lines SageMaker metric-definition regexes can parse, and the matching definitions."""

from __future__ import annotations

import math
import re

NUMBER = r"([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"
ENGINE_METRICS = ("train:loss", "train:throughput", "train:compile_seconds", "validation:loss")


def format_metric_line(epoch: int, metrics: dict[str, float]) -> str:
    """One stable, tab-free line: `#metrics epoch=3; train:loss=0.1234; validation:accuracy=0.8123;`."""
    parts = [f"#metrics epoch={epoch};"]
    for name, value in metrics.items():
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            continue
        parts.append(f"{name}={value:.6g};")
    return " ".join(parts)


def metric_regex(name: str) -> str:
    """The regex whose first group captures `name`'s value in a metric line."""
    return re.escape(name) + "=" + NUMBER + ";"


def metric_definitions(names: list[str]) -> list[dict[str, str]]:
    """SageMaker MetricDefinitions for the given metric names (plus the engine's own)."""
    ordered = list(dict.fromkeys(list(names) + list(ENGINE_METRICS)))
    return [{"Name": name, "Regex": metric_regex(name)} for name in ordered]
