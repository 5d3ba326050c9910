"""ImageNet weights a job needs: lookup order, SHA-256 checks, downloads into the torch hub cache from a loopback
server that serves weights our own training produced, and the fail-fast error before any data is read."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
import torchvision

from smcv.errors import ConfigError
from smcv.pretrained import TORCHVISION_FILES, WeightsNeed, imagenet_need, read_state_dict, resolve_weights
from smcv.tasks import get_task
from smcv.train import main as train_main
from smcv.weight_files import cache_dir, expected_prefix, sha256_of
from tests.helpers.segdata import TINY_HP, builtin_layout
from tests.helpers.weights_server import save_torchvision_style

WEIGHTS_MESSAGE = ("'pretrained' input channel", "build_and_push.sh", "SMCV_WEIGHTS_URL", "use_pretrained_model=0")


def tiny_published(folder: Path, value: float = 1.0) -> Path:
    """A small state_dict saved under a torchvision-style name (resnet18-<sha prefix>.pth)."""
    return save_torchvision_style({"conv1.weight": torch.full((2, 3), value)}, folder, "resnet18")


def test_file_names_are_torchvisions():
    """The download names are torchvision's DEFAULT weights files, and each carries its SHA-256 prefix."""
    enums = {"resnet18": torchvision.models.ResNet18_Weights.DEFAULT, "resnet34": torchvision.models.ResNet34_Weights.DEFAULT,
             "resnet50": torchvision.models.ResNet50_Weights.DEFAULT, "resnet101": torchvision.models.ResNet101_Weights.DEFAULT,
             "resnet152": torchvision.models.ResNet152_Weights.DEFAULT,
             "vgg16_features": torchvision.models.VGG16_Weights.IMAGENET1K_FEATURES}
    assert TORCHVISION_FILES == {arch: Path(w.url).name for arch, w in enums.items()}
    assert all(expected_prefix(name) for name in TORCHVISION_FILES.values())
    assert expected_prefix("vgg16_features-amdegroot-88682ab5.pth") == "88682ab5"
    assert expected_prefix("resnet18.pth") is None


def test_each_task_declares_its_need():
    detection, segmentation, classification = (get_task(n) for n in ("detection", "segmentation", "classification"))
    resolve = lambda task, **hp: task.schema().resolve({"num_classes": "2", "num_training_samples": "4", **hp})  # noqa: E731
    assert detection.pretrained_need(resolve(detection)).file_name == "vgg16_features-amdegroot-88682ab5.pth"
    assert detection.pretrained_need(resolve(detection, base_network="resnet-50")).file_name == "resnet50-11ad3fa6.pth"
    with pytest.raises(ConfigError, match="'tiny' has no pretrained weights"):
        detection.pretrained_need(resolve(detection, base_network="tiny"))
    need = segmentation.pretrained_need(resolve(segmentation))  # the built-in's default: fcn, resnet-50
    assert need.file_name == "resnet50-11ad3fa6.pth" and need.what == "the resnet50 backbone"
    need = segmentation.pretrained_need(resolve(segmentation, backbone="resnet-101"))
    assert need.file_name == "resnet101-cd907fc2.pth" and "resnet101" in need.names
    need = segmentation.pretrained_need(resolve(segmentation, algorithm="unet"))
    assert need.file_name == "resnet34-b627a593.pth" and "resnet34" in need.what
    assert segmentation.pretrained_need(resolve(segmentation, use_pretrained_model="0")) is None
    assert classification.pretrained_need(resolve(classification)) is None  # the built-in's default is off
    need = classification.pretrained_need(resolve(classification, use_pretrained_model="1", num_layers="50"))
    assert need.file_name == "resnet50-11ad3fa6.pth"
    assert classification.pretrained_need(resolve(classification, use_pretrained_model="1", num_layers="20")).file_name is None


def test_lookup_order_channel_model_baked_cache_download(tmp_path, weights_server, monkeypatch):
    published = tiny_published(weights_server.folder)
    need = WeightsNeed("ResNet-18", ("resnet18",), published.name)
    places = {name: tmp_path / name for name in ("pretrained", "model", "baked")}
    for name, folder in places.items():
        folder.mkdir()
        shutil.copy(published, folder / (published.name if name == "baked" else "resnet18.pth"))
    monkeypatch.setenv("SMCV_WEIGHTS_DIR", str(places["baked"]))
    cache_dir().mkdir(parents=True)
    shutil.copy(published, cache_dir() / published.name)
    channels = {"pretrained": places["pretrained"], "model": places["model"]}

    assert resolve_weights(need, channels) == places["pretrained"] / "resnet18.pth"
    assert resolve_weights(need, {"model": places["model"]}) == places["model"] / "resnet18.pth"
    assert resolve_weights(need, {}) == places["baked"] / published.name
    shutil.rmtree(places["baked"])
    assert resolve_weights(need, {}) == cache_dir() / published.name
    assert weights_server.requests == []  # nothing downloaded while an earlier source has the file
    (cache_dir() / published.name).unlink()
    assert resolve_weights(need, {}) == cache_dir() / published.name
    assert weights_server.requests == [f"/models/{published.name}"]
    assert resolve_weights(None, channels) is None


def test_download_into_the_cache_loads_and_is_reused_without_the_server(weights_server, resnet18_file, monkeypatch):
    served = Path(shutil.copy(resnet18_file, weights_server.folder))
    monkeypatch.setitem(TORCHVISION_FILES, "resnet18", served.name)
    task = get_task("segmentation")
    hp = task.schema().resolve({**TINY_HP, "use_pretrained_model": "1"})
    path = task.resolve_pretrained(hp, {})
    assert path == cache_dir() / served.name and sha256_of(path) == sha256_of(resnet18_file)
    assert str(cache_dir()).startswith(str(Path(torch.hub.get_dir())))
    reference = read_state_dict(resnet18_file)
    model = task.build_model(hp, None, {}, path)
    assert torch.equal(model.encoder.conv1.weight, reference["conv1.weight"])
    assert torch.equal(model.encoder.layer1[0].bn1.running_mean, reference["layer1.0.bn1.running_mean"])
    weights_server.stop()
    assert task.resolve_pretrained(hp, {}) == path  # from the cache: the server is gone
    assert weights_server.requests == [f"/models/{served.name}"]


def test_published_name_with_other_content_is_refused_and_deleted(weights_server):
    wrong = tiny_published(weights_server.folder, 2.0)
    fake_name = "resnet18-0123abcd.pth"
    wrong.rename(weights_server.folder / fake_name)
    with pytest.raises(ConfigError, match=r"resnet18-0123abcd.pth \(downloaded from http://127.0.0.1:\d+/models/"
                                          r"resnet18-0123abcd.pth\) have SHA-256 .*not 0123abcd.*deleted"):
        resolve_weights(WeightsNeed("ResNet-18", ("resnet18",), fake_name), {})
    assert list(cache_dir().iterdir()) == [cache_dir() / f".{fake_name}.lock"]  # no file, no temporary left


def test_damaged_cache_file_is_deleted_and_downloaded_again(weights_server):
    published = tiny_published(weights_server.folder)
    cache_dir().mkdir(parents=True)
    (cache_dir() / published.name).write_bytes(b"truncated")
    path = resolve_weights(WeightsNeed("ResNet-18", ("resnet18",), published.name), {})
    assert sha256_of(path) == sha256_of(published) and len(weights_server.requests) == 1


def test_channel_files_are_checked_only_when_their_name_has_a_hash(tmp_path):
    channel = tmp_path / "pretrained"
    channel.mkdir()
    torch.save({"w": torch.zeros(1)}, channel / "resnet18-0123abcd.pth")
    need = imagenet_need("ResNet-18", ("resnet18",))
    with pytest.raises(ConfigError, match="resnet18-0123abcd.pth \\(the 'pretrained' channel\\).*rename it"):
        resolve_weights(need, {"pretrained": channel})
    assert (channel / "resnet18-0123abcd.pth").exists()  # the user's file is left alone
    (channel / "resnet18-0123abcd.pth").rename(channel / "resnet18.pth")
    assert resolve_weights(need, {"pretrained": channel}) == channel / "resnet18.pth"


def test_nothing_anywhere_is_one_line_naming_every_way(tmp_path):
    with pytest.raises(ConfigError) as info:
        resolve_weights(imagenet_need("the resnet34 encoder", ("resnet34",)), {})
    message = str(info.value)
    assert "\n" not in message and all(part in message for part in WEIGHTS_MESSAGE)
    assert "resnet34-b627a593.pth" in message and "http://127.0.0.1:9/models/resnet34-b627a593.pth failed" in message
    with pytest.raises(ConfigError, match="no published file for efficientnet-b0 to download.*use_pretrained_model=0"):
        resolve_weights(WeightsNeed("the efficientnet-b0 encoder", ("efficientnet-b0",)), {})


def segmentation_job(opt_ml, monkeypatch, **hp) -> int:
    monkeypatch.setenv("SMCV_TASK", "segmentation")
    params = {**TINY_HP, "num_training_samples": "6", "epochs": "1", **hp}
    params.pop("use_pretrained_model")  # the default: on
    opt_ml.configure(params)
    return train_main()


def test_job_downloads_once_then_uses_the_cache(opt_ml, monkeypatch, capsys, weights_server, resnet18_file):
    served = Path(shutil.copy(resnet18_file, weights_server.folder))
    monkeypatch.setitem(TORCHVISION_FILES, "resnet18", served.name)
    builtin_layout(opt_ml.base / "input" / "data")
    assert segmentation_job(opt_ml, monkeypatch) == 0, opt_ml.failure
    out = capsys.readouterr().out
    assert f"{served.name} (downloaded)" in out and f"tensors from {served.name}" in out
    assert (cache_dir() / served.name).is_file()
    weights_server.stop()
    assert segmentation_job(opt_ml, monkeypatch) == 0, opt_ml.failure
    assert f"{served.name} (download cache)" in capsys.readouterr().out
    assert weights_server.requests == [f"/models/{served.name}"]


def test_job_without_weights_fails_before_reading_data(opt_ml, monkeypatch):
    """Server down, nothing baked or cached: exit 2 with the weights failure; the train channel is never read."""
    train = opt_ml.channel("train")
    (train / "img0.jpg").write_bytes(b"not a jpeg")  # reading it would be a DataError
    read = []
    task_class = type(get_task("segmentation"))
    monkeypatch.setattr(task_class, "prepare_data", lambda self, *args: read.append(args))
    assert segmentation_job(opt_ml, monkeypatch) == 2
    failure = opt_ml.failure.strip()
    assert failure.startswith("ConfigError: use_pretrained_model is on but no pretrained weights for the resnet18 encoder")
    assert "\n" not in failure and all(part in failure for part in WEIGHTS_MESSAGE)
    assert read == []


def test_detection_and_classification_resolve_before_data(opt_ml, monkeypatch):
    for task_name, hp in (("detection", {"base_network": "resnet-50"}), ("classification", {"use_pretrained_model": "1",
                                                                                             "num_layers": "18"})):
        monkeypatch.setenv("SMCV_TASK", task_name)
        monkeypatch.setattr(type(get_task(task_name)), "prepare_data", lambda self, *args: pytest.fail("data read"))
        opt_ml.configure({"num_classes": "2", "num_training_samples": "4", **hp})
        assert train_main() == 2
        assert "no pretrained weights for" in opt_ml.failure and TORCHVISION_FILES[
            "resnet50" if task_name == "detection" else "resnet18"] in opt_ml.failure



def test_connecting_has_one_deadline_for_all_addresses(weights_server, monkeypatch):
    """A name with several addresses: the next address is tried while time is left, none once the 5 s are spent."""
    from smcv import weight_files

    published = tiny_published(weights_server.folder)
    port = int(weights_server.url.split(":")[2].split("/")[0])
    refused, live = ("127.0.0.1", 9), ("127.0.0.1", port)
    monkeypatch.setattr(weight_files.socket, "getaddrinfo", lambda host, p, *a: [
        (weight_files.socket.AF_INET, weight_files.socket.SOCK_STREAM, 6, "", address) for address in (refused, live)])
    need = WeightsNeed("ResNet-18", ("resnet18",), published.name)
    assert resolve_weights(need, {}) == cache_dir() / published.name  # the refused address, then the live one
    (cache_dir() / published.name).unlink()
    clock = iter(range(0, 1000, 4))  # every look at the clock: 4 s later
    monkeypatch.setattr(weight_files, "time", type("Clock", (), {"monotonic": staticmethod(lambda: next(clock))}))
    with pytest.raises(ConfigError, match="Connection refused"):
        resolve_weights(need, {})  # 4 s spent on the first address, 8 s > 5 s: the live one is not tried
    assert weights_server.requests == [f"/models/{published.name}"]
