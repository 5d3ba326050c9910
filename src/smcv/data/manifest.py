"""SageMaker Ground Truth augmented manifests: JSON Lines files, their S3 references, and their Pipe-mode records."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Optional

from smcv.data.recordio import iter_records
from smcv.errors import ConfigError, DataError

_MAX_LISTED = 8


def read_numbered_manifest(path: str | os.PathLike) -> list[tuple[int, dict]]:
    """(line number, JSON object) for each non-blank line; bad JSON raises DataError with file and line."""
    objects: list[tuple[int, dict]] = []
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DataError(f"{path}: manifest file not found") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: a manifest must be UTF-8 JSON Lines ({exc})") from None
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}, line {lineno}: invalid JSON ({exc.msg} at column {exc.colno}); "
                            f"an augmented manifest holds one JSON object per line") from None
        if not isinstance(obj, dict):
            raise DataError(f"{path}, line {lineno}: expected a JSON object, got {type(obj).__name__}")
        objects.append((lineno, obj))
    return objects


def read_manifest(path: str | os.PathLike) -> list[dict]:
    """The JSON objects of a manifest, one per non-blank line; bad JSON raises DataError with file and line."""
    return [obj for _, obj in read_numbered_manifest(path)]


def parse_attribute_names(value: object, label: str = "label") -> Optional[list[str]]:
    """An attribute_names setting (JSON list or comma-separated names; image attribute first), or None if unset."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        names: object = list(value)
        text = json.dumps(names)
    else:
        text = str(value).strip()
        if not text:
            return None
        try:
            names = json.loads(text) if text.startswith("[") else [p.strip() for p in text.split(",")]
        except json.JSONDecodeError as exc:
            raise ConfigError(f"attribute_names {text!r} is not a JSON list ({exc}); use "
                              f"'[\"source-ref\", \"{label}\"]'") from None
    if not isinstance(names, list) or len(names) < 2 or not all(isinstance(n, str) and n for n in names):
        raise ConfigError(f"attribute_names must list the image attribute then the {label} attribute, got {text!r}")
    return names


def _key_parts(ref: str) -> tuple[str, ...]:
    """The path components of an S3 URI's key (bucket dropped) or of a relative path."""
    if ref.startswith("s3://"):
        key = ref[len("s3://"):].partition("/")[2]
    else:
        key = ref.replace("\\", "/")
    return tuple(p for p in PurePosixPath(key).parts if p not in ("/", "."))


def resolve_ref(ref: str, search_dirs: Sequence[Path]) -> Path:
    """The local file behind an S3 URI or relative path: the whole key under a search dir, then shorter suffixes.

    For ``s3://bucket/a/b/img.png`` and dirs D, tries ``D/a/b/img.png``, then ``D/b/img.png``, then ``D/img.png``.
    """
    if not isinstance(ref, str) or not ref.strip():
        raise DataError(f"manifest reference {ref!r} is not a path or s3:// URI")
    if not ref.startswith("s3://") and os.path.isabs(ref) and os.path.isfile(ref):
        return Path(ref)
    parts = _key_parts(ref.strip())
    if not parts:
        raise DataError(f"manifest reference {ref!r} names no object (it ends at the bucket)")
    tried: list[str] = []
    for start in range(len(parts)):
        suffix = Path(*parts[start:])
        for directory in search_dirs:
            candidate = Path(directory) / suffix
            if candidate.is_file():
                return candidate
            tried.append(str(candidate))
    more = len(tried) - _MAX_LISTED
    shown = ", ".join(tried[:_MAX_LISTED]) + (f" and {more} more" if more > 0 else "")
    raise DataError(f"cannot find {ref} locally; looked for {shown}. Put the referenced files in the channel "
                    f"(keeping their S3 key path or at least their file name)")


def iter_pipe_attribute_records(
    stream: BinaryIO, attribute_names: Sequence[str], source: str = ""
) -> Iterator[dict[str, bytes]]:
    """Group Pipe-mode RecordIO records (one per attribute, in AttributeNames order) into one dict per object."""
    names = list(attribute_names)
    if not names:
        raise ConfigError("an augmented manifest channel needs AttributeNames (e.g. ['source-ref', 'class'])")
    current: dict[str, bytes] = {}
    count = 0
    for record in iter_records(stream, source):
        current[names[len(current)]] = record
        if len(current) == len(names):
            yield current
            current, count = {}, count + 1
    if current:
        missing = names[len(current):]
        raise DataError(f"{source or 'augmented manifest stream'}: ended in the middle of object {count + 1}: "
                        f"got {list(current)}, missing {missing}; check AttributeNames matches the manifest "
                        f"and every line has all of them")
