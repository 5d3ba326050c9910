"""ClassificationTask in-process: schema rules, sources, weighted multi-label loss, and steps without task state."""

from __future__ import annotations

import pytest
import torch

from smcv.classification.datasets import positive_weights
from smcv.classification.metrics import AccuracyEvaluator
from smcv.classification.sources import read_split
from smcv.data.lst import LstEntry, write_lst
from smcv.errors import ConfigError, DataError
from smcv.tasks.classification import ClassificationTask
from tests.helpers.classdata import TINY_CLASSIFICATION, write_class_folders, write_image

CPU = torch.device("cpu")


def resolve(**overrides):
    task = ClassificationTask()
    return task, task.schema().resolve({k: str(v) for k, v in {**TINY_CLASSIFICATION, **overrides}.items()})


def folders(tmp_path, per_class=8, classes=("normal", "pneumonia")):
    train = tmp_path / "train"
    write_class_folders(train, per_class, classes)
    return {"train": train}


def test_image_shape_channels_and_checkpoint_frequency_are_checked():
    task, hp = resolve(image_shape="2,16,16")
    with pytest.raises(ConfigError, match="must be 1 \\(grey\\) or 3 \\(RGB\\)"):
        task.train_settings(hp)
    task, hp = resolve(epochs=2, checkpoint_frequency=3)
    with pytest.raises(ConfigError, match=r"checkpoint_frequency \(3\) must not exceed epochs \(2\)"):
        task.train_settings(hp)


def test_settings_map_the_builtin_names():
    task, hp = resolve(optimizer="rmsprop", gamma=0.8, beta_1=0.5, lr_scheduler_step="2,4", precision_dtype="bfloat16")
    s = task.train_settings(hp)
    assert (s.optimizer, s.rho, s.beta_1, s.lr_scheduler, s.lr_scheduler_step, s.precision) == \
        ("rmsprop", 0.8, 0.5, "step", (2, 4), "bfloat16")
    assert (s.batch_size, s.epochs, s.amp, s.gradient_accumulation_steps) == (8, 2, True, 1)


def test_cosine_schedule_and_warmup_reach_the_settings():
    task, hp = resolve(lr_scheduler="cosine", lr_warmup_epochs="1.5")
    s = task.train_settings(hp)
    assert (s.lr_scheduler, s.lr_warmup_epochs) == ("cosine", 1.5)
    assert (task.train_settings(resolve()[1]).lr_scheduler, resolve()[1].lr_warmup_epochs) == ("step", 0.0)
    with pytest.raises(ConfigError, match="lr_scheduler"):
        resolve(lr_scheduler="linear")
    with pytest.raises(ConfigError, match="lr_warmup_epochs"):
        resolve(lr_warmup_epochs="-1")


def test_folder_count_must_match_num_classes(tmp_path):
    task, hp = resolve(num_classes=3)
    with pytest.raises(DataError, match="2 class folders .* set num_classes=2"):
        task.prepare_data(hp, folders(tmp_path), {})


def test_lst_split_reads_labels_and_names_missing_images(tmp_path):
    root = tmp_path / "train"
    for i in range(4):
        write_image(root / "img" / f"{i}.png", 100)
    write_lst(root / "train.lst", [LstEntry(i, (float(i % 2),), f"img/{i}.png") for i in range(4)])
    split = read_split("train", {"train": root}, "auto")
    assert split.format == "lst" and [item.labels for item in split.items] == [(0.0,), (1.0,), (0.0,), (1.0,)]
    write_lst(root / "train.lst", [LstEntry(0, (0.0,), "img/missing.png")])
    with pytest.raises(DataError, match="missing.png"):
        read_split("train", {"train": root}, "auto")


def test_positive_weights_are_negatives_over_positives(tmp_path):
    task, hp = resolve(multi_label=1, use_weighted_loss=1, num_training_samples=12)
    root = tmp_path / "train"
    entries = []
    for i in range(12):
        write_image(root / f"{i}.png", 100)
        entries.append(LstEntry(i, (1.0, float(i < 3)), f"{i}.png"))  # class 0 always, class 1 on 3 of 12
    write_lst(root / "train.lst", entries)
    data = task.prepare_data(hp, {"train": root}, {})
    assert data.info["pos_weight"] == pytest.approx([0.0, 3.0])
    assert positive_weights(data.train, 2) == data.info["pos_weight"]


def test_two_models_from_one_task_keep_their_own_loss(tmp_path):
    """The task keeps no state: each model carries its criterion (single- vs multi-label here)."""
    task = ClassificationTask()
    _, single_hp = resolve()
    _, multi_hp = resolve(multi_label=1)
    data = task.prepare_data(single_hp, folders(tmp_path), {})
    single = task.build_model(single_hp, data, {})
    multi = task.build_model(multi_hp, data, {})
    images = torch.stack([data.train[i][0] for i in range(4)])
    class_ids = torch.tensor([0, 1, 0, 1])
    assert task.training_loss(single, (images, class_ids), CPU).ndim == 0
    multi_hot = torch.nn.functional.one_hot(class_ids, 2).float()
    assert task.training_loss(multi, (images, multi_hot), CPU).ndim == 0
    with pytest.raises((RuntimeError, ValueError)):
        task.training_loss(single, (images, multi_hot.long()), CPU)  # single-label loss wants class ids
    assert set(single.state_dict()) == set(task.build_predictor(
        task.manifest_fields(single_hp, data) | {"class_names": data.class_names}, single.state_dict(), CPU).model.state_dict())


def test_short_training_learns(tmp_path):
    torch.manual_seed(0)
    task, hp = resolve(num_layers=20, num_training_samples=8)
    data = task.prepare_data(hp, folders(tmp_path, per_class=4), {})
    model = task.build_model(hp, data, {})
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    loader = torch.utils.data.DataLoader(data.train, batch_size=8, shuffle=True)
    losses = []
    for _ in range(6):
        for batch in loader:
            loss = task.training_loss(model, batch, CPU)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    assert losses[-1] < losses[0]
    evaluator = task.new_evaluator(hp, data)
    with torch.inference_mode():  # train-mode batch norm: 16 steps are too few for its running statistics
        for batch in loader:
            task.validation_step(model, batch, CPU, evaluator)
    assert evaluator.compute()["validation:accuracy"] > 0.5


def test_accuracy_evaluator_top_k_and_merge():
    evaluator = AccuracyEvaluator(multi_label=False, top_k=2)
    logits = torch.tensor([[3.0, 2.0, 1.0], [1.0, 3.0, 2.0], [3.0, 1.0, 2.0]])
    evaluator.update(logits, (None, torch.tensor([0, 2, 1])))
    other = AccuracyEvaluator(multi_label=False, top_k=2)
    other.update(logits[:1], (None, torch.tensor([0])))
    evaluator.merge([other.state()])
    assert evaluator.compute() == {"validation:accuracy": pytest.approx(2 / 4), "validation:top_2_accuracy": pytest.approx(3 / 4)}


def test_targets_come_from_labels_without_decoding_images(tmp_path):
    """use_weighted_loss counts positives over the whole set: that must read labels, not decode every image."""
    from smcv.classification.datasets import ClassificationDataset
    from smcv.data.recordio import IRHeader, RecordWriter, pack

    rec = tmp_path / "train.rec"
    with RecordWriter(rec, rec.with_suffix(".idx")) as writer:
        for i, labels in enumerate(([1.0, 0.0, 1.0], [0.0, 1.0, 0.0])):
            writer.write(pack(IRHeader(0, labels, i, 0), b"not an image"), key=i)
    dataset = ClassificationDataset([], [rec], "RGB", 3, True, transform=lambda x: x, cache_limit_bytes=0)
    assert [t.tolist() for t in dataset.targets()] == [[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]
