"""`smcv predict FOLDER --url http://127.0.0.1:PORT` against the real server (gunicorn) with tiny real models."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from smcv.cli import main as cli_main
from smcv.local_predict import predict_file
from tests.helpers.servers import free_port, wait_until_ready
from tests.helpers.exportmodels import CLASS_NAMES, write_tiny_model

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def image_folder(folder: Path, count: int = 3) -> list[Path]:
    rng = np.random.default_rng(3)
    folder.mkdir(parents=True)
    paths = []
    for index in range(count):
        path = folder / f"img{index}.{'png' if index % 2 else 'jpg'}"
        Image.fromarray(rng.integers(0, 256, (40 + 8 * index, 48, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    (folder / "notes.txt").write_text("not an image")
    return paths


def start_server(base: Path, log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = dict(os.environ, SAGEMAKER_BIND_TO_PORT=str(port), SAGEMAKER_BASE_DIR=str(base),
               SAGEMAKER_MODEL_SERVER_WORKERS="1", SMCV_DEVICE="cpu", OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join(filter(None, ["src", os.environ.get("PYTHONPATH")])))
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "smcv.serving.server"], env=env, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(process, url, log)
    except BaseException:
        process.kill()
        process.wait()
        raise
    return process, url


@pytest.fixture
def served_model(tmp_path, request):
    task = request.param
    model_dir = write_tiny_model(task, tmp_path / "ml" / "model")
    process, url = start_server(tmp_path / "ml", tmp_path / "server.log")
    try:
        yield task, model_dir, url
    finally:
        process.kill()
        process.wait()


def lines_by_image(text: str) -> dict[str, str]:
    return dict(line.split("\t", 1) for line in text.strip().splitlines())


@pytest.mark.parametrize("served_model", ["classification", "detection", "segmentation"], indirect=True)
def test_predict_a_folder_against_a_local_server(served_model, tmp_path, capsys):
    task, model_dir, url = served_model
    images = image_folder(tmp_path / "images")
    overlays = tmp_path / "overlays"
    args = ["predict", str(tmp_path / "images"), "--url", url, "--overlay-dir", str(overlays), "--min-score", "0"]
    if task == "detection":  # its JSON response has no names: they come from the model's manifest
        args += ["--model-dir", str(model_dir)]
    assert cli_main(args) == 0
    printed = lines_by_image(capsys.readouterr().out)
    assert sorted(printed) == sorted(str(p) for p in images)  # notes.txt skipped, one line per image
    for path in images:
        line = printed[str(path)]
        if task == "classification":  # names from the verbose response; the best class first
            probabilities = json.loads(predict_file(model_dir, path)[0])
            best = CLASS_NAMES[task][int(np.argmax(probabilities))]
            assert line.startswith(f"{best} {max(probabilities):.3f}")
        elif task == "detection":
            rows = json.loads(predict_file(model_dir, path)[0])["prediction"]  # best first
            first = f"{CLASS_NAMES[task][int(rows[0][0])]} {rows[0][1]:.2f} ["
            assert line.startswith(f"{len(rows)} object(s) with score >= 0: {first}") and line.endswith("(+10 more)")
        else:
            shares = [float(part.rsplit(" ", 1)[1].rstrip("%")) for part in line.split(", ")]
            assert sum(shares) == pytest.approx(100.0, abs=0.2)
            assert all(part.rsplit(" ", 1)[0] in CLASS_NAMES[task] for part in line.split(", "))
        overlay = Image.open(overlays / f"{path.stem}.overlay.png")
        original = Image.open(path).convert("RGB")
        assert overlay.size == original.size
        assert np.abs(np.asarray(overlay, dtype=int) - np.asarray(original, dtype=int)).sum() > 0


def test_unreachable_server_is_one_line_and_exit_2(tmp_path, capsys):
    image_folder(tmp_path / "images", 1)
    assert cli_main(["predict", str(tmp_path / "images"), "--url", f"http://127.0.0.1:{free_port()}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "cannot reach" in err and "is the server running" in err


@pytest.mark.parametrize("served_model", ["classification"], indirect=True)
def test_evaluate_against_a_local_server_gives_the_in_process_numbers(served_model, tmp_path, capsys):
    _, model_dir, url = served_model
    rng = np.random.default_rng(4)
    for name in CLASS_NAMES["classification"]:
        (tmp_path / "data" / name).mkdir(parents=True)
        for index in range(2):
            Image.fromarray(rng.integers(0, 256, (36, 40, 3), dtype=np.uint8)).save(tmp_path / "data" / name / f"{index}.png")
    common = ["evaluate", "--task", "classification", "--data", str(tmp_path / "data")]
    assert cli_main(common + ["--url", url]) == 0
    served = json.loads(capsys.readouterr().out)
    assert cli_main(common + ["--model-dir", str(model_dir)]) == 0
    local = json.loads(capsys.readouterr().out)
    assert served["images"] == 6 and served["accuracy"] == pytest.approx(local["accuracy"])
    assert served["balanced_accuracy"] == pytest.approx(local["balanced_accuracy"]) and served["auc"] == pytest.approx(local["auc"], abs=1e-5)
