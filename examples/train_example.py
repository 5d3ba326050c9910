"""Train one task on a public data set laid out as in shared/data (see its README), over a fake /opt/ml.

  python examples/train_example.py pneumoniamnist DATA_DIR WORK_DIR [name=value ...]
  python examples/train_example.py bccd DATA_DIR WORK_DIR [name=value ...]
  python examples/train_example.py dsb2018 DATA_DIR WORK_DIR [name=value ...]

DATA_DIR is the data set's folder (e.g. shared/data/bccd). Extra name=value pairs override hyperparameters. The
script symlinks the data into WORK_DIR/opt_ml in the built-in channel layout (bccd and dsb2018 are split into
train/validation by a hash of the file name: about 20% validation), runs `python -m smcv.train` and prints the
final validation metrics from the model manifest.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

TASKS = {"pneumoniamnist": "classification", "bccd": "detection", "dsb2018": "segmentation"}
DEFAULTS = {
    "pneumoniamnist": {"num_classes": 2, "num_training_samples": 4690, "num_layers": 20, "image_shape": "1,28,28",
                       "epochs": 15, "mini_batch_size": 64, "learning_rate": 0.1, "augmentation_type": "crop",
                       "lr_scheduler_step": "10", "lr_scheduler_factor": 0.1},
    "bccd": {"num_classes": 3, "num_training_samples": 241, "base_network": "vgg-16", "use_pretrained_model": 0,
             "image_shape": 300, "epochs": 60, "mini_batch_size": 16, "learning_rate": 0.001, "optimizer": "adam",
             "weight_decay": 0.0005, "lr_scheduler_step": "45", "data_format": "voc"},
    "dsb2018": {"num_classes": 2, "num_training_samples": 372, "algorithm": "unet", "use_pretrained_model": "False",
                "image_size": 256, "epochs": 30, "mini_batch_size": 16, "learning_rate": 0.001, "optimizer": "adam",
                "lr_scheduler": "cosine"},
}


def is_validation(name: str) -> bool:
    """A stable ~20% validation split by file name."""
    return int(hashlib.sha1(Path(name).stem.encode()).hexdigest(), 16) % 5 == 0


def link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if not dst.exists():
        dst.symlink_to(src.resolve())


def lay_out(dataset: str, data: Path, channels: Path) -> None:
    if dataset == "pneumoniamnist":
        link(data / "train", channels / "train")
        link(data / "val", channels / "validation")
    elif dataset == "bccd":
        for xml in sorted((data / "trainval" / "Annotations").glob("*.xml")):
            split = "validation" if is_validation(xml.name) else "train"
            link(xml, channels / split / "Annotations" / xml.name)
            image = data / "trainval" / "JPEGImages" / f"{xml.stem}.jpg"
            link(image, channels / split / "JPEGImages" / image.name)
    else:
        for image in sorted((data / "images").glob("*.png")):
            split = "validation" if is_validation(image.name) else "train"
            link(image, channels / split / image.name)
            link(data / "masks" / image.name, channels / f"{split}_annotation" / image.name)


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[0] not in TASKS:
        print(__doc__)
        return 2
    dataset, data, work = argv[0], Path(argv[1]), Path(argv[2])
    base = work / "opt_ml"
    lay_out(dataset, data, base / "input" / "data")
    hps = dict(DEFAULTS[dataset])
    hps.update(dict(item.split("=", 1) for item in argv[3:]))
    config = base / "input" / "config"
    config.mkdir(parents=True, exist_ok=True)
    (config / "hyperparameters.json").write_text(json.dumps({k: str(v) for k, v in hps.items()}))
    (config / "resourceconfig.json").write_text(json.dumps({"current_host": "algo-1", "hosts": ["algo-1"]}))
    env = dict(os.environ, SAGEMAKER_BASE_DIR=str(base), SMCV_TASK=TASKS[dataset])
    code = subprocess.call([sys.executable, "-m", "smcv.train"], env=env)
    manifest = base / "model" / "manifest.json"
    if code == 0 and manifest.exists():
        info = json.loads(manifest.read_text())
        print(json.dumps({"dataset": dataset, "selected_epoch": info["selected_epoch"], "metrics": info["metrics"]}))
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
