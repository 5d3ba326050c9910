"""The pre-flight advisor on synthetic facts: each finding, its advice, and none for a sound job."""

from __future__ import annotations

import json
import logging

from smcv.advisor import advise, report
from smcv.task_api import AdvisorFacts, TrainSettings
from smcv.tasks.classification import ClassificationTask
from tests.helpers.classdata import TINY_CLASSIFICATION, write_class_folders


def settings(**kw):
    return TrainSettings(**{"epochs": 10, "batch_size": 32, "learning_rate": 0.1, "optimizer": "sgd", **kw})


def sound(**kw):
    facts = dict(train_samples=50_000, input_side=224, network_depth=50, network_stride=32,
                 small_input_remedy="num_layers=20", augmented=True, class_counts=[500, 400, 300],
                 class_names=["a", "b", "c"], balance_remedy="class_balance=weights")
    return AdvisorFacts(**{**facts, **kw})


def rules(findings):
    return [f.rule for f in findings]


def test_a_sound_job_gets_no_finding():
    assert advise(settings(), sound()) == []
    assert advise(settings(optimizer="adam", learning_rate=1e-3), AdvisorFacts(train_samples=100)) == []


def test_resnet152_on_28px_images_names_the_small_image_resnets():
    [finding] = advise(settings(), sound(input_side=28, network_depth=152))
    assert finding.rule == "DeepNetworkSmallImages" and finding.level == "warning"
    assert "152-layer" in finding.message and "28-px" in finding.message and "num_layers=20" in finding.message
    assert advise(settings(), sound(input_side=28, network_depth=56, network_stride=4)) == []  # a small-image ResNet
    assert advise(settings(), sound(input_side=28, network_depth=18)) == []


def test_ten_to_one_imbalance_without_a_remedy():
    [finding] = advise(settings(), sound(class_counts=[1000, 100, 400]))
    assert finding.rule == "ClassImbalance" and "10.0:1" in finding.message
    assert "class 0 (a): 1000" in finding.message and "class 1 (b): 100" in finding.message
    assert "class_balance=weights" in finding.message
    assert advise(settings(), sound(class_counts=[1000, 100, 400], balanced=True)) == []
    assert advise(settings(), sound(class_counts=[1000, 201, 400])) == []  # below 5:1


def test_classes_without_examples_and_no_augmentation_on_small_data():
    found = advise(settings(), sound(train_samples=800, augmented=False, augmentation_remedy="augmentation_type=crop",
                                     class_counts=[400, 400, 0]))
    assert rules(found) == ["NoAugmentation", "ClassWithoutExamples"]
    assert "augmentation_type=crop" in found[0].message and "2 (c)" in found[1].message


def test_batch_larger_than_the_data_and_learning_rates_out_of_range():
    found = advise(settings(batch_size=64), sound(train_samples=40))
    assert rules(found) == ["BatchLargerThanData"] and "mini_batch_size 64" in found[0].message
    [high] = advise(settings(optimizer="adam", learning_rate=0.1), sound())
    assert high.rule == "LearningRateRange" and "1e-05..0.01" in high.message and "lower it" in high.message
    [low] = advise(settings(learning_rate=1e-6), sound())
    assert "raise it" in low.message


def test_detection_class_ids_are_announced_and_everything_is_reported(tmp_path, caplog):
    found = advise(settings(), sound(class_names=["cat", "dog"], class_counts=[10, 9], announce_classes=True))
    assert [(f.rule, f.level) for f in found] == [("ClassIds", "info")] and "0=cat, 1=dog" in found[0].message
    found += advise(settings(batch_size=100), sound(train_samples=10))
    with caplog.at_level(logging.INFO, logger="smcv.advisor"):
        report(found, tmp_path / "data" / "advisor.json")
    assert [r.getMessage().split(":")[0:2] for r in caplog.records] == [["advisor", " ClassIds"],
                                                                      ["advisor", " BatchLargerThanData"]]
    written = json.loads((tmp_path / "data" / "advisor.json").read_text())
    assert [f["rule"] for f in written["findings"]] == ["ClassIds", "BatchLargerThanData"]


def test_classification_facts_from_the_task(tmp_path):
    train = tmp_path / "train"
    write_class_folders(train, 10, classes=("many",))
    write_class_folders(tmp_path / "other", 1, classes=("few",))
    (tmp_path / "other" / "few").rename(train / "few")
    task = ClassificationTask()
    hp = task.schema().resolve({**{k: str(v) for k, v in TINY_CLASSIFICATION.items()}, "num_layers": "152",
                                "image_shape": "1,28,28", "num_training_samples": "11"})
    data = task.prepare_data(hp, {"train": train}, {})
    facts = task.advisor_facts(hp, data)
    assert facts.class_counts == [1, 10] and facts.class_names == ["few", "many"]
    assert rules(advise(task.train_settings(hp), facts)) == ["DeepNetworkSmallImages", "NoAugmentation",
                                                              "ClassImbalance"]


def test_box_sizes_are_reported_and_a_poorly_covered_class_is_named_with_the_remedy():
    from smcv.task_api import BoxCoverage

    coverage = [BoxCoverage(0, 40, 0.05, 0.07, 0.09, poorly_matched=0.6),
                BoxCoverage(1, 300, 0.15, 0.19, 0.21, poorly_matched=0.1)]
    found = advise(settings(), sound(box_coverage=coverage, smallest_default_box=0.1,
                                     coverage_remedy="use base_network=vgg-16 image_shape=300 (2% poorly matched)"))
    assert rules(found) == ["BoxSizes", "PoorAnchorCoverage"]
    sizes, poor = found
    assert sizes.level == "info" and "0 (a): median 0.070 (10-90%: 0.050-0.090), 60% of 40" in sizes.message
    assert "1 (b): median 0.190" in sizes.message and "smallest default boxes are 0.10" in sizes.message
    assert poor.level == "warning" and poor.message.startswith("class 0 (a): 60% of its 40 boxes overlap no default box")
    assert poor.message.endswith("use base_network=vgg-16 image_shape=300 (2% poorly matched)")
    assert "(b)" not in poor.message
