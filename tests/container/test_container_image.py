"""The built image against the SageMaker container contract: entry points, failure file, SIGTERM, ports."""

from __future__ import annotations

import json
import re
import time
import uuid
from pathlib import Path

import pytest

from tests.container.helpers import (TASKS, docker, free_port, http, make_opt_ml, run_container,
                                      wait_for_ping)


def inspect(ref: str) -> dict:
    return json.loads(docker("image", "inspect", ref).stdout)[0]


def test_image_metadata(image, image_name):
    """Label for inference pipelines, tini -g as PID 1, `train` as default command, task env."""
    config = inspect(image)["Config"]
    assert config["Labels"].get("com.amazonaws.sagemaker.capabilities.accept-bind-to-port") == "true"
    assert config["Entrypoint"][:3] == ["/usr/bin/tini", "-g", "--"]
    assert config["Cmd"] == ["train"]
    assert "SMCV_TASK=classification" in config["Env"]
    assert "8080/tcp" in config.get("ExposedPorts", {})


def test_task_images_share_layers(image, image_name):
    """The three task tags differ only by ENV SMCV_TASK (no filesystem layer of their own)."""
    tag = image.rsplit(":", 1)[1] if ":" in image else "latest"
    layers = {}
    for task in TASKS:
        ref = f"{image_name}-{task}:{tag}"
        if docker("image", "inspect", ref, check=False).returncode != 0:
            pytest.skip(f"{ref} not built")
        info = inspect(ref)
        layers[task] = info["RootFS"]["Layers"]
        assert f"SMCV_TASK={task}" in info["Config"]["Env"]
    assert layers["classification"] == layers["detection"] == layers["segmentation"]


def test_no_argument_trains(image, opt_ml):
    """SDK v3 local mode starts the container without `train`: it must train, also as a non-root user."""
    for path in [opt_ml, *opt_ml.rglob("*")]:
        path.chmod(0o777 if path.is_dir() else 0o666)
    result = run_container(image, opt_ml, extra=("--user", "65534:65534", "-e", "HOME=/tmp"))
    assert result.returncode == 0, result.stdout + result.stderr
    manifest = json.loads((opt_ml / "model" / "manifest.json").read_text())
    assert manifest["task"] == "classification"
    assert (opt_ml / "model" / "model.pt").is_file()
    assert (opt_ml / "output" / "success").exists()
    assert not (opt_ml / "output" / "failure").exists()
    assert "#metrics epoch=1" in result.stdout


def test_bad_hyperparameter_fails_with_reason(image, tmp_path):
    """A bad value: non-zero exit and the cause, naming the hyperparameter, in /opt/ml/output/failure."""
    opt_ml = make_opt_ml(tmp_path / "opt_ml", num_layers="seventeen")
    result = run_container(image, opt_ml, "train")
    assert result.returncode != 0
    failure = (opt_ml / "output" / "failure").read_text()
    assert "num_layers" in failure, failure
    assert not (opt_ml / "model" / "model.pt").exists()


def test_entrypoint_passes_other_commands(image):
    """Anything but train/serve runs as given (debugging: docker run IMAGE python -c ...)."""
    result = docker("run", "--rm", image, "python", "-c", "import smcv, sys; print('ok', sys.executable)")
    assert result.stdout.strip() == "ok /opt/venv/bin/python"


def test_stop_checkpoints_and_restart_resumes(image, tmp_path, containers):
    """docker stop (= StopTrainingJob/spot SIGTERM) mid-training leaves a checkpoint; the next run resumes.

    num_workers=2 puts DataLoader workers in the process group that `tini -g` signals."""
    opt_ml = make_opt_ml(tmp_path / "opt_ml", epochs=50, num_workers=2)
    name = f"smcv-test-stop-{uuid.uuid4().hex[:8]}"
    containers.append(name)
    docker("run", "-d", "--name", name, "--shm-size=1g", "-v", f"{opt_ml}:/opt/ml", image, "train")
    checkpoints = opt_ml / "checkpoints"
    deadline = time.monotonic() + 300
    while not any(checkpoints.glob("checkpoint-epoch*.pt")):
        state = docker("inspect", "-f", "{{.State.Running}}", name).stdout.strip()
        assert state == "true", "training ended before the first checkpoint:\n" + docker("logs", name).stdout
        assert time.monotonic() < deadline, "no checkpoint within 300 s:\n" + docker("logs", name).stdout
        time.sleep(0.5)
    time.sleep(1.0)  # now inside the next epoch
    started = time.monotonic()
    docker("stop", "-t", "60", name)
    stop_seconds = time.monotonic() - started
    exit_code = int(docker("inspect", "-f", "{{.State.ExitCode}}", name).stdout.strip())
    logs = docker("logs", name)
    log_text = logs.stdout + logs.stderr
    assert stop_seconds < 55, f"SIGTERM did not end training (docker stop took {stop_seconds:.0f} s):\n{log_text}"
    assert exit_code == 0, f"exit code {exit_code} after SIGTERM:\n{log_text}"
    assert "SIGTERM" in log_text, log_text
    saved = sorted(p.name for p in checkpoints.glob("checkpoint-epoch*.pt"))
    assert saved, log_text
    last_epoch = int(re.match(r"checkpoint-epoch(\d+)", saved[-1]).group(1))

    # The restarted job (spot: same checkpoint dir) runs only the remaining epochs.
    hp_file = opt_ml / "input" / "config" / "hyperparameters.json"
    hps = json.loads(hp_file.read_text())
    hps["epochs"] = str(last_epoch + 1)
    hp_file.write_text(json.dumps(hps))
    result = run_container(image, opt_ml, "train")
    assert result.returncode == 0, result.stdout + result.stderr
    match = re.search(r"resuming from checkpoint (checkpoint-epoch\d+\S*): (\d+) epoch", result.stdout)
    assert match, result.stdout
    assert int(match.group(2)) == last_epoch
    assert f"#metrics epoch={last_epoch + 1};" in result.stdout
    assert f"#metrics epoch={last_epoch};" not in result.stdout
    assert (opt_ml / "model" / "manifest.json").is_file()


def test_serve_on_bind_to_port(image, trained_model, tmp_path, containers):
    """/ping and /invocations on the port in SAGEMAKER_BIND_TO_PORT (inference pipelines), as a non-root user on a
    read-only model mount, then a clean stop."""
    port = free_port()
    name = f"smcv-test-serve-{uuid.uuid4().hex[:8]}"
    containers.append(name)
    # as another user than the (root) training run, read-only: the artifact must be readable by others
    docker("run", "-d", "--name", name, "--network", "host", "-e", f"SAGEMAKER_BIND_TO_PORT={port}",
           "--user", "65534:65534", "-e", "HOME=/tmp",
           "-v", f"{trained_model / 'model'}:/opt/ml/model:ro", image, "serve")
    wait_for_ping(port, container=name)
    status, body, content_type = http("POST", f"http://127.0.0.1:{port}/invocations",
                                      (trained_model / "payload.png").read_bytes(),
                                      {"Content-Type": "image/png", "Accept": "application/json"}, timeout=60)
    assert status == 200, body
    assert content_type.startswith("application/json")
    probabilities = json.loads(body)
    assert len(probabilities) == 2 and abs(sum(probabilities) - 1) < 1e-3
    status, body, _ = http("POST", f"http://127.0.0.1:{port}/invocations", b"not an image",
                           {"Content-Type": "text/csv"})
    assert 400 <= status < 500
    started = time.monotonic()
    docker("stop", "-t", "30", name)
    assert time.monotonic() - started < 25, "serve did not stop on SIGTERM"
    assert int(docker("inspect", "-f", "{{.State.ExitCode}}", name).stdout.strip()) == 0


def make_script_mode_opt_ml(base: Path, script: str) -> Path:
    """/opt/ml as SageMaker lays it out for script mode: code/, config, model/ and output/ present."""
    for sub in ("code", "input/config", "model", "output"):
        (base / sub).mkdir(parents=True)
    (base / "input" / "config" / "hyperparameters.json").write_text(json.dumps({"greeting": "hello"}))
    (base / "input" / "config" / "inputdataconfig.json").write_text("{}")
    (base / "input" / "config" / "resourceconfig.json").write_text(
        json.dumps({"current_host": "algo-1", "hosts": ["algo-1"], "network_interface_name": "eth0"}))
    (base / "code" / "user_train.py").write_text(script)
    return base


def test_script_mode_hands_over_to_toolkit(image, tmp_path):
    """SAGEMAKER_PROGRAM: the sagemaker-training toolkit runs the user script, which can import smcv."""
    opt_ml = make_script_mode_opt_ml(tmp_path / "opt_ml", (
        "import argparse, os, smcv\n"
        "p = argparse.ArgumentParser(); p.add_argument('--greeting'); a = p.parse_args()\n"
        "open(os.path.join(os.environ['SM_MODEL_DIR'], 'from_script.txt'), 'w').write(a.greeting)\n"
        "print('user script ran with smcv', smcv.__name__)\n"))
    result = run_container(image, opt_ml, "train", env={"SAGEMAKER_PROGRAM": "user_train.py"}, timeout=180)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "script mode: handing over to the sagemaker-training toolkit" in output
    assert "user script ran with smcv" in output
    assert (opt_ml / "model" / "from_script.txt").read_text() == "hello"
    assert (opt_ml / "output" / "success").exists()


def test_script_mode_failure_is_reported_by_toolkit(image, tmp_path):
    """The toolkit reports a failing script with exit code 1 (not the script's own) and its failure file:
    the documented reason smcv's own algorithm does not run under the toolkit."""
    opt_ml = make_script_mode_opt_ml(tmp_path / "opt_ml", "import sys\nprint('failing on purpose')\nsys.exit(3)\n")
    result = run_container(image, opt_ml, "train", env={"SAGEMAKER_PROGRAM": "user_train.py"}, timeout=180)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "ExecuteUserScriptError" in (opt_ml / "output" / "failure").read_text()


def test_script_mode_script_gets_sigterm(image, tmp_path, containers):
    """docker stop in script mode: the user's SIGTERM handler runs and can save before the container ends
    (the toolkit alone would die at once and take the script with it)."""
    opt_ml = make_script_mode_opt_ml(tmp_path / "opt_ml", (
        "import os, signal, sys, time\n"
        "def on_term(signum, frame):\n"
        "    time.sleep(2)\n"
        "    open(os.path.join(os.environ['SM_MODEL_DIR'], 'saved_on_sigterm.txt'), 'w').write('ok')\n"
        "    sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, on_term)\n"
        "print('script waiting', flush=True)\n"
        "time.sleep(600)\n"))
    name = f"smcv-test-script-stop-{uuid.uuid4().hex[:8]}"
    containers.append(name)
    docker("run", "-d", "--name", name, "--hostname", "algo-1", "-v", f"{opt_ml}:/opt/ml",
           "-e", "SAGEMAKER_PROGRAM=user_train.py", image, "train")
    deadline = time.monotonic() + 60
    while "script waiting" not in docker("logs", name).stdout:
        assert time.monotonic() < deadline, docker("logs", name).stdout + docker("logs", name).stderr
        time.sleep(0.3)
    docker("stop", "-t", "30", name)
    logs = docker("logs", name)
    assert (opt_ml / "model" / "saved_on_sigterm.txt").read_text() == "ok", logs.stdout + logs.stderr
    assert int(docker("inspect", "-f", "{{.State.ExitCode}}", name).stdout.strip()) == 0, logs.stdout + logs.stderr
    assert (opt_ml / "output" / "success").exists()
