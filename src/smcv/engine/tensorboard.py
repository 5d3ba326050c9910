"""TensorBoard event files: a small writer facade that is a no-op when TensorBoard is off or on other ranks."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional

log = logging.getLogger(__name__)


def tensorboard_enabled(setting: str, directory: Optional[Path]) -> bool:
    """The `tensorboard` hyperparameter: auto (on when the folder exists), 1/true (always), 0/false (never)."""
    value = str(setting or "auto").strip().lower()
    if value in ("0", "false") or directory is None:
        return False
    return value in ("1", "true") or directory.is_dir()


class Board:
    """Scalars and text for TensorBoard; every method is a no-op on a closed or disabled board."""

    def __init__(self, writer: Any = None, directory: Optional[Path] = None) -> None:
        self.writer, self.directory = writer, directory

    @property
    def enabled(self) -> bool:
        return self.writer is not None

    def scalars(self, values: dict[str, float], step: int) -> None:
        """One scalar per tag at `step`; non-numbers are skipped."""
        if self.writer is None:
            return
        for tag, value in values.items():
            if isinstance(value, (int, float)):
                self.writer.add_scalar(tag, float(value), step)

    def text(self, tag: str, text: str, step: int) -> None:
        """A text entry (health rules, advice)."""
        if self.writer is not None:
            self.writer.add_text(tag, text, step)

    def flush(self) -> None:
        """Write pending events to disk."""
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        """Flush and close the event file; safe to call more than once."""
        if self.writer is not None:
            writer, self.writer = self.writer, None
            writer.close()


def open_board(setting: str, directory: Optional[Path], main_process: bool) -> Board:
    """A Board writing to `directory` when TensorBoard is enabled and this is the main process, else a no-op."""
    if not main_process or directory is None or not tensorboard_enabled(setting, directory):
        return Board()
    from torch.utils.tensorboard import SummaryWriter  # the tensorboard package loads only when enabled

    directory.mkdir(parents=True, exist_ok=True)
    log.info("TensorBoard event files go to %s", directory)
    return Board(SummaryWriter(log_dir=str(directory)), directory)
