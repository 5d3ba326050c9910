"""Per task: the channels a shared/data-style folder gives, and the hyperparameters of a bench job."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

TASKS = ("classification", "detection", "segmentation")
#: the network a bench uses unless --network says otherwise (the models the GPU figures are asked for)
DEFAULT_NETWORK = {"classification": "50", "detection": "vgg-16", "segmentation": "resnet34"}
DEFAULT_SIZE = {"classification": 224, "detection": 300, "segmentation": 512}
#: the task's hyperparameter --network sets
NETWORK_PARAM = {"classification": "num_layers", "detection": "base_network", "segmentation": "encoder_name"}


def channels(task: str, data: Path) -> dict[str, Path]:
    """Training channels from a folder laid out as shared/data's set for the task (train split only)."""
    if task == "classification":
        return {"train": data / "train" if (data / "train").is_dir() else data}
    if task == "detection":
        return {"train": data / "trainval" if (data / "trainval").is_dir() else data}
    return {"train": data / "images", "train_annotation": data / "masks"}


def count_images(folders: dict[str, Path]) -> int:
    """Number of training images in the channels (for num_training_samples; smcv counts again itself)."""
    suffixes = {".png", ".jpg", ".jpeg"}
    root = folders["train"]
    return sum(1 for p in root.rglob("*") if p.suffix.lower() in suffixes)


def class_count(task: str, folders: dict[str, Path]) -> int:
    """Classes of the set: class folders (classification), the bccd cell types (detection), 2 (nuclei masks)."""
    if task == "classification":
        return len([p for p in folders["train"].iterdir() if p.is_dir()])
    return 3 if task == "detection" else 2


def hyperparameters(task: str, classes: int, samples: int, batch: int, size: Optional[int] = None,
                    network: Optional[str] = None, extra: Optional[dict[str, str]] = None) -> dict[str, str]:
    """Built-in-style hyperparameters of a training job (or a served model), without pretrained weights."""
    size = size or DEFAULT_SIZE[task]
    values = {"num_classes": classes, "num_training_samples": max(1, samples), "mini_batch_size": batch,
              "epochs": 8, "use_pretrained_model": 0,
              NETWORK_PARAM[task]: network or DEFAULT_NETWORK[task]}
    if task == "classification":
        values.update(image_shape=f"3,{size},{size}", resize=size, augmentation_type="crop")
    elif task == "detection":
        values.update(image_shape=size, data_format="voc")
    else:
        values.update(algorithm="unet", image_size=size, optimizer="adam")
    values.update(extra or {})
    return {k: str(v) for k, v in values.items()}


def job_hyperparameters(task: str, folders: dict[str, Path], batch: int, size: Optional[int] = None,
                        network: Optional[str] = None, extra: Optional[dict[str, str]] = None) -> dict[str, str]:
    """hyperparameters() of a training job on these channels (their classes and image count)."""
    return hyperparameters(task, class_count(task, folders), count_images(folders), batch, size, network, extra)


def parse_overrides(items: list[str]) -> dict[str, str]:
    """`name=value` command-line items as a dict."""
    pairs = [item.split("=", 1) for item in items]
    bad = [item for item, pair in zip(items, pairs) if len(pair) != 2]
    if bad:
        raise SystemExit(f"--hp takes name=value, not {bad[0]!r}")
    return dict(pairs)
