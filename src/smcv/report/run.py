"""The report pass: the selected model over the validation set once, then evaluation.json and the plots.

Runs on rank 0 only, after the artifact is saved, on its own loader over the whole validation set (no sharding:
the other ranks have finished). Nothing here fails the training job: every failure is logged as a WARNING naming
what was skipped, and the rest goes on.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any, Callable, Optional

import torch
from torch.utils.data import DataLoader

from smcv.artifact import atomic_write_bytes
from smcv.engine import distributed as dist_utils
from smcv.engine.loader import default_num_workers
from smcv.engine.precision import choose_precision
from smcv.report import plots as report_plots
from smcv.report.job import TrainedJob
from smcv.task_api import PreparedData, Report, TrainSettings

log = logging.getLogger("smcv.report")
TRAINING_CURVES = "training_curves.png"


def report_loader(data: PreparedData, settings: TrainSettings, device: torch.device) -> DataLoader:
    """A plain, unsharded loader over the whole validation set in order (workers stop when it is exhausted)."""
    batch = dist_utils.per_process_batch(settings.validation_batch_size or settings.batch_size)
    workers = default_num_workers(device) if settings.num_workers is None else settings.num_workers
    return DataLoader(data.validation, batch_size=batch, shuffle=False, collate_fn=data.collate_fn,
                      num_workers=workers, pin_memory=device.type == "cuda")


@torch.inference_mode()
def collect(job: TrainedJob, stop: Callable[[], bool] = lambda: False) -> Optional[Report]:
    """The task's Report after the selected weights ran over the validation set (eval mode, no grad); None when
    there is no validation set, the task has no report or a stop was requested."""
    data = job.data
    if data.validation is None or len(data.validation) == 0:
        return None
    report = job.task.new_report(job.hp, data)
    if report is None:
        return None
    job.model.load_state_dict(job.result.state_dict)
    job.model.eval()
    precision = choose_precision(job.settings.precision, job.settings.amp, job.device)
    for batch in report_loader(data, job.settings, job.device):
        if stop():
            log.info("stop requested: the report's validation pass was cut short; no per-class evaluation")
            return None
        report.see_batch(batch)
        with precision.autocast():
            job.task.validation_step(job.model, batch, job.device, report)
    return report


def safely(what: str, action: Callable[[], Any]) -> Any:
    """action(), or None after a WARNING naming `what` when it raises."""
    try:
        return action()
    except Exception as exc:  # noqa: BLE001 - a report problem must never fail the training job
        log.warning("%s failed (%s: %s); training results are not affected, the job goes on without it", what,
                    type(exc).__name__, exc, exc_info=log.isEnabledFor(logging.DEBUG))
        return None


def draw(plots: dict[str, Callable[[Path], None]], folder: Path) -> tuple[list[str], dict[str, str]]:
    """Write each plot; (file names written, file name -> error for those that failed)."""
    written, failed = [], {}
    for name, plot in plots.items():
        try:
            plot(folder / name)
            written.append(name)
        except Exception as exc:  # noqa: BLE001 - one broken plot must not stop the others or the job
            failed[name] = f"{type(exc).__name__}: {exc}"
            log.warning("plot %s failed (%s); the training job goes on without it", name, failed[name])
    return written, failed


def jsonable(value: Any) -> Any:
    """Nested values with non-finite floats as None (JSON has no NaN) and numpy scalars as Python numbers."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def base_evaluation(job: TrainedJob) -> dict[str, Any]:
    """The fields every task's evaluation.json has."""
    result, data = job.result, job.data
    return {"task": job.task.name, "epoch": result.selected_epoch, "epochs_completed": result.epochs_completed,
            "objective_metric": job.task.objective_metric, "metrics": dict(result.metrics),
            "final_metrics": {k: v for k, v in (result.history[-1] if result.history else {}).items() if k != "epoch"},
            "class_names": list(data.class_names), "validation_samples": len(data.validation or [])}


ManifestUpdate = Callable[[dict[str, Any]], None]


def write_report(job: TrainedJob, output_dir: Path, evaluation_file: Path, stop: Callable[[], bool] = lambda: False,
                 update_manifest: ManifestUpdate = lambda fields: None) -> list[str]:
    """Plots and evaluation.json of the selected model, and the report's manifest fields (a decision threshold)
    handed to update_manifest; returns the plot file names written. Never raises."""
    return safely("the training report", lambda: _write_report(job, output_dir, evaluation_file, stop,
                                                               update_manifest)) or []


def _write_report(job: TrainedJob, output_dir: Path, evaluation_file: Path, stop: Callable[[], bool],
                  update_manifest: ManifestUpdate) -> list[str]:
    evaluation = base_evaluation(job)
    history, objective = job.result.history, job.task.objective_metric
    plots: dict[str, Callable[[Path], None]] = {
        TRAINING_CURVES: lambda path: report_plots.training_curves(history, objective, path)}
    report = None
    if not job.result.stopped_by_signal and job.result.epochs_completed > 0:
        report = safely("the report's validation pass", lambda: collect(job, stop))
    if report is not None:
        evaluation.update(safely("the per-class evaluation", report.evaluation) or {})
        plots.update(safely("the task's plot list", report.plots) or {})
        fields = safely("the manifest fields of the validation pass", report.manifest_fields)
        if fields:
            safely("updating manifest.json", lambda: update_manifest(fields))
    evaluation["plots"], evaluation["plot_failures"] = draw(plots, output_dir)
    atomic_write_bytes(evaluation_file, json.dumps(jsonable(evaluation), indent=1).encode())
    log.info("report: %s and %d plot(s) in %s", evaluation_file.name, len(evaluation["plots"]), output_dir)
    return evaluation["plots"]
