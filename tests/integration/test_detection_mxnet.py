"""MXNet 1.9.1 itself reads a detection .rec written by `smcv convert-detection`: mx.recordio.unpack gives the
packed [2, 5, class, xmin, ymin, xmax, ymax, ...] labels, and mx.image.ImageDetIter (the built-in's reader) parses
them into per-object rows. Runs in the separate mxnet venv ($SMCV_MXNET_PYTHON, else scripts/make_mxnet_env.sh);
skipped when that venv cannot be made (for example offline)."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap

import numpy as np
import pytest

from smcv.cli import main as cli_main
from tests.helpers.detdata import boxes_of, manifest_channel, scene

pytestmark = pytest.mark.integration


MX_READ = """
    import json, sys
    import mxnet as mx
    args = json.load(sys.stdin)
    r = mx.recordio.MXIndexedRecordIO(args["idx"], args["rec"], "r")
    labels, sizes = [], []
    for k in r.keys:
        header, payload = mx.recordio.unpack(r.read_idx(k))
        labels.append([int(header.flag), header.label.tolist(), int(header.id)])
        sizes.append(list(mx.image.imdecode(payload).shape))
    it = mx.image.ImageDetIter(batch_size=len(r.keys), data_shape=(3, 32, 32), path_imgrec=args["rec"],
                               path_imgidx=args["idx"], shuffle=False)
    batch = it.next()
    print(json.dumps({"labels": labels, "sizes": sizes, "iter_label": batch.label[0].asnumpy().tolist()}))
"""



def test_mxnet_reads_converted_detection_records(mxpython, tmp_path):
    manifest = manifest_channel(tmp_path, "train", range(5)) / "output.manifest"  # image 4 has no objects: skipped
    assert cli_main(["convert-detection", "--input", str(manifest), "--output", str(tmp_path / "det")]) == 0
    args = {"rec": str(tmp_path / "det.rec"), "idx": str(tmp_path / "det.idx")}
    proc = subprocess.run([mxpython, "-c", textwrap.dedent(MX_READ)], input=json.dumps(args), capture_output=True,
                          text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    kept = [i for i in range(5) if scene(i)]
    assert [ident for _, _, ident in out["labels"]] == list(range(len(kept)))
    for (flag, label, _), row, size, i in zip(out["labels"], out["iter_label"], out["sizes"], kept):
        objects = scene(i)
        assert flag == 2 + 5 * len(objects) and label[:2] == [2.0, 5.0] and size == [64, 64, 3]
        packed = np.asarray(label[2:]).reshape(-1, 5)
        assert packed[:, 0].tolist() == [c for c, *_ in objects]  # GT ids 3, 7 renumbered to 0, 1
        np.testing.assert_allclose(packed[:, 1:], boxes_of(i), atol=1e-6)
        parsed = np.asarray(row)  # ImageDetIter: one row per object, -1 padding rows
        np.testing.assert_allclose(parsed[: len(objects)], packed, atol=1e-6)
        assert (parsed[len(objects):] == -1).all()
