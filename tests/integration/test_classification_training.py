"""Classification end to end over a fake /opt/ml: input formats, failures, pretrained weights, artifact."""

from __future__ import annotations

import io
import json
import struct
import zlib

import pytest
import torch
from PIL import Image

from smcv import artifact
from smcv.data.lst import LstEntry, write_lst
from smcv.data.recordio import MAGIC, IRHeader, RecordWriter, iter_records, pack
from smcv.local_predict import predict_file
from smcv.train import main as train_main
from tests.helpers.classdata import (TINY_CLASSIFICATION, write_class_folders, write_image, write_manifest,
                                    write_pipe_manifest)

pytestmark = pytest.mark.integration


def run_training(opt_ml, **overrides) -> int:
    opt_ml.configure({**TINY_CLASSIFICATION, **overrides})
    return train_main()


def assert_trained(opt_ml, classes=2):
    manifest = artifact.load_manifest(opt_ml.model_dir)
    state = artifact.load_state_dict(opt_ml.model_dir)
    assert manifest["task"] == "classification" and manifest["num_classes"] == classes
    assert "fc.weight" in state and state["fc.weight"].shape[0] == classes
    assert (opt_ml.base / "output" / "success").exists() and not opt_ml.failure
    return manifest


def test_class_folders_grey_rgb_rgba_png_jpeg(opt_ml):
    write_class_folders(opt_ml.channel("train"), 4, mode="L")
    write_image(opt_ml.channel("train") / "normal" / "rgb.jpg", 50, mode="RGB")
    write_image(opt_ml.channel("train") / "pneumonia" / "rgba.png", 200, mode="RGBA")
    write_class_folders(opt_ml.channel("validation"), 2, mode="RGB", suffix=".jpg")
    assert run_training(opt_ml, image_shape="3,16,16") == 0
    manifest = assert_trained(opt_ml)
    assert manifest["class_names"] == ["normal", "pneumonia"]
    assert manifest["data"]["train_format"] == "folders" and manifest["data"]["train_samples"] == 10
    metrics = json.loads((opt_ml.base / "output" / "data" / "metrics.json").read_text())
    assert [m["epoch"] for m in metrics] == [1, 2] and "validation:accuracy" in metrics[-1]
    threshold = manifest["decision_threshold"]  # binary with validation: chosen by Youden's J in the report pass
    assert threshold["rule"] == "youden" and threshold["positive_class"] == 1 and 0 < threshold["value"] <= 1
    evaluation = json.loads((opt_ml.base / "output" / "data" / "evaluation.json").read_text())
    assert evaluation["decision_threshold"] == threshold


def test_lst_channels_layout(opt_ml):
    for split in ("train", "validation"):
        images = write_class_folders(opt_ml.channel(split) / "img", 3)
        entries = [LstEntry(i, (float("pneumonia" in str(p)),), str(p.relative_to(opt_ml.channel(split))))
                   for i, p in enumerate(images)]
        write_lst(opt_ml.channel(f"{split}_lst") / f"{split}.lst", entries)
    assert run_training(opt_ml) == 0
    manifest = assert_trained(opt_ml)
    assert manifest["data"]["train_format"] == "lst" and manifest["class_names"] == ["0", "1"]


def png_with_magic(value: int, header_len: int) -> bytes:
    """A valid PNG carrying the RecordIO magic word at a 4-byte-aligned offset of the record payload."""
    buf = io.BytesIO()
    Image.new("L", (16, 16), value).save(buf, format="PNG")
    png = buf.getvalue()
    insert_at = 33  # after the signature (8) and the IHDR chunk (25)
    data_offset = header_len + insert_at + 8
    pad = (-data_offset) % 4
    data = b"\0" * pad + struct.pack("<I", MAGIC) + b"smcv"
    chunk = struct.pack(">I", len(data)) + b"smCv" + data + struct.pack(">I", zlib.crc32(b"smCv" + data))
    return png[:insert_at] + chunk + png[insert_at:]


def test_recordio_with_split_records(opt_ml):
    for split in ("train", "validation"):
        rec = opt_ml.channel(split) / f"{split}.rec"
        with RecordWriter(rec, rec.with_suffix(".idx")) as writer:
            for i in range(8):
                label = i % 2
                writer.write(pack(IRHeader(0, float(label), i, 0), png_with_magic(50 + 150 * label, 24)), key=i)
        raw = rec.read_bytes()
        records = list(iter_records(io.BytesIO(raw)))
        assert len(records) == 8
        # each record was split in two parts (two framing headers); the payload's own magic is re-inserted on read
        assert raw.count(struct.pack("<I", MAGIC)) == 16
        assert all(struct.pack("<I", MAGIC) in record for record in records)
        assert any((struct.unpack_from("<I", raw, o + 4)[0] >> 29) == 1 for o in range(0, len(raw) - 8, 4)
                   if struct.unpack_from("<I", raw, o)[0] == MAGIC)
    opt_ml.configure({**TINY_CLASSIFICATION, "num_training_samples": 8},
                     {"train": {"ContentType": "application/x-recordio", "TrainingInputMode": "File"},
                      "validation": {"ContentType": "application/x-recordio", "TrainingInputMode": "File"}})
    assert train_main() == 0
    assert assert_trained(opt_ml)["data"]["train_format"] == "recordio"


def test_pipe_mode_with_aliased_channel_names(opt_ml, monkeypatch, capsys):
    """Pipe-mode 'training'/'val' channels: SageMaker's FIFOs are training_0 and val_0 (no train_0 to wait for),
    read once: smcv.train decides the channels once and passes the decision down. The records take the same fast
    path as files: decoded once, augmented on the training device (augmentation_device=gpu; the CPU here)."""
    from smcv import inputs

    spools = []
    real_spool = inputs.spool_pipe_channels
    monkeypatch.setattr(inputs, "spool_pipe_channels", lambda *a, **k: spools.append(1) or real_spool(*a, **k))
    data_dir = opt_ml.base / "input" / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    for fifo in ("training_0", "val_0"):  # regular files stand in for the FIFOs: both are read once, in order
        with RecordWriter(data_dir / fifo) as writer:
            for i in range(8):
                label = i % 2
                writer.write(pack(IRHeader(0, float(label), i, 0), png_with_magic(50 + 150 * label, 24)))
    pipe = {"ContentType": "application/x-recordio", "TrainingInputMode": "Pipe"}
    opt_ml.configure({**TINY_CLASSIFICATION, "num_training_samples": 8, "augmentation_type": "crop_color_transform",
                      "augmentation_device": "gpu", "resize": 20}, {"training": pipe, "val": pipe})
    assert train_main() == 0, opt_ml.failure
    assert assert_trained(opt_ml)["data"]["train_format"] == "recordio"
    assert len(spools) == 1
    out = capsys.readouterr().out
    assert "training augmentation (crop_color_transform) runs on the training device" in out
    assert "decoded 8 images once into memory" in out


def test_ground_truth_manifest_in_file_mode(opt_ml):
    """s3:// references resolved to the channel's files; class names from class-metadata reach the model."""
    write_manifest(opt_ml.channel("train"), 4)
    write_manifest(opt_ml.channel("validation"), 2, name="validation.jsonl")
    assert run_training(opt_ml, num_training_samples=8) == 0, opt_ml.failure
    manifest = assert_trained(opt_ml)
    assert manifest["class_names"] == ["cat", "dog"] and manifest["data"]["train_format"] == "manifest"
    assert manifest["data"]["train_samples"] == 8 and manifest["data"]["validation_samples"] == 4
    body, _ = predict_file(opt_ml.model_dir, opt_ml.channel("train") / "images" / "dog0.png", "application/json;verbose")
    assert json.loads(body)["labels"] == ["cat", "dog"]


def test_ground_truth_manifest_in_pipe_mode(opt_ml):
    """Pipe mode, RecordWrapperType RecordIO: image and label records alternate in the 'training_0' and
    'validation_0' FIFOs (plain files here), spooled once."""
    data_dir = opt_ml.base / "input" / "data"
    write_pipe_manifest(data_dir / "training_0", ["0", "1"] * 4)
    write_pipe_manifest(data_dir / "validation_0", ["0", "1"])
    pipe = {"ContentType": "application/x-recordio", "TrainingInputMode": "Pipe", "RecordWrapperType": "RecordIO",
            "AttributeNames": ["source-ref", "class"]}
    opt_ml.configure({**TINY_CLASSIFICATION, "num_training_samples": 8}, {"training": pipe, "validation": pipe})
    assert train_main() == 0, opt_ml.failure
    manifest = assert_trained(opt_ml)
    assert manifest["data"]["train_format"] == "manifest" and manifest["data"]["validation_samples"] == 2


def test_training_channel_alias_and_prediction(opt_ml, tmp_path):
    write_class_folders(opt_ml.channel("training"), 4)
    assert run_training(opt_ml) == 0
    assert_trained(opt_ml)
    body, ctype = predict_file(opt_ml.model_dir, opt_ml.channel("training") / "normal" / "0.png")
    probs = json.loads(body)
    assert ctype == "application/json" and len(probs) == 2 and sum(probs) == pytest.approx(1.0, abs=1e-5)
    body, _ = predict_file(opt_ml.model_dir, opt_ml.channel("training") / "normal" / "0.png", "application/jsonlines")
    assert json.loads(body)["prediction"] == pytest.approx(probs)


@pytest.mark.parametrize("setup, fragment", [
    ("missing", "the 'train' channel is missing"),
    ("empty", "channel 'train'"),
    ("corrupt", "bad.png"),
    ("classes", "num_classes"),
    ("manifest", "train.manifest, line 2: cannot find s3://bucket/job/images/cat1.png locally"),
])
def test_failure_file_for_bad_data(opt_ml, setup, fragment):
    if setup == "empty":
        opt_ml.channel("train")
    elif setup == "corrupt":
        write_class_folders(opt_ml.channel("train"), 2)
        (opt_ml.channel("train") / "normal" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    elif setup == "classes":
        write_class_folders(opt_ml.channel("train"), 2, classes=("a", "b", "c"))
    elif setup == "manifest":
        write_manifest(opt_ml.channel("train"), 2)
        (opt_ml.channel("train") / "images" / "cat1.png").unlink()
    elif setup == "missing":
        opt_ml.channel("validation")
        write_class_folders(opt_ml.channel("validation"), 1)
    assert run_training(opt_ml) == 2
    failure = opt_ml.failure
    assert fragment in failure and failure.startswith("DataError: ") and "Traceback" not in failure
    assert len(failure.strip().splitlines()) == 1
    assert not (opt_ml.model_dir / "model.pt").exists()


def test_failure_file_for_bad_hyperparameter(opt_ml):
    write_class_folders(opt_ml.channel("train"), 2)
    assert run_training(opt_ml, augmentation_type="flip") == 2
    assert "'augmentation_type'" in opt_ml.failure and "'crop_color'" in opt_ml.failure


def test_pretrained_weights_from_a_channel(opt_ml, capsys):
    write_class_folders(opt_ml.channel("train"), 3)
    assert run_training(opt_ml) == 0
    own = artifact.load_state_dict(opt_ml.model_dir)
    pretrained = opt_ml.channel("pretrained")
    reference = {k: v for k, v in own.items()}
    torch.save({**reference, "fc.weight": torch.zeros(1000, 512), "fc.bias": torch.zeros(1000)}, pretrained / "resnet18.pth")
    for leftover in ("model", "checkpoints"):
        for f in (opt_ml.base / leftover).glob("*"):
            f.unlink()
    capsys.readouterr()
    assert run_training(opt_ml, use_pretrained_model=1, epochs=1, learning_rate=1e-9, optimizer="sgd") == 0
    assert "loaded 120/122 tensors from resnet18.pth; 2 left initialised" in capsys.readouterr().out
    after = artifact.load_state_dict(opt_ml.model_dir)
    torch.testing.assert_close(after["layer1.0.conv1.weight"], own["layer1.0.conv1.weight"])


def test_pretrained_requested_but_missing(opt_ml):
    write_class_folders(opt_ml.channel("train"), 2)
    assert run_training(opt_ml, use_pretrained_model=1) == 2
    assert "'pretrained' input channel" in opt_ml.failure and "use_pretrained_model=0" in opt_ml.failure


def test_incremental_training_from_model_channel(opt_ml, capsys):
    write_class_folders(opt_ml.channel("train"), 3)
    assert run_training(opt_ml) == 0
    model_channel = opt_ml.channel("model")
    for name in ("model.pt", "manifest.json"):
        (model_channel / name).write_bytes((opt_ml.model_dir / name).read_bytes())
    capsys.readouterr()
    for f in opt_ml.checkpoint_dir.glob("*"):
        f.unlink()
    assert run_training(opt_ml, epochs=1) == 0
    assert "initialised from the model channel" in capsys.readouterr().out


def test_a_job_stopped_before_its_first_epoch_saves_a_model_marked_untrained(opt_ml):
    from smcv.contract import Paths
    from smcv.engine.signals import StopRequest
    from smcv.train import run

    write_class_folders(opt_ml.channel("train"), 4)
    opt_ml.configure({**TINY_CLASSIFICATION, "num_training_samples": 8})
    stop = StopRequest()
    stop.request("SIGTERM")  # as if the stop came during the first step
    assert run(Paths.from_env(), stop) == 0
    manifest = artifact.load_manifest(opt_ml.model_dir)
    assert manifest["epochs_completed"] == 0 and manifest["trained"] is False
    assert run_training(opt_ml, num_training_samples=8) == 0
    assert artifact.load_manifest(opt_ml.model_dir)["trained"] is True


def test_tensorboard_event_files_and_the_advisor(opt_ml, capsys):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    write_class_folders(opt_ml.channel("train"), 8)
    write_class_folders(opt_ml.channel("validation"), 2)
    assert run_training(opt_ml, tensorboard=1) == 0
    assert "WARNING smcv.advisor: advisor: NoAugmentation: 16 training samples" in capsys.readouterr().out
    advice = json.loads((opt_ml.base / "output" / "data" / "advisor.json").read_text())
    assert [f["rule"] for f in advice["findings"]] == ["NoAugmentation"]
    events = EventAccumulator(str(opt_ml.base / "output" / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"step/loss", "step/learning_rate", "step/images_per_second", "epoch/train:loss", "epoch/validation:loss",
            "epoch/validation:accuracy", "epoch/train:throughput", "grad_norm/total"} <= tags
    for group in ("conv1", "layer1", "layer4", "fc"):
        assert f"grad_norm/{group}" in tags and f"weight_norm/{group}" in tags
    assert [e.step for e in events.Scalars("epoch/validation:loss")] == [1, 2]


def test_health_rules_fire_for_diverging_and_stalled_runs(opt_ml, capsys, monkeypatch):
    from smcv.engine import health

    write_class_folders(opt_ml.channel("train"), 8)
    assert run_training(opt_ml, optimizer="sgd", learning_rate=1.0) in (0, 2)  # NaN ends the job with a user error
    out = capsys.readouterr().out
    assert "health rule ExplodingGradient: " in out or "health rule NonFiniteLoss: " in out
    for leftover in ("model", "checkpoints"):
        for f in (opt_ml.base / leftover).glob("*.pt"):
            f.unlink()
    monkeypatch.setattr(health, "LOSS_WINDOW_INTERVALS", 2)  # one interval per epoch here: 2 windows of 2 epochs
    assert run_training(opt_ml, learning_rate=1e-9, epochs=4) == 0
    out = capsys.readouterr().out
    assert out.count("health rule LossNotDecreasing: ") == 1 and "health rule ExplodingGradient" not in out


def test_class_balance_sampling_on_imbalanced_folders(opt_ml, capsys):
    train = opt_ml.channel("train")
    write_class_folders(train, 10, classes=("many",))
    write_class_folders(opt_ml.base / "few", 2, classes=("few",))
    (opt_ml.base / "few" / "few").rename(train / "few")
    assert run_training(opt_ml, num_training_samples=12, class_balance="sampling") == 0
    manifest = assert_trained(opt_ml)
    assert manifest["data"]["class_counts"] == [2, 10]
    out = capsys.readouterr().out
    assert "class_balance=sampling" in out and "advisor: ClassImbalance" not in out


def test_weight_average_and_test_time_flip_reach_the_artifact_and_the_endpoint(opt_ml):
    write_class_folders(opt_ml.channel("train"), 4)
    write_class_folders(opt_ml.channel("validation"), 2)
    assert run_training(opt_ml, epochs=1, ema_decay="0.9", test_time_flip="1") == 0
    manifest = assert_trained(opt_ml)
    assert manifest["test_time_flip"] is True and manifest["hyperparameters"]["ema_decay"] == 0.9
    saved = torch.load(opt_ml.base / "checkpoints" / "checkpoint-epoch0001.pt", weights_only=True)
    assert saved["ema"]["updates"] == 1  # 8 images, one step of 8
    state = artifact.load_state_dict(opt_ml.model_dir)  # the artifact is the average, not the live weights
    torch.testing.assert_close(state["fc.weight"], saved["ema"]["weights"]["fc.weight"])
    assert not torch.equal(state["fc.weight"], saved["model"]["fc.weight"])
    image = opt_ml.channel("train") / "normal" / "0.png"
    flipped = json.loads(predict_file(opt_ml.model_dir, image)[0])
    artifact.update_manifest(opt_ml.model_dir, {"test_time_flip": False})
    plain = json.loads(predict_file(opt_ml.model_dir, image)[0])
    assert sum(flipped) == pytest.approx(1.0, abs=1e-5) and flipped != pytest.approx(plain, abs=1e-7)
