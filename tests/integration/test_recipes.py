"""Every recipe in examples/recipes: its --short variant trains on a tiny synthetic stand-in of its data set (same
folder layout), through examples/train_example.py's layout and `python -m smcv.train`, and the loss goes down."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest

from smcv.config import HyperParameters
from smcv.tasks import get_task
from tests.helpers.recipedata import MAKERS
from tests.helpers.training import run_training

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "train_example.py"
#: what the tiny stand-ins need beside the short variant: 3 epochs, small batches, inputs near the images' size
TINY = {
    "pneumoniamnist": {"epochs": 3, "mini_batch_size": 8},
    "nih_cxr64": {"epochs": 3, "mini_batch_size": 8},
    "bccd": {"epochs": 3, "mini_batch_size": 4},
    "dsb2018": {"epochs": 3, "mini_batch_size": 4, "base_size": 64, "crop_size": 64},
    "isbi2012": {"epochs": 3, "mini_batch_size": 4, "base_size": 64, "crop_size": 64},
}


def example():
    """examples/train_example.py as a module."""
    spec = importlib.util.spec_from_file_location("train_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_there_is_one_recipe_per_data_set_and_each_is_valid():
    ex = example()
    assert ex.recipe_names() == sorted(MAKERS) == sorted(ex.LAYOUTS)
    for name in ex.recipe_names():
        recipe = ex.load_recipe(name)
        for short in (False, True):
            raw = {k: str(v) for k, v in ex.hyperparameters(recipe, short, {"num_training_samples": "10"}).items()}
            task = get_task(recipe["task"])
            hp: HyperParameters = task.schema().resolve(raw)  # unknown names and bad values raise here
            task.train_settings(hp)
            assert hp.lr_scheduler == "cosine" and hp.lr_warmup_epochs > 0, name
        assert set(recipe["short"]) <= set(recipe["hyperparameters"]), f"{name}: short overrides only the full set"


def test_short_variant_replaces_and_command_line_wins():
    ex = example()
    recipe = ex.load_recipe("bccd")
    assert ex.hyperparameters(recipe, False, {})["base_network"] == "vgg-16"
    assert ex.hyperparameters(recipe, True, {})["base_network"] == "tiny"
    assert ex.hyperparameters(recipe, True, {"epochs": "2"})["epochs"] == "2"


def test_isbi2012_validates_on_the_last_fifth_of_the_stack(tmp_path):
    data = MAKERS["isbi2012"](tmp_path / "isbi", count=30)
    base, _ = example().prepare("isbi2012", data, tmp_path / "work", False, {})
    channels = base / "input" / "data"
    validation = sorted(int(p.stem) for p in (channels / "validation").iterdir())
    assert validation == list(range(24, 30))
    assert sorted(int(p.stem) for p in (channels / "validation_annotation").iterdir()) == validation
    assert sorted(int(p.stem) for p in (channels / "train").iterdir()) == list(range(24))


@pytest.mark.parametrize("name", sorted(TINY))
def test_short_recipe_trains_on_a_tiny_stand_in_and_the_loss_goes_down(tmp_path, name):
    ex = example()
    data = MAKERS[name](tmp_path / name)
    base, task = ex.prepare(name, data, tmp_path / "work", True, {k: str(v) for k, v in TINY[name].items()})
    env = dict(os.environ, SAGEMAKER_BASE_DIR=str(base), SMCV_TASK=task, OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    assert (base / "input" / "data" / "validation").exists() and (base / "input" / "data" / "train").exists()
    proc = run_training(env)
    assert proc.returncode == 0, proc.stdout[-4000:]
    history = json.loads((base / "output" / "data" / "metrics.json").read_text())
    losses = [epoch["train:loss"] for epoch in history]
    assert len(losses) == TINY[name]["epochs"], losses
    assert losses[-1] < losses[0], (name, losses)
    written = json.loads((base / "input" / "config" / "hyperparameters.json").read_text())
    assert written["lr_scheduler"] == "cosine" and int(written["num_training_samples"]) > 0
