"""Tests for smcv.data.manifest: JSON Lines parsing, S3 reference resolution and Pipe-mode grouping."""

from __future__ import annotations

import io
import json

import pytest

from smcv.data.manifest import iter_pipe_attribute_records, read_manifest, resolve_ref
from smcv.data.recordio import MAGIC_BYTES, RecordWriter
from smcv.errors import ConfigError, DataError


def test_read_manifest(tmp_path):
    path = tmp_path / "train.manifest"
    lines = [{"source-ref": "s3://b/a.jpg", "class": 0}, {"source-ref": "s3://b/c.jpg", "class": "1"}]
    path.write_text(json.dumps(lines[0]) + "\n\n" + json.dumps(lines[1]) + "\n")
    assert read_manifest(path) == lines


@pytest.mark.parametrize("bad, pattern", [('{"a": 1', "invalid JSON"), ("[1, 2]", "expected a JSON object")])
def test_read_manifest_errors(tmp_path, bad, pattern):
    path = tmp_path / "m.manifest"
    path.write_text('{"a": 1}\n' + bad + "\n")
    with pytest.raises(DataError, match=rf"m\.manifest, line 2: {pattern}"):
        read_manifest(path)


def test_resolve_ref_prefers_longest_key_suffix(tmp_path):
    chan, extra = tmp_path / "train", tmp_path / "images"
    for p in [chan / "jobs/x/img.png", chan / "x/img.png", extra / "img.png", extra / "other.png"]:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")
    dirs = [chan, extra]
    assert resolve_ref("s3://bucket/jobs/x/img.png", dirs) == chan / "jobs/x/img.png"
    assert resolve_ref("s3://bucket/deep/prefix/x/img.png", dirs) == chan / "x/img.png"
    assert resolve_ref("s3://bucket/somewhere/other.png", dirs) == extra / "other.png"
    assert resolve_ref("x/img.png", dirs) == chan / "x/img.png"
    absolute = str(extra / "img.png")
    assert resolve_ref(absolute, []) == extra / "img.png"


def test_resolve_ref_not_found_lists_places(tmp_path):
    with pytest.raises(DataError, match=r"cannot find s3://b/k/missing\.png locally; looked for .*k/missing\.png"):
        resolve_ref("s3://b/k/missing.png", [tmp_path])
    with pytest.raises(DataError, match="names no object"):
        resolve_ref("s3://bucket/", [tmp_path])


def _stream(tmp_path, records) -> io.BytesIO:
    with RecordWriter(tmp_path / "p.rec") as w:
        for r in records:
            w.write(r)
    return io.BytesIO((tmp_path / "p.rec").read_bytes())


def test_pipe_grouping(tmp_path):
    img = b"\xff\xd8\xff" + MAGIC_BYTES + b"jpeg"
    records = [img, b'{"class": 1}', img + b"2", b'{"class": 0}']
    groups = list(iter_pipe_attribute_records(_stream(tmp_path, records), ["source-ref", "class"], "train_0"))
    assert groups == [{"source-ref": img, "class": b'{"class": 1}'},
                      {"source-ref": img + b"2", "class": b'{"class": 0}'}]


def test_pipe_grouping_errors(tmp_path):
    stream = _stream(tmp_path, [b"a", b"b", b"c"])
    with pytest.raises(DataError, match=r"train_0: ended in the middle of object 2.*missing \['class'\]"):
        list(iter_pipe_attribute_records(stream, ["source-ref", "class"], "train_0"))
    with pytest.raises(ConfigError, match="AttributeNames"):
        list(iter_pipe_attribute_records(io.BytesIO(), [], "x"))


def test_missing_manifest(tmp_path):
    with pytest.raises(DataError, match="manifest file not found"):
        read_manifest(tmp_path / "none.manifest")
