"""One classification sample before decoding: an image file (or a spooled Pipe record) and its label(s)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional


@dataclass(frozen=True)
class FileItem:
    """An image file, or with `record` that record of the .rec at `path`, and its label(s); origin names where the
    label came from (a .lst or manifest file and line, or a Pipe object)."""

    path: Path
    labels: tuple[float, ...]
    origin: str = ""
    record: Optional[int] = None
