"""MXNet RecordIO (.rec/.idx) framing and image-record payloads, read and written without mxnet.

Framing (dmlc-core): each part is ``uint32 magic, uint32 lrecord, data, zero padding to 4 bytes``, little-endian,
with ``lrecord = cflag << 29 | length``. A payload holding the magic word at a 4-byte-aligned offset is split
there into parts flagged 1 (first), 2 (middle) and 3 (last), the magic words themselves left out; cflag 0 is a
whole record. Readers put the magic back between parts.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, NamedTuple

import numpy as np

from smcv.errors import DataError

MAGIC = 0xCED7230A
MAGIC_BYTES = struct.pack("<I", MAGIC)
MAX_PART_LENGTH = (1 << 29) - 1
_LENGTH_MASK = (1 << 29) - 1
_HEADER = struct.Struct("<II")
_IR = struct.Struct("<IfQQ")
IR_SIZE = _IR.size  # 24 bytes

FLAG_WHOLE, FLAG_FIRST, FLAG_MIDDLE, FLAG_LAST = 0, 1, 2, 3


def _pad(length: int) -> int:
    return (4 - length % 4) % 4


def split_payload(payload: bytes) -> list[tuple[int, bytes]]:
    """The (cflag, part) pieces dmlc-core writes for one payload."""
    view = memoryview(payload)
    parts: list[tuple[int, bytes]] = []
    start = 0
    pos = payload.find(MAGIC_BYTES)
    while pos >= 0:
        if pos % 4 == 0:
            parts.append((FLAG_FIRST if not parts else FLAG_MIDDLE, bytes(view[start:pos])))
            start = pos + 4
            pos = payload.find(MAGIC_BYTES, start)
        else:
            pos = payload.find(MAGIC_BYTES, pos + 1)
    parts.append((FLAG_LAST if parts else FLAG_WHOLE, bytes(view[start:])))
    return parts


class RecordWriter:
    """Writes a .rec file (and optionally its .idx) that MXNet's MXRecordIO/MXIndexedRecordIO can read."""

    def __init__(self, rec_path: str | os.PathLike, idx_path: str | os.PathLike | None = None) -> None:
        self.rec_path = Path(rec_path)
        self.idx_path = Path(idx_path) if idx_path is not None else None
        self._rec = open(self.rec_path, "wb")
        self._idx = open(self.idx_path, "w", encoding="ascii") if self.idx_path is not None else None
        self._offset = 0
        self.count = 0

    def write(self, payload: bytes, key: int | None = None) -> int:
        """Append one record; return its byte offset. With an .idx, key defaults to the record number."""
        offset = self._offset
        for cflag, part in split_payload(bytes(payload)):
            if len(part) > MAX_PART_LENGTH:
                raise DataError(
                    f"{self.rec_path}: a record of {len(payload)} bytes is too large for RecordIO "
                    f"(parts must be under 2^29 bytes); store smaller or re-encoded images"
                )
            self._rec.write(_HEADER.pack(MAGIC, cflag << 29 | len(part)))
            self._rec.write(part)
            self._offset += _HEADER.size + len(part)
        pad = _pad(self._offset)
        if pad:
            self._rec.write(b"\0" * pad)
            self._offset += pad
        if self._idx is not None:
            self._idx.write(f"{self.count if key is None else int(key)}\t{offset}\n")
        self.count += 1
        return offset

    def close(self) -> None:
        """Flush and close the files."""
        self._rec.close()
        if self._idx is not None:
            self._idx.close()

    def __enter__(self) -> "RecordWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _read_exact(stream: BinaryIO, n: int) -> bytes:
    """Read n bytes, fewer only at end of stream (handles short reads from pipes)."""
    data = stream.read(n)
    if data is None:
        data = b""
    if len(data) == n or not data:
        return data
    chunks = [data]
    got = len(data)
    while got < n:
        more = stream.read(n - got)
        if not more:
            break
        chunks.append(more)
        got += len(more)
    return b"".join(chunks)


def _label(source: str) -> str:
    return source or "RecordIO stream"


def _read_header(stream: BinaryIO, source: str, offset: int, in_split: bool) -> tuple[int, int] | None:
    """Read and check one part header; return (cflag, length), or None at a clean end of stream."""
    raw = _read_exact(stream, _HEADER.size)
    if not raw:
        if in_split:
            raise DataError(f"{_label(source)}: ends at byte offset {offset} inside a split record; "
                            f"the file is truncated")
        return None
    if len(raw) < _HEADER.size:
        raise DataError(f"{_label(source)}: truncated record header at byte offset {offset}; the file is cut short")
    magic, lrecord = _HEADER.unpack(raw)
    if magic != MAGIC:
        raise DataError(
            f"{_label(source)}: bad RecordIO magic 0x{magic:08x} at byte offset {offset} (expected 0x{MAGIC:08x}); "
            f"the file is not MXNet RecordIO or is corrupt"
        )
    cflag, length = lrecord >> 29, lrecord & _LENGTH_MASK
    if cflag > FLAG_LAST:
        raise DataError(f"{_label(source)}: invalid record flag {cflag} at byte offset {offset}; the file is corrupt")
    if in_split != (cflag in (FLAG_MIDDLE, FLAG_LAST)):
        state = "inside a split record" if in_split else "outside a split record"
        raise DataError(f"{_label(source)}: record part with flag {cflag} {state} at byte offset {offset}; "
                        f"the file is corrupt")
    return cflag, length


def read_record(stream: BinaryIO, source: str = "", offset: int = 0) -> tuple[bytes | None, int]:
    """Read the logical record at the stream position (byte `offset`); return (payload or None at end, next offset)."""
    parts: list[bytes] = []
    while True:
        header = _read_header(stream, source, offset, in_split=bool(parts))
        if header is None:
            return None, offset
        cflag, length = header
        padded = length + _pad(length)
        data = _read_exact(stream, padded)
        if len(data) < padded:
            raise DataError(f"{_label(source)}: truncated record at byte offset {offset}: header says {length} bytes, "
                            f"only {len(data)} follow; the file is cut short")
        parts.append(data[:length] if padded != length else data)
        offset += _HEADER.size + padded
        if cflag in (FLAG_WHOLE, FLAG_LAST):
            return (parts[0] if len(parts) == 1 else MAGIC_BYTES.join(parts)), offset


def iter_records(stream: BinaryIO, source: str = "") -> Iterator[bytes]:
    """Yield each logical record of a RecordIO stream, reading sequentially (no seek: FIFOs work)."""
    offset = 0
    while True:
        payload, offset = read_record(stream, source, offset)
        if payload is None:
            return
        yield payload


def scan_offsets(rec_path: str | os.PathLike) -> list[int]:
    """Byte offsets of the start of every logical record of a .rec file, by walking its headers."""
    source = str(rec_path)
    offsets: list[int] = []
    size = os.path.getsize(rec_path)
    with open(rec_path, "rb") as f:
        offset, in_split = 0, False
        while True:
            header = _read_header(f, source, offset, in_split)
            if header is None:
                return offsets
            cflag, length = header
            if cflag in (FLAG_WHOLE, FLAG_FIRST):
                offsets.append(offset)
            end = offset + _HEADER.size + length + _pad(length)
            if end > size:
                raise DataError(f"{source}: truncated record at byte offset {offset}: header says {length} bytes, "
                                f"only {max(size - offset - _HEADER.size, 0)} follow; the file is cut short")
            offset = end
            f.seek(offset)
            in_split = cflag in (FLAG_FIRST, FLAG_MIDDLE)


def read_index(idx_path: str | os.PathLike) -> dict[int, int]:
    """Key to byte offset from an .idx file (lines ``key<TAB>offset``), in file order."""
    index: dict[int, int] = {}
    try:
        text = Path(idx_path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{idx_path}: .idx file not found") from None
    except UnicodeDecodeError:
        raise DataError(f"{idx_path}: an .idx file must be text lines 'key<TAB>offset'") from None
    for lineno, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        try:
            key, offset = (int(x) for x in fields)
        except ValueError:
            raise DataError(f"{idx_path}, line {lineno}: expected 'key<TAB>offset' with two integers, "
                            f"got {line.strip()!r}; regenerate the .idx (im2rec) or omit it") from None
        if offset < 0:
            raise DataError(f"{idx_path}, line {lineno}: negative offset {offset}")
        index[key] = offset
    return index


class _PositionalReader:
    """A read-only stream over a file descriptor using pread, so threads sharing the descriptor never race."""

    def __init__(self, fd: int, offset: int) -> None:
        self._fd, self._pos = fd, offset

    def read(self, n: int) -> bytes:
        data = os.pread(self._fd, n, self._pos)
        self._pos += len(data)
        return data


def index_beside(rec_path: str | os.PathLike) -> Path | None:
    """The .idx file next to a .rec (same stem), or None when there is none (the reader then scans the .rec)."""
    idx = Path(rec_path).with_suffix(".idx")
    return idx if idx.is_file() else None


class IndexedRecordReader:
    """Random access to the records of a .rec file, by position or by .idx key; safe across fork and pickling."""

    def __init__(self, rec_path: str | os.PathLike, idx_path: str | os.PathLike | None = None) -> None:
        self.rec_path = Path(rec_path)
        if not self.rec_path.is_file():
            raise DataError(f"{self.rec_path}: RecordIO file not found")
        if idx_path is not None:
            index = read_index(idx_path)
        else:
            index = dict(enumerate(scan_offsets(self.rec_path)))
        self._keys = list(index)
        self._index = index
        self._fd: int | None = None
        self._pid: int | None = None

    def __len__(self) -> int:
        return len(self._keys)

    @property
    def keys(self) -> list[int]:
        """The record keys: .idx keys in file order, or 0..n-1 without an .idx."""
        return list(self._keys)

    def _descriptor(self) -> int:
        if self._fd is None or self._pid != os.getpid():
            self._fd = os.open(self.rec_path, os.O_RDONLY)  # a forked child gets its own descriptor
            self._pid = os.getpid()
        return self._fd

    def read_at(self, i: int) -> bytes:
        """The i-th record (in .idx order)."""
        return self.read_key(self._keys[i])

    def read_key(self, key: int) -> bytes:
        """The record stored under an .idx key."""
        try:
            offset = self._index[key]
        except KeyError:
            raise KeyError(f"{self.rec_path}: no record with key {key}") from None
        payload, _ = read_record(_PositionalReader(self._descriptor(), offset), str(self.rec_path), offset)
        if payload is None:
            raise DataError(f"{self.rec_path}: index offset {offset} for key {key} is past the end of the file; "
                            f"the .idx does not belong to this .rec")
        return payload

    def close(self) -> None:
        """Close this process's descriptor (it is reopened on the next read)."""
        if self._fd is not None and self._pid == os.getpid():
            os.close(self._fd)
        self._fd = self._pid = None

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_fd"] = state["_pid"] = None
        return state

    def __enter__(self) -> "IndexedRecordReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


class IRHeader(NamedTuple):
    """The header of an MXNet image record: flag (label count, 0 for a scalar), label, id, id2."""

    flag: int
    label: float | np.ndarray
    id: int
    id2: int


def pack(header: IRHeader, payload: bytes) -> bytes:
    """An image record: the 24-byte header, the float32 labels when the label is an array, then the payload."""
    flag, label, rid, rid2 = header
    if isinstance(label, (int, float, np.number)):
        return _IR.pack(0, float(label), int(rid), int(rid2)) + bytes(payload)
    labels = np.asarray(label, dtype="<f4").ravel()
    return _IR.pack(labels.size, 0.0, int(rid), int(rid2)) + labels.tobytes() + bytes(payload)


def unpack(record: bytes, source: str = "") -> tuple[IRHeader, bytes]:
    """Split an image record into its header (label an array when flag > 0) and payload."""
    if len(record) < IR_SIZE:
        raise DataError(f"{_label(source)}: image record of {len(record)} bytes is shorter than its "
                        f"{IR_SIZE}-byte header; the record was not written by im2rec/pack")
    flag, label, rid, rid2 = _IR.unpack_from(record)
    if flag == 0:
        return IRHeader(0, label, rid, rid2), record[IR_SIZE:]
    end = IR_SIZE + 4 * flag
    if len(record) < end:
        raise DataError(f"{_label(source)}: image record (id {rid}) says it holds {flag} labels but is only "
                        f"{len(record)} bytes long; the record is corrupt")
    labels = np.frombuffer(record, dtype="<f4", count=flag, offset=IR_SIZE).astype(np.float32)
    return IRHeader(flag, labels, rid, rid2), record[end:]
