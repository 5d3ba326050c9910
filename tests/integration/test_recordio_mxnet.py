"""Compatibility of smcv.data.recordio with real MXNet 1.9.1, run in its own venv (it needs numpy<1.24).

The venv comes from $SMCV_MXNET_PYTHON, else scripts/make_mxnet_env.sh (default $HOME/.cache/smcv/mxnet-venv),
created on first use; the tests skip when it cannot be made (for example offline).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from smcv.cli import main as cli_main
from smcv.data.im2rec import pack_lst
from smcv.data.images import decode_image
from smcv.data.lst import LstEntry, write_lst
from smcv.data.recordio import (
    MAGIC_BYTES,
    IndexedRecordReader,
    IRHeader,
    RecordWriter,
    iter_records,
    pack,
    read_index,
    scan_offsets,
    unpack,
)
from tests.helpers.classdata import write_class_folders

M = MAGIC_BYTES

# Payloads that exercise dmlc-core's splitting: aligned magic at the start, middle (adjacent) and end.
RAW_PAYLOADS = [b"", b"abc", M, M + b"head", b"tail" + M, b"abcd" + M + b"efgh" + M + M + b"ij", b"x" + M + b"yyy",
                bytes(range(256)) * 40 + M]


def _image_records() -> list[bytes]:
    """Image records (24-byte header, labels, payload); the first payload puts magic at aligned record offsets."""
    det = [2, 5, 1, 0.1, 0.2, 0.5, 0.75, 0, 0.3, 0.3, 0.9, 0.8]
    return [pack(IRHeader(0, 3.0, 100, 0), M + b"wxyz" + M + M + b"end"),
            pack(IRHeader(0, det, 101, 0), b"payload"),
            pack(IRHeader(0, [1.0], 102, 7), b"")]



def _run_mx(python: str, code: str, args: dict) -> dict:
    """Run a script under the mxnet interpreter with JSON args on stdin; return the JSON it prints last."""
    proc = subprocess.run([python, "-c", textwrap.dedent(code)], input=json.dumps(args), capture_output=True,
                          text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    if proc.returncode != 0:
        raise AssertionError(f"mxnet script failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


MX_READ = """
    import base64, json, sys
    import mxnet as mx
    args = json.load(sys.stdin)
    r = mx.recordio.MXIndexedRecordIO(args["idx"], args["rec"], "r")
    out = {"keys": list(r.keys), "records": [base64.b64encode(r.read_idx(k)).decode() for k in r.keys]}
    seq, rec = mx.recordio.MXRecordIO(args["rec"], "r"), []
    while True:
        item = seq.read()
        if item is None:
            break
        rec.append(base64.b64encode(item).decode())
    out["sequential"] = rec
    heads = []
    for k in args.get("image_keys", []):
        h, payload = mx.recordio.unpack(r.read_idx(k))
        label = h.label.tolist() if h.flag > 0 else float(h.label)
        heads.append([int(h.flag), label, int(h.id), int(h.id2), base64.b64encode(payload).decode()])
    out["headers"] = heads
    print(json.dumps(out))
"""


def test_mxnet_reads_our_records(mxpython, tmp_path):
    rec, idx = tmp_path / "ours.rec", tmp_path / "ours.idx"
    payloads = RAW_PAYLOADS + _image_records()
    keys = [1000 + 3 * i for i in range(len(payloads))]
    with RecordWriter(rec, idx) as w:
        for key, payload in zip(keys, payloads):
            w.write(payload, key)
    image_keys = keys[len(RAW_PAYLOADS):]
    out = _run_mx(mxpython, MX_READ, {"rec": str(rec), "idx": str(idx), "image_keys": image_keys})
    assert out["keys"] == keys
    assert [base64.b64decode(x) for x in out["records"]] == payloads
    assert [base64.b64decode(x) for x in out["sequential"]] == payloads
    for (flag, label, rid, rid2, payload), record in zip(out["headers"], _image_records()):
        ours, our_payload = unpack(record)
        assert (flag, rid, rid2) == (ours.flag, ours.id, ours.id2) and base64.b64decode(payload) == our_payload
        np.testing.assert_array_equal(np.asarray(label, dtype=np.float32), np.asarray(ours.label, dtype=np.float32))


MX_WRITE = """
    import base64, json, sys
    import numpy as np
    import mxnet as mx
    args = json.load(sys.stdin)
    w = mx.recordio.MXIndexedRecordIO(args["idx"], args["rec"], "w")
    for key, payload in zip(args["keys"], args["payloads"]):
        w.write_idx(key, base64.b64decode(payload))
    for key, (label, body) in zip(args["image_keys"], args["images"]):
        label = label if isinstance(label, float) else np.array(label, dtype=np.float32)
        w.write_idx(key, mx.recordio.pack(mx.recordio.IRHeader(0, label, key, 0), base64.b64decode(body)))
    w.close()
    print(json.dumps({"ok": True}))
"""


def test_we_read_mxnet_records_and_write_identical_files(mxpython, tmp_path):
    rec, idx = tmp_path / "mx.rec", tmp_path / "mx.idx"
    keys = list(range(len(RAW_PAYLOADS)))
    images = [(3.0, M + b"wxyz" + M), ([2.0, 5.0, 0.0, 0.1, 0.2, 0.5, 0.6], M * 2 + b"tail")]
    image_keys = [50, 51]
    _run_mx(mxpython, MX_WRITE, {"rec": str(rec), "idx": str(idx), "keys": keys,
                                 "payloads": [_b64(p) for p in RAW_PAYLOADS], "image_keys": image_keys,
                                 "images": [(label, _b64(body)) for label, body in images]})
    with open(rec, "rb") as f:
        records = list(iter_records(f, str(rec)))
    assert records[: len(RAW_PAYLOADS)] == RAW_PAYLOADS
    assert scan_offsets(rec) == list(read_index(idx).values())
    reader = IndexedRecordReader(rec, idx)
    assert reader.keys == keys + image_keys
    for key, (label, body) in zip(image_keys, images):
        header, payload = unpack(reader.read_key(key))
        assert payload == body and header.id == key
        np.testing.assert_allclose(header.label, label)

    ours_rec, ours_idx = tmp_path / "ours.rec", tmp_path / "ours.idx"
    with RecordWriter(ours_rec, ours_idx) as w:
        for key, payload in zip(keys + image_keys, records):
            w.write(payload, key)
    assert ours_rec.read_bytes() == rec.read_bytes()  # byte-identical framing, splits and padding
    assert ours_idx.read_text() == idx.read_text()


@pytest.fixture(scope="module")
def im2rec_script(mxpython) -> str:
    """The path of MXNet's own tools/im2rec.py, shipped in the mxnet wheel (it needs opencv)."""
    find = "import mxnet, os, cv2; print(os.path.join(os.path.dirname(mxnet.__file__), 'tools', 'im2rec.py'))"
    proc = subprocess.run([mxpython, "-c", find], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"MXNet's im2rec.py needs opencv in the mxnet venv; rerun scripts/make_mxnet_env.sh: {proc.stderr[-300:]}")
    return proc.stdout.strip().splitlines()[-1]


def _im2rec(mxpython: str, script: str, lst: Path, root: Path, *flags: str) -> None:
    """Run im2rec.py on one .lst file (alone in its folder: im2rec packs every .lst matching the prefix)."""
    proc = subprocess.run([mxpython, script, str(lst.with_suffix("")), str(root), "--no-shuffle", *flags],
                          capture_output=True, text=True)
    if proc.returncode != 0 or not lst.with_suffix(".rec").exists():
        raise AssertionError(f"im2rec failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")


@pytest.fixture()
def images(tmp_path) -> tuple[Path, list[LstEntry]]:
    root = tmp_path / "root"
    (root / "cls").mkdir(parents=True)
    colours = [(220, 30, 30), (30, 200, 40), (20, 40, 230)]
    sizes = [(48, 32), (30, 60), (40, 40)]
    entries = []
    for i, (colour, size) in enumerate(zip(colours, sizes)):
        Image.new("RGB", size, colour).save(root / f"cls/img{i}.jpg", quality=95)
        boxes = (2.0, 5.0, float(i), 0.1, 0.2, 0.5, 0.75 - 0.1 * i)
        entries.append(LstEntry(10 + i, boxes, f"cls/img{i}.jpg"))
    return root, entries


def test_we_read_mxnet_im2rec_output(mxpython, im2rec_script, tmp_path, images):
    root, entries = images
    for name, flags in [("scalar", ["--resize", "20", "--quality", "90"]), ("packed", ["--pack-label"])]:
        work = tmp_path / name
        work.mkdir()
        write_lst(work / f"{name}.lst", entries)
        _im2rec(mxpython, im2rec_script, work / f"{name}.lst", root, *flags)
        reader = IndexedRecordReader(work / f"{name}.rec", work / f"{name}.idx")
        assert reader.keys == [e.index for e in entries]
        for i, entry in enumerate(entries):
            header, payload = unpack(reader.read_at(i), name)
            assert header.id == entry.index and header.id2 == 0
            img = decode_image(payload, name)
            original = Image.open(root / entry.path)
            if name == "packed":
                assert header.flag == 7
                np.testing.assert_allclose(header.label, entry.labels, rtol=1e-6)
                assert img.size == original.size
            else:
                assert header.flag == 0 and header.label == entry.labels[0]
                assert min(img.size) == 20
            centre = np.asarray(img)[img.height // 2, img.width // 2].astype(int)
            assert np.abs(centre - np.asarray(original)[0, 0]).max() < 12  # same colour, RGB order kept


def test_pass_through_matches_im2rec_byte_for_byte(mxpython, im2rec_script, tmp_path, images):
    root, entries = images
    work = tmp_path / "pt"
    work.mkdir()
    write_lst(work / "pt.lst", entries)
    _im2rec(mxpython, im2rec_script, work / "pt.lst", root, "--pass-through", "--pack-label")
    pack_lst(entries, root, tmp_path / "ours.rec", tmp_path / "ours.idx", pass_through=True, pack_label=True)
    assert (tmp_path / "ours.rec").read_bytes() == (work / "pt.rec").read_bytes()
    assert (tmp_path / "ours.idx").read_text() == (work / "pt.idx").read_text()


def test_convert_classification_matches_im2rec_list_and_pass_through_pack(mxpython, im2rec_script, tmp_path):
    """`smcv convert-classification` lists, shuffles, splits and packs class folders exactly as im2rec does."""
    root = tmp_path / "root"
    write_class_folders(root, per_class=7, classes=("pneumonia", "normal", "effusion"), suffix=".png")
    write_class_folders(root / "nested", per_class=2, classes=("a",), suffix=".jpg")
    work = tmp_path / "mx"
    work.mkdir()
    proc = subprocess.run([mxpython, im2rec_script, str(work / "set"), str(root), "--list", "--recursive",
                           "--train-ratio", "0.7", "--test-ratio", "0.1"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for suffix in ("_train", "_val", "_test"):
        lst = work / f"set{suffix}.lst"
        single = work / suffix.strip("_")
        single.mkdir()
        (single / lst.name).write_bytes(lst.read_bytes())
        _im2rec(mxpython, im2rec_script, single / lst.name, root, "--pass-through")
    ours = tmp_path / "ours" / "set"
    assert cli_main(["convert-classification", "--root", str(root), "--output", str(ours), "--train-ratio", "0.7",
                     "--test-ratio", "0.1", "--pass-through"]) == 0
    for suffix in ("_train", "_val", "_test"):
        theirs = work / suffix.strip("_") / f"set{suffix}"
        assert Path(f"{ours}{suffix}.lst").read_bytes() == (work / f"set{suffix}.lst").read_bytes()
        assert Path(f"{ours}{suffix}.rec").read_bytes() == theirs.with_suffix(".rec").read_bytes()
        assert Path(f"{ours}{suffix}.idx").read_text() == theirs.with_suffix(".idx").read_text()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
