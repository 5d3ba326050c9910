"""class_balance: inverse-frequency loss weights and weighted sampling (one process and shards of several)."""

from __future__ import annotations

import collections

import pytest
import torch

from smcv.balance import class_counts, inverse_frequency_weights, sample_weights, spread_indices
from smcv.classification.model import TrainingCriterion
from smcv.classification.transforms import GpuNormalize
from smcv.engine.loader import make_loader
from smcv.engine.sampling import WeightedSampler
from smcv.errors import ConfigError
from smcv.segmentation.losses import segmentation_loss
from smcv.tasks.classification import ClassificationTask
from tests.helpers.classdata import TINY_CLASSIFICATION, write_class_folders


def test_inverse_frequency_weights_are_normalised_to_mean_one():
    weights = inverse_frequency_weights([90, 10])
    assert weights == pytest.approx([0.2, 1.8])
    assert inverse_frequency_weights([50, 0, 50]) == pytest.approx([1.0, 1.0, 1.0])  # absent classes stay neutral
    assert class_counts([0, 0, 2], 3) == [2, 0, 1]
    assert spread_indices(5, 10) == [0, 1, 2, 3, 4] and spread_indices(100, 3) == [0, 49, 99]


def test_weights_change_the_classification_loss():
    logits = torch.tensor([[2.0, 0.0], [2.0, 0.0], [0.0, 2.0]])
    targets = torch.tensor([0, 0, 1])
    logits[2] = torch.tensor([1.0, 0.0])  # the minority sample is wrong
    norm = GpuNormalize([0.5], [0.5])
    plain = TrainingCriterion(norm, False)(logits, targets)
    weighted = TrainingCriterion(norm, False, class_weight=inverse_frequency_weights([2, 1]))(logits, targets)
    assert weighted > plain  # the misclassified minority sample counts more
    assert "class_weight" not in TrainingCriterion(norm, False, class_weight=[1.0, 2.0]).state_dict()


def test_weights_change_the_segmentation_focal_term():
    logits = torch.zeros(1, 2, 2, 2)
    logits[0, 0] = 2.0  # everything predicted as class 0
    target = torch.tensor([[[0, 0], [0, 1]]])
    plain = segmentation_loss(logits, target, 1.0, 0.0)
    weighted = segmentation_loss(logits, target, 1.0, 0.0, class_weight=torch.tensor(inverse_frequency_weights([3, 1])))
    assert weighted > plain


def test_sampling_draws_the_minority_class_as_often_as_the_majority():
    labels = [0] * 90 + [1] * 10
    sampler = WeightedSampler(sample_weights(labels, class_counts(labels, 2)), seed=3)
    drawn = collections.Counter(labels[i] for epoch in range(20) for i in (sampler.set_epoch(epoch) or sampler))
    assert len(sampler) == 100 and sum(drawn.values()) == 2000
    assert 0.4 < drawn[1] / 2000 < 0.6  # 10% of the data, about half of the draws
    first = list(sampler)
    sampler.set_epoch(21)
    assert list(sampler) != first


def test_distributed_shards_are_disjoint_draws_of_one_sequence():
    weights = [1.0] * 9 + [9.0]
    whole = WeightedSampler(weights, seed=1)
    whole.per_rank = 10
    shards = [WeightedSampler(weights, rank, 2, seed=1) for rank in range(2)]
    assert [len(s) for s in shards] == [5, 5]
    assert sorted(list(shards[0]) + list(shards[1])) == sorted(list(whole))


def test_the_loader_uses_the_weights_for_training_only():
    data = torch.utils.data.TensorDataset(torch.arange(10))
    loader = make_loader(data, 2, train=True, collate_fn=None, num_workers=0, device=torch.device("cpu"), seed=0,
                         sample_weights=[1.0] * 10)
    assert isinstance(loader.sampler, WeightedSampler)
    plain = make_loader(data, 2, train=False, collate_fn=None, num_workers=0, device=torch.device("cpu"), seed=0,
                        sample_weights=[1.0] * 10)
    assert not isinstance(plain.sampler, WeightedSampler)


def _prepare(tmp_path, **overrides):
    train = tmp_path / "train"
    write_class_folders(train, 9, classes=("many",))
    write_class_folders(tmp_path / "other", 1, classes=("few",))
    (tmp_path / "other" / "few").rename(train / "few")
    task = ClassificationTask()
    hp = task.schema().resolve({**{k: str(v) for k, v in TINY_CLASSIFICATION.items()}, "num_training_samples": "10",
                                **overrides})
    data = task.prepare_data(hp, {"train": train}, {})
    return task, hp, data, train


def test_classification_class_balance_settings(tmp_path):
    task, hp, data, train = _prepare(tmp_path / "none")
    assert data.sample_weights is None and "class_weights" not in data.info
    assert task.build_model(hp, data, {}).criterion.class_weight is None
    task, hp, data, _ = _prepare(tmp_path / "weights", class_balance="weights")
    assert data.info["class_counts"] == [1, 9] and data.info["class_weights"] == pytest.approx([1.8, 0.2])
    assert task.build_model(hp, data, {}).criterion.class_weight.tolist() == pytest.approx([1.8, 0.2])
    task, hp, data, _ = _prepare(tmp_path / "sampling", class_balance="sampling")
    assert data.sample_weights is not None and len(data.sample_weights) == 10
    assert sorted(set(data.sample_weights)) == pytest.approx([1 / 9, 1.0])
    resolved = task.schema().resolve({**{k: str(v) for k, v in TINY_CLASSIFICATION.items()}, "multi_label": "1",
                                      "class_balance": "weights"})
    with pytest.raises(ConfigError, match="use_weighted_loss=1"):
        task.train_settings(resolved)
