"""MXNet .lst files: ``index<TAB>label...<TAB>relative/path`` per line."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

from smcv.errors import DataError


class LstEntry(NamedTuple):
    """One .lst line: a unique integer index, one or more float labels, and a path relative to the image root."""

    index: int
    labels: tuple[float, ...]
    path: str


def _parse_index(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        value = float(text)  # "3.0" is accepted, "3.5" is not
        if not value.is_integer():
            raise
        return int(value)


def _parse_line(line: str, where: str) -> LstEntry:
    fields = [f.strip() for f in line.strip().split("\t")]
    if len(fields) < 3:
        hint = " (columns must be separated by tabs, not spaces)" if " " in line.strip() else ""
        raise DataError(f"{where}: expected 'index<TAB>label<TAB>...<TAB>path' (at least 3 tab-separated columns), "
                        f"got {len(fields)}{hint}: {line.strip()!r}")
    try:
        index = _parse_index(fields[0])
    except ValueError:
        raise DataError(f"{where}: the first column must be an integer index, got {fields[0]!r}") from None
    try:
        labels = tuple(float(x) for x in fields[1:-1])
    except ValueError:
        raise DataError(f"{where}: the label columns must be numbers, got {fields[1:-1]!r}") from None
    if not fields[-1]:
        raise DataError(f"{where}: the last column must be the image path, and it is empty")
    return LstEntry(index, labels, fields[-1])


def read_lst(path: str | os.PathLike) -> list[LstEntry]:
    """Parse a .lst file; malformed lines and duplicate indexes raise DataError naming the file and line."""
    return [entry for _, entry in read_numbered_lst(path)]


def read_numbered_lst(path: str | os.PathLike) -> list[tuple[int, LstEntry]]:
    """Parse a .lst file into (line number, entry) pairs, so later checks can name the line."""
    entries: list[tuple[int, LstEntry]] = []
    seen: dict[int, int] = {}
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DataError(f"{path}: .lst file not found") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: a .lst file must be UTF-8 text ({exc})") from None
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        entry = _parse_line(line, f"{path}, line {lineno}")
        if entry.index in seen:
            raise DataError(f"{path}, line {lineno}: index {entry.index} already used on line {seen[entry.index]}; "
                            f"indexes in a .lst file must be unique")
        seen[entry.index] = lineno
        entries.append((lineno, entry))
    return entries


def _format_label(value: float) -> str:
    value = float(value)
    return str(int(value)) if value.is_integer() else repr(value)


def write_lst(path: str | os.PathLike, entries: Iterable[LstEntry], label_format: str | None = None) -> None:
    """Write entries as a .lst file MXNet's im2rec can read; label_format="%f" writes labels as im2rec's list does."""
    lines = []
    for entry in entries:
        if any(c in entry.path for c in "\t\r\n"):
            raise DataError(f"cannot write {entry.path!r} to {path}: .lst paths may not contain tabs or newlines")
        if not entry.labels:
            raise DataError(f"cannot write index {entry.index} to {path}: a .lst entry needs at least one label")
        labels = "\t".join(label_format % x if label_format else _format_label(x) for x in entry.labels)
        lines.append(f"{int(entry.index)}\t{labels}\t{entry.path}\n")
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.writelines(lines)
