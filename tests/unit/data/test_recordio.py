"""Tests for smcv.data.recordio: framing, magic splitting, streaming, random access and image headers."""

from __future__ import annotations

import io
import os
import pickle
import struct
import tempfile
import threading

import numpy as np
import pytest

from smcv.data.recordio import (
    MAGIC,
    MAGIC_BYTES,
    IndexedRecordReader,
    IRHeader,
    RecordWriter,
    iter_records,
    pack,
    read_index,
    scan_offsets,
    split_payload,
    unpack,
)
from smcv.errors import DataError

M = MAGIC_BYTES
TRICKY = [
    b"",
    b"a",
    b"abcde",
    bytes(range(256)) * 3,
    M,  # the whole payload is the magic
    M + b"head",  # magic at the very start
    b"tail" + M,  # magic at the very end
    b"abcd" + M + b"efgh" + M + M + b"ij",  # several, two adjacent
    b"x" + M + b"yyy",  # unaligned: not split
    M * 3,
]


def _parts(path) -> list[tuple[int, int]]:
    """(cflag, length) of every physical part in a .rec file."""
    data = open(path, "rb").read()
    out, pos = [], 0
    while pos < len(data):
        magic, lrec = struct.unpack_from("<II", data, pos)
        assert magic == MAGIC
        length = lrec & ((1 << 29) - 1)
        out.append((lrec >> 29, length))
        pos += 8 + length + (-length) % 4
    return out


def _write(path, payloads, idx=None, keys=None):
    with RecordWriter(path, idx) as w:
        return [w.write(p, None if keys is None else keys[i]) for i, p in enumerate(payloads)]


def test_round_trip_and_padding(tmp_path):
    rec = tmp_path / "a.rec"
    offsets = _write(rec, TRICKY)
    assert os.path.getsize(rec) % 4 == 0
    with open(rec, "rb") as f:
        assert list(iter_records(f, str(rec))) == TRICKY
    assert scan_offsets(rec) == offsets


def test_split_layout_matches_dmlc(tmp_path):
    rec = tmp_path / "s.rec"
    _write(rec, [b"abcd" + M + b"efgh" + M + M + b"ij", M, b"tail" + M, b"x" + M + b"yyy"])
    assert _parts(rec) == [
        (1, 4), (2, 4), (2, 0), (3, 2),  # split at offsets 4, 12, 16
        (1, 0), (3, 0),  # the payload is exactly the magic
        (1, 4), (3, 0),  # magic at the aligned end
        (0, 8),  # unaligned magic stays inside a whole record
    ]
    # no aligned magic survives inside the data, so a reader can always resync on part headers
    assert split_payload(M * 2) == [(1, b""), (2, b""), (3, b"")]


def test_index_file_and_reader(tmp_path):
    rec, idx = tmp_path / "a.rec", tmp_path / "a.idx"
    keys = [10 * i + 7 for i in range(len(TRICKY))]
    offsets = _write(rec, TRICKY, idx, keys)
    assert idx.read_text().splitlines()[1] == f"17\t{offsets[1]}"
    assert read_index(idx) == dict(zip(keys, offsets))
    reader = IndexedRecordReader(rec, idx)
    assert len(reader) == len(TRICKY) and reader.keys == keys
    assert [reader.read_at(i) for i in range(len(reader))] == TRICKY
    assert reader.read_key(37) == TRICKY[3]
    with pytest.raises(KeyError):
        reader.read_key(5)
    plain = IndexedRecordReader(rec)  # no .idx: offsets from a scan, keys are positions
    assert plain.keys == list(range(len(TRICKY))) and plain.read_at(7) == TRICKY[7]


def test_writer_without_keys_numbers_records(tmp_path):
    rec, idx = tmp_path / "a.rec", tmp_path / "a.idx"
    _write(rec, [b"x", b"y"], idx)
    assert list(read_index(idx)) == [0, 1]


def test_reader_pickles_and_survives_fork_and_threads(tmp_path):
    rec = tmp_path / "a.rec"
    payloads = [bytes([i]) * (i * 37) + M for i in range(40)]
    _write(rec, payloads)
    reader = IndexedRecordReader(rec)
    assert reader.read_at(1) == payloads[1]  # opens a descriptor in this process
    clone = pickle.loads(pickle.dumps(reader))
    assert clone.read_at(2) == payloads[2]

    results: dict[int, bool] = {}

    def work(t: int) -> None:
        results[t] = all(reader.read_at(i) == payloads[i] for i in range(t % 3, 40, 3) for _ in range(3))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(results.values()) and len(results) == 4

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: must reopen, not share the parent's descriptor
        ok = reader.read_at(5) == payloads[5] and reader._pid == os.getpid()
        os.write(w, b"1" if ok else b"0")
        os._exit(0)
    os.close(w)
    assert os.read(r, 1) == b"1"
    os.waitpid(pid, 0)
    os.close(r)
    assert reader.read_at(6) == payloads[6]


def test_iter_records_from_os_pipe_with_short_writes():
    payloads = [b"abcd" + M + b"efgh", b"", b"hello world", M + M]
    r, w = os.pipe()

    def produce() -> None:
        data = _encoded(payloads)
        with os.fdopen(w, "wb", buffering=0) as out:
            for i in range(0, len(data), 3):  # tiny writes force short reads
                out.write(data[i:i + 3])

    thread = threading.Thread(target=produce)
    thread.start()
    with os.fdopen(r, "rb", buffering=0) as stream:  # unbuffered: read() may return fewer bytes
        got = list(iter_records(stream, "pipe"))
    thread.join()
    assert got == payloads


def _encoded(payloads) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "x.rec")
        _write(path, payloads)
        return open(path, "rb").read()


def _read_all(data: bytes):
    return list(iter_records(io.BytesIO(data), "x.rec"))


def test_corruption_reports_offset(tmp_path):
    good = _encoded([b"abcdefgh", b"12345678"])  # two records of 16 bytes each
    bad_magic = good[:16] + b"\0\0\0\0" + good[20:]
    with pytest.raises(DataError, match=r"x\.rec.*magic.*byte offset 16"):
        _read_all(bad_magic)
    with pytest.raises(DataError, match=r"truncated record at byte offset 16"):
        _read_all(good[:-3])
    with pytest.raises(DataError, match=r"truncated record header at byte offset 16"):
        _read_all(good[:20])
    bad_flag = good[:4] + struct.pack("<I", 5 << 29 | 8) + good[8:]
    with pytest.raises(DataError, match=r"flag 5 at byte offset 0"):
        _read_all(bad_flag)


def test_broken_split_sequences():
    def part(flag: int, data: bytes = b"") -> bytes:
        return M + struct.pack("<I", flag << 29 | len(data)) + data + b"\0" * ((-len(data)) % 4)

    with pytest.raises(DataError, match=r"flag 2 outside a split record at byte offset 0"):
        _read_all(part(2))
    with pytest.raises(DataError, match=r"flag 0 inside a split record at byte offset 8"):
        _read_all(part(1) + part(0))
    with pytest.raises(DataError, match=r"ends at byte offset 12 inside a split record"):
        _read_all(part(1, b"ab"))
    assert _read_all(part(1, b"ab") + part(2) + part(3, b"c")) == [b"ab" + M + M + b"c"]


def test_split_rejoin_keeps_bytes_exactly():
    payload = b"ab\0\0" + M + b"cd"
    assert _read_all(_encoded([payload])) == [payload]


def test_scan_offsets_detects_truncation(tmp_path):
    rec = tmp_path / "t.rec"
    rec.write_bytes(_encoded([b"abcdefgh", b"12345678"])[:-4])
    with pytest.raises(DataError, match=r"t\.rec: truncated record at byte offset 16"):
        scan_offsets(rec)


def test_index_past_end_and_bad_index(tmp_path):
    rec, idx = tmp_path / "a.rec", tmp_path / "a.idx"
    _write(rec, [b"abc"])
    idx.write_text("0\t0\n1\t64\n")
    reader = IndexedRecordReader(rec, idx)
    assert reader.read_key(0) == b"abc"
    with pytest.raises(DataError, match="past the end"):
        reader.read_key(1)
    idx.write_text("0\t0\n\nzero\t8\n")
    with pytest.raises(DataError, match=r"a\.idx, line 3"):
        read_index(idx)
    with pytest.raises(DataError, match="not found"):
        IndexedRecordReader(tmp_path / "missing.rec")


def test_pack_unpack_scalar_and_array():
    rec = pack(IRHeader(0, 3.0, 42, 0), b"IMG")
    assert len(rec) == 24 + 3
    header, payload = unpack(rec)
    assert header == IRHeader(0, 3.0, 42, 0) and payload == b"IMG"

    labels = np.array([2, 5, 1, 0.1, 0.2, 0.5, 0.75], dtype=np.float32)
    header, payload = unpack(pack(IRHeader(99, labels, 7, 1), b"IMG"))
    assert header.flag == 7 and header.id == 7 and header.id2 == 1 and payload == b"IMG"
    np.testing.assert_array_equal(header.label, labels)
    assert header.label.dtype == np.float32

    raw = pack(IRHeader(0, [1.0, 2.0], 1, 0), b"")
    assert struct.unpack_from("<IfQQ", raw) == (2, 0.0, 1, 0)


def test_unpack_rejects_short_records():
    with pytest.raises(DataError, match="shorter than its 24-byte header"):
        unpack(b"\0" * 10, "x.rec")
    short = struct.pack("<IfQQ", 3, 0.0, 5, 0) + b"\0" * 8
    with pytest.raises(DataError, match=r"id 5.*3 labels"):
        unpack(short)
