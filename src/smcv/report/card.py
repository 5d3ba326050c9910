"""The model card: model/README.md, a page a person reads to know what the model is, how good, and its limits.

Serving ignores it (it reads only model.pt and manifest.json)."""

from __future__ import annotations

import datetime
import json
import logging
import os
from pathlib import Path
from typing import Any, Optional

import smcv
from smcv.artifact import atomic_write_bytes
from smcv.contract import ENV_ALLOW_UNTRAINED, ENV_TRAINING_JOB_NAME
from smcv.report.job import TrainedJob
from smcv.serving.codecs import IMAGE_REQUEST_TYPES
from smcv.task_api import CardFacts

log = logging.getLogger("smcv.report")
SMALL_TRAIN = 1000  # fewer training images than this get the small-data caveat
SMALL_VALIDATION = 200  # fewer validation images than this get the wide-uncertainty caveat
HIDDEN_METRICS = ("epoch", "partial")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value)
    return str(value)


def _header(job: TrainedJob, facts: CardFacts) -> str:
    job_name = os.environ.get(ENV_TRAINING_JOB_NAME)
    made = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    source = f"SageMaker training job `{job_name}`" if job_name else "a training run"
    return (f"# Model card: {job.task.name} ({facts.architecture})\n\n{facts.description}\n\n"
            f"Trained by smcv {smcv.__version__} in {source}, {made}. The model directory holds `model.pt` "
            f"(weights), `manifest.json` (what serving reads) and this card.")


def _data(job: TrainedJob) -> str:
    data = job.data
    names = data.class_names or []
    lines = ["## Data", "", "| split | images |", "|---|---|", f"| train | {len(data.train)} |",
             f"| validation | {len(data.validation) if data.validation is not None else 'none (no validation channel)'} |",
             "", f"Classes ({len(names)}), by the class id the endpoint returns:", ""]
    lines += [f"- {i}: {name}" for i, name in enumerate(names)]
    facts = {k: v for k, v in data.info.items() if isinstance(v, (str, int, float, bool))}
    if facts:
        lines += ["", "Data facts: " + ", ".join(f"{k}={_fmt(v)}" for k, v in sorted(facts.items()))]
    return "\n".join(lines)


def _metrics(job: TrainedJob) -> str:
    result = job.result
    final = result.history[-1] if result.history else {}
    keys = [k for k in sorted({*result.metrics, *final}) if k not in HIDDEN_METRICS]
    head = (f"## Metrics\n\nObjective: `{job.task.objective_metric}` ({job.task.objective_type.lower()}). The saved "
            f"weights are epoch {result.selected_epoch}'s (of {result.epochs_completed} completed)")
    if not result.epochs_completed:
        return (f"## Metrics\n\nNo epoch finished: the saved weights are untrained and endpoints refuse them unless "
                f"{ENV_ALLOW_UNTRAINED}=1. Objective: `{job.task.objective_metric}`.")
    if not keys:
        return head + "; no metrics were recorded."
    lines = [head + ".", "", f"| metric | selected epoch {result.selected_epoch} | final epoch {final.get('epoch', '-')} |",
             "|---|---|---|"]
    lines += [f"| {k} | {_fmt(result.metrics.get(k, '-'))} | {_fmt(final.get(k, '-'))} |" for k in keys]
    return "\n".join(lines)


def _plots(plots: list[str]) -> str:
    if not plots:
        return "## Plots\n\nNo plots were written (see the training log's warnings)."
    listed = "\n".join(f"- `{name}`" for name in plots)
    return ("## Plots and evaluation\n\nThe plots and `evaluation.json` (per-class results of the selected epoch) "
            "are in the training job's output (`output.tar.gz` under the job's S3 output path, from "
            f"`/opt/ml/output/data`), not in this model directory:\n\n- `evaluation.json`\n{listed}")


def _input(facts: CardFacts) -> str:
    answers = ", ".join(f"`{t}`" for t in facts.response_types) or "see the task's documentation"
    return (f"## Intended input\n\nOne image per request, as `Content-Type` {', '.join(f'`{t}`' for t in IMAGE_REQUEST_TYPES)} "
            f"(JPEG or PNG). Answers (`Accept`): {answers}.\n\nPreprocessing (inside the endpoint): {facts.preprocessing}")


def _hyperparameters(job: TrainedJob) -> str:
    rows = [f"| {k} | {_fmt(v)} |" for k, v in sorted(job.hp.items())]
    return "\n".join(["## Hyperparameters", "", "| name | value |", "|---|---|", *rows])


def _limits(job: TrainedJob, facts: CardFacts, start_weights: str) -> str:
    n_train, n_val = len(job.data.train), len(job.data.validation or [])
    notes = [f"Start weights: {start_weights}."]
    if n_train < SMALL_TRAIN:
        notes.append(f"Small training set ({n_train} images): expect the model to generalise poorly beyond images "
                     "very like these.")
    if n_val == 0:
        notes.append("No validation set: the metrics above are training metrics only and say nothing about new images.")
    elif n_val < SMALL_VALIDATION:
        notes.append(f"Small validation set ({n_val} images): one image moves an accuracy by {100 / n_val:.2g} points; "
                     "the metrics are rough estimates.")
    notes.append("The epoch was selected on the validation set, so its validation metrics are optimistic; measure "
                 "the model on a held-out test set from the data it will meet before relying on it.")
    notes += facts.notes
    notes.append("This model is not a medical device: it is not validated for diagnosis, treatment or any clinical "
                 "or safety-critical decision, whatever images it was trained on.")
    return "## Limits\n\n" + "\n".join(f"- {n}" for n in notes)


def _threshold(entry: Optional[dict[str, Any]], class_names: list[str]) -> Optional[str]:
    """The decision-threshold section of a binary classifier, None when the model has no threshold."""
    if not entry or entry.get("value") is None:
        return None
    positive = int(entry.get("positive_class", 1))
    name = class_names[positive] if positive < len(class_names) else str(positive)
    rule = entry.get("rule", "fixed")
    how = {"fixed": "set by the decision_threshold hyperparameter",
           "youden": "chosen on the validation set by Youden's J (highest sensitivity + specificity - 1)",
           "sensitivity": f"chosen on the validation set as the highest threshold reaching sensitivity "
                          f"{_fmt(entry.get('target_sensitivity'))}"}.get(rule, rule)
    text = (f"## Decision threshold\n\nAn image is class {positive} (`{name}`) when its class-{positive} probability "
            f"is >= {_fmt(float(entry['value']))}, {how}. Verbose answers (`application/json;verbose`) and "
            f"`smcv evaluate` use it for `predicted_label`; the plain probability list is the built-in's, unchanged.")
    point = entry.get("validation")
    if point:
        text += (f"\n\nOn validation at this threshold: sensitivity {_fmt(point['sensitivity'])}, specificity "
                 f"{_fmt(point['specificity'])}, balanced accuracy {_fmt(point['balanced_accuracy'])}.")
    return text


def describe_start(weights: Optional[Path], incremental: bool) -> str:
    """Where training started from, in words."""
    if incremental:
        return "the smcv model given in the `model` channel (incremental training)"
    if weights is not None:
        return f"pretrained weights `{weights.name}` (ImageNet), then trained on the data above"
    return "none: trained from scratch (random initialisation)"


def model_card(job: TrainedJob, plots: list[str], start_weights: str,
               decision_threshold: Optional[dict[str, Any]] = None) -> str:
    """The card's Markdown; decision_threshold is the manifest's entry, when the model has one."""
    facts = job.task.card_facts(job.hp, job.data)
    sections = [_header(job, facts), _data(job), _metrics(job),
                _threshold(decision_threshold, list(job.data.class_names or [])), _plots(plots), _input(facts),
                _limits(job, facts, start_weights), _hyperparameters(job)]
    return "\n\n".join(s for s in sections if s) + "\n"


def write_model_card(job: TrainedJob, plots: list[str], start_weights: str, path: Path,
                     decision_threshold: Optional[dict[str, Any]] = None) -> Optional[Path]:
    """Write the card; a failure is a WARNING (the model is saved already), never an error."""
    try:
        atomic_write_bytes(path, model_card(job, plots, start_weights, decision_threshold).encode())
        return path
    except Exception as exc:  # noqa: BLE001 - the card must never fail the training job
        log.warning("the model card %s was not written (%s: %s); the model is unaffected", path.name,
                    type(exc).__name__, exc)
        return None
