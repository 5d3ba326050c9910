"""Reliability suite: the long variants (marker reliability_long) run only when `-m` names that marker."""

from __future__ import annotations

import pytest

LONG = "reliability_long"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect the long variants unless the -m expression mentions reliability_long."""
    if LONG in (config.getoption("markexpr", "") or ""):
        return
    keep = [item for item in items if item.get_closest_marker(LONG) is None]
    if len(keep) != len(items):
        config.hook.pytest_deselected(items=[item for item in items if item.get_closest_marker(LONG) is not None])
        items[:] = keep
