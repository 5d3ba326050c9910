"""Pre-flight advisor: checks a job's settings against its data and network before the first epoch.

It warns (log lines tagged `advisor:`) and returns its findings; it never changes a value.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

from smcv.task_api import AdvisorFacts, TrainSettings, class_label

log = logging.getLogger("smcv.advisor")

SMALL_IMAGE_SIDE = 64  # px: inputs this small or smaller ...
DEEP_NETWORK_LAYERS = 50  # ... on a network this deep or deeper ...
STRIDED_NETWORK = 32  # ... that downsamples this much (ImageNet-style) are too much network
SMALL_DATASET = 10_000  # training samples below which augmentation should be on
IMBALANCE_RATIO = 5.0  # largest / smallest class count
#: share of a class's boxes without a default box at the matching IoU from which that class is poorly covered
POOR_COVERAGE = 0.2
#: usual learning-rate range per optimizer (outside it: a finding)
LEARNING_RATE_RANGES = {"sgd": (1e-4, 1.0), "nag": (1e-4, 1.0), "adam": (1e-5, 1e-2), "adamw": (1e-5, 1e-2),
                        "rmsprop": (1e-5, 1e-2), "adagrad": (1e-4, 1e-1), "adadelta": (1e-2, 10.0)}


@dataclass(frozen=True)
class Finding:
    """One piece of advice: a stable rule name, warning or info, and the text (which says what to change)."""

    rule: str
    level: str
    message: str


def _depth(s: TrainSettings, f: AdvisorFacts) -> Optional[Finding]:
    if None in (f.input_side, f.network_depth, f.network_stride):
        return None
    if f.network_depth >= DEEP_NETWORK_LAYERS and f.input_side <= SMALL_IMAGE_SIDE and f.network_stride >= STRIDED_NETWORK:
        last = max(1, f.input_side // f.network_stride)
        return Finding("DeepNetworkSmallImages", "warning", (
            f"a {f.network_depth}-layer network on {f.input_side}-px images: its {f.network_stride}x downsampling leaves "
            f"a {last}x{last} feature map and its depth overfits small images; use {f.small_input_remedy or 'a shallower network'}"))
    return None


def _augmentation(s: TrainSettings, f: AdvisorFacts) -> Optional[Finding]:
    if f.augmented is False and f.train_samples < SMALL_DATASET:
        return Finding("NoAugmentation", "warning", (
            f"{f.train_samples} training samples and no augmentation: a small training set without augmentation "
            f"overfits; set {f.augmentation_remedy or 'an augmentation'}"))
    return None


def _imbalance(s: TrainSettings, f: AdvisorFacts) -> list[Finding]:
    counts = f.class_counts or []
    found = []
    empty = [i for i, c in enumerate(counts) if c == 0]
    if empty:
        found.append(Finding("ClassWithoutExamples", "warning", (
            f"class(es) {', '.join(class_label(f.class_names, i) for i in empty)} have no training {f.count_unit}: the model cannot learn them; "
            "add examples, or lower num_classes when those ids are unused")))
    present = [i for i, c in enumerate(counts) if c > 0]
    if len(present) >= 2 and not f.balanced:
        big, small = max(present, key=lambda i: counts[i]), min(present, key=lambda i: counts[i])
        ratio = counts[big] / counts[small]
        if ratio >= IMBALANCE_RATIO:
            remedy = f"set {f.balance_remedy}" if f.balance_remedy else "add examples of the rare classes"
            found.append(Finding("ClassImbalance", "warning", (
                f"classes are imbalanced {ratio:.1f}:1 in the training {f.count_unit} (class {class_label(f.class_names, big)}: {counts[big]}, "
                f"class {class_label(f.class_names, small)}: {counts[small]}); the model may ignore the rare classes: {remedy}")))
    return found


def _batch(s: TrainSettings, f: AdvisorFacts) -> Optional[Finding]:
    if s.batch_size > f.train_samples:
        return Finding("BatchLargerThanData", "warning", (
            f"mini_batch_size {s.batch_size} is larger than the training set ({f.train_samples} samples): each epoch "
            f"is one partial batch; set mini_batch_size to {max(1, f.train_samples // 4)} or so"))
    return None


def _learning_rate(s: TrainSettings, f: AdvisorFacts) -> Optional[Finding]:
    low, high = LEARNING_RATE_RANGES.get(s.optimizer.lower(), (0.0, float("inf")))
    if low <= s.learning_rate <= high:
        return None
    direction = "raise it" if s.learning_rate < low else "lower it"
    return Finding("LearningRateRange", "warning", (
        f"learning_rate {s.learning_rate:g} is outside the usual range {low:g}..{high:g} for optimizer "
        f"{s.optimizer}: {direction}, e.g. to {min(max(s.learning_rate, low * 10), high / 10):g}"))


def _classes(s: TrainSettings, f: AdvisorFacts) -> Optional[Finding]:
    if not f.announce_classes or not f.class_names:
        return None
    mapping = ", ".join(f"{i}={n}" for i, n in enumerate(f.class_names))
    return Finding("ClassIds", "info", f"class ids (as in the model's responses): {mapping}")


def _box_sizes(s: TrainSettings, f: AdvisorFacts) -> Optional[Finding]:
    if not f.box_coverage:
        return None
    per_class = "; ".join(
        f"{class_label(f.class_names, c.class_id)}: median {c.side_median:.3f} (10-90%: {c.side_p10:.3f}-"
        f"{c.side_p90:.3f}), {c.poorly_matched:.0%} of {c.boxes} below IoU 0.5 with every default box"
        for c in f.box_coverage)
    smallest = f"; the smallest default boxes are {f.smallest_default_box:.2f}" if f.smallest_default_box else ""
    return Finding("BoxSizes", "info", f"box side (square root of the area) as a fraction of the image side, per "
                                       f"class: {per_class}{smallest}")


def _anchor_coverage(s: TrainSettings, f: AdvisorFacts) -> list[Finding]:
    found = []
    for c in f.box_coverage or []:
        if c.poorly_matched < POOR_COVERAGE:
            continue
        smallest = f", smallest default box {f.smallest_default_box:.2f}" if f.smallest_default_box else ""
        remedy = f.coverage_remedy or "tile large images so that the objects cover more of the input"
        found.append(Finding("PoorAnchorCoverage", "warning", (
            f"class {class_label(f.class_names, c.class_id)}: {c.poorly_matched:.0%} of its {c.boxes} boxes overlap "
            f"no default box at IoU 0.5 (median side {c.side_median:.3f} of the image{smallest}); each trains on its "
            f"single best default box only and the class is often missed: {remedy}")))
    return found


def advise(settings: TrainSettings, facts: AdvisorFacts) -> list[Finding]:
    """Every finding for these settings and facts, in a fixed order."""
    found: list[Optional[Finding]] = [_classes(settings, facts), _depth(settings, facts),
                                      _augmentation(settings, facts), *_imbalance(settings, facts),
                                      _batch(settings, facts), _learning_rate(settings, facts),
                                      _box_sizes(settings, facts), *_anchor_coverage(settings, facts)]
    return [f for f in found if f is not None]


def report(findings: list[Finding], path: Optional[Path] = None) -> None:
    """Log each finding (`advisor: Rule: text`) and, given a path, write them as JSON ({"findings": [...]})."""
    for finding in findings:
        level = logging.WARNING if finding.level == "warning" else logging.INFO
        log.log(level, "advisor: %s: %s", finding.rule, finding.message)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"findings": [asdict(f) for f in findings]}, indent=1))
