"""Train a recipe (examples/recipes/<name>.json) on its public data set, laid out as in shared/data, over a fake /opt/ml.

  python examples/train_example.py RECIPE DATA_DIR WORK_DIR [--short] [name=value ...]

RECIPE is one of pneumoniamnist, nih_cxr64, bccd, dsb2018, isbi2012 (the file examples/recipes/RECIPE.json holds its
hyperparameters: the full set for a GPU, and the `short` overrides that --short applies for a few minutes on a CPU;
docs/recipes.md explains them). DATA_DIR is the data set's folder (e.g. shared/data/bccd). Extra name=value pairs
override hyperparameters. The script symlinks the data into WORK_DIR/opt_ml in the built-in channel layout (bccd and
dsb2018 are split into train/validation by a hash of the file name: about 20% validation; isbi2012, slices of one
stack, keeps its last 6 of 30 slices for validation), sets
num_training_samples from the train channel, runs `python -m smcv.train` and prints the final validation metrics from
the model manifest. WORK_DIR must not hold an earlier run.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

RECIPES = Path(__file__).resolve().parent / "recipes"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def recipe_names() -> list[str]:
    """The recipes in examples/recipes."""
    return sorted(path.stem for path in RECIPES.glob("*.json"))


def load_recipe(name: str) -> dict[str, Any]:
    """examples/recipes/<name>.json: task, hyperparameters and short overrides."""
    path = RECIPES / f"{name}.json"
    if not path.is_file():
        raise SystemExit(f"no recipe {name!r}; choose one of {', '.join(recipe_names())}")
    return json.loads(path.read_text())


def hyperparameters(recipe: dict[str, Any], short: bool, overrides: dict[str, str]) -> dict[str, Any]:
    """The recipe's full set, then its short overrides (with --short), then the command line's name=value pairs."""
    return {**recipe["hyperparameters"], **(recipe.get("short", {}) if short else {}), **overrides}


def is_validation(name: str) -> bool:
    """A stable ~20% validation split by file name."""
    return int(hashlib.sha1(Path(name).stem.encode()).hexdigest(), 16) % 5 == 0


def link(src: Path, dst: Path) -> None:
    """Symlink dst to src (parents created)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if not dst.exists():
        dst.symlink_to(src.resolve())


def class_folders(train: str, validation: str) -> Callable[[Path, Path], None]:
    """Layout of class-folder sets: DATA/<train>/<class>/*.png and DATA/<validation>/<class>/*.png."""
    def lay_out(data: Path, channels: Path) -> None:
        link(data / train, channels / "train")
        link(data / validation, channels / "validation")
    return lay_out


def voc_split(data: Path, channels: Path) -> None:
    """DATA/trainval/{Annotations,JPEGImages} split by file name into VOC train and validation channels."""
    for xml in sorted((data / "trainval" / "Annotations").glob("*.xml")):
        split = "validation" if is_validation(xml.name) else "train"
        link(xml, channels / split / "Annotations" / xml.name)
        image = data / "trainval" / "JPEGImages" / f"{xml.stem}.jpg"
        link(image, channels / split / "JPEGImages" / image.name)


def link_pair(data: Path, channels: Path, image: Path, split: str) -> None:
    """DATA/images/<name> and DATA/masks/<name> into the split's image and annotation channels."""
    link(image, channels / split / image.name)
    link(data / "masks" / image.name, channels / f"{split}_annotation" / image.name)


def mask_split(data: Path, channels: Path) -> None:
    """DATA/{images,masks}/*.png split by a hash of the file name into the built-in's four segmentation channels."""
    for image in sorted((data / "images").glob("*.png")):
        link_pair(data, channels, image, "validation" if is_validation(image.name) else "train")


def stack_split(data: Path, channels: Path) -> None:
    """DATA/{images,masks}/<n>.png, consecutive slices of one stack: the last 20% of the slices are the validation
    channel (a block, so no validation slice has its neighbour in training)."""
    images = sorted((data / "images").glob("*.png"), key=lambda path: int(path.stem) if path.stem.isdigit() else -1)
    first_validation = len(images) - max(1, len(images) // 5)
    for i, image in enumerate(images):
        link_pair(data, channels, image, "validation" if i >= first_validation else "train")


LAYOUTS: dict[str, Callable[[Path, Path], None]] = {
    "pneumoniamnist": class_folders("train", "val"),
    "nih_cxr64": class_folders("train", "valid"),
    "bccd": voc_split,
    "dsb2018": mask_split,
    "isbi2012": stack_split,
}


def count_images(folder: Path) -> int:
    """Image files under a channel folder (following the symlinks)."""
    return sum(1 for root, _, files in os.walk(folder, followlinks=True) for name in files
               if name.lower().endswith(IMAGE_SUFFIXES))


def prepare(name: str, data: Path, work: Path, short: bool, overrides: dict[str, str]) -> tuple[Path, str]:
    """Lay the data out under WORK/opt_ml and write the job's config; returns (the fake /opt/ml, the task)."""
    recipe = load_recipe(name)
    if name not in LAYOUTS:
        raise SystemExit(f"recipe {name!r} has no data layout in train_example.LAYOUTS; add one")
    base = work / "opt_ml"
    if (base / "model" / "manifest.json").exists():
        raise SystemExit(f"{work} holds an earlier run (opt_ml/model/manifest.json); choose an empty WORK_DIR")
    channels = base / "input" / "data"
    LAYOUTS[name](data, channels)
    hps = hyperparameters(recipe, short, overrides)
    hps.setdefault("num_training_samples", count_images(channels / "train"))
    config = base / "input" / "config"
    config.mkdir(parents=True, exist_ok=True)
    (config / "hyperparameters.json").write_text(json.dumps({k: str(v) for k, v in hps.items()}))
    (config / "resourceconfig.json").write_text(json.dumps({"current_host": "algo-1", "hosts": ["algo-1"]}))
    return base, recipe["task"]


def main(argv: list[str]) -> int:
    """Prepare and run one recipe; prints the selected epoch's metrics."""
    short = "--short" in argv
    args = [a for a in argv if a != "--short"]
    if len(args) < 3 or args[0] not in recipe_names():
        print(__doc__)
        print(f"recipes: {', '.join(recipe_names())}")
        return 2
    name, data, work = args[0], Path(args[1]), Path(args[2])
    base, task = prepare(name, data, work, short, dict(item.split("=", 1) for item in args[3:]))
    env = dict(os.environ, SAGEMAKER_BASE_DIR=str(base), SMCV_TASK=task)
    code = subprocess.call([sys.executable, "-m", "smcv.train"], env=env)
    manifest = base / "model" / "manifest.json"
    if code == 0 and manifest.exists():
        info = json.loads(manifest.read_text())
        print(json.dumps({"recipe": name, "short": short, "selected_epoch": info["selected_epoch"],
                          "metrics": info["metrics"]}))
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
