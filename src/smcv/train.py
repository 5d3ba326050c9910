"""The algorithm program: config -> task -> data -> fit -> artifact, inside one error funnel.

Run as `python -m smcv.train` (or `smcv train`); paths come from $SAGEMAKER_BASE_DIR (default /opt/ml) and
the task from $SMCV_TASK (default classification).
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import traceback
from pathlib import Path
from typing import Mapping, Optional

import torch

from smcv import advisor, artifact
from smcv.channels import canonical_config, discover_channels
from smcv.contract import (ENV_ALLOW_UNTRAINED, ENV_DEVICE, ENV_LOG_LEVEL, ENV_TASK, Paths, read_hyperparameters,
                           read_input_data_config, read_resource_config, write_failure, write_success)
from smcv.cuda_driver import CudaFacts, cuda_facts, unusable_gpu_reason
from smcv.engine import distributed as dist_utils
from smcv.engine.launch import maybe_relaunch
from smcv.engine.loader import reap_worker_processes
from smcv.engine.loop import FitResult, Trainer
from smcv.engine.signals import StopRequest
from smcv.errors import ConfigError, UserError
from smcv.export import export_after_training
from smcv.inputs import ChannelInputs, channel_inputs, read_inputs
from smcv.pretrained import load_matching
from smcv.report.card import describe_start, write_model_card
from smcv.report.job import TrainedJob
from smcv.report.run import write_report
from smcv.tasks import get_task
from smcv.threads import apply_torch_threads, export_threads

log = logging.getLogger("smcv.train")
EXIT_USER_ERROR = 2
EXIT_INTERNAL_ERROR = 1


def configure_logging() -> None:
    """Log lines to stdout (SageMaker sends them to CloudWatch), one format everywhere."""
    level = os.environ.get(ENV_LOG_LEVEL, "INFO").upper()
    prefix = f"[rank {dist_utils.rank()}] " if dist_utils.is_distributed() else ""
    logging.basicConfig(stream=sys.stdout, level=level, force=True,
                        format=f"%(asctime)s %(levelname)s {prefix}%(name)s: %(message)s")


def emit(line: str) -> None:
    """Print a metric or status line immediately."""
    print(line, flush=True)


def pick_device(instance_type: str, facts: Optional[CudaFacts] = None) -> torch.device:
    """cuda:LOCAL_RANK when CUDA works, else CPU; a GPU (or GPU instance) that CUDA cannot use is an error."""
    if os.environ.get(ENV_DEVICE, "").strip().lower() == "cpu":
        return torch.device("cpu")  # the one explicit way to run on the CPU of a GPU host
    reason = unusable_gpu_reason(facts or cuda_facts())
    if reason:
        raise ConfigError(reason)
    if torch.cuda.is_available():
        device = torch.device("cuda", dist_utils.local_rank())
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        return device
    if instance_type.startswith(("ml.p", "ml.g")):
        raise ConfigError(f"instance type {instance_type} has GPUs but CUDA is not available in the container; "
                          "check the NVIDIA driver / container runtime")
    return torch.device("cpu")


def init_from_model_channel(task_name: str, model: torch.nn.Module, channels: Mapping[str, Path]) -> None:
    """Incremental training: start from an smcv model artifact given in the `model` channel."""
    folder = channel_inputs(channels).model_artifact
    if folder is None:
        return
    manifest = artifact.load_manifest(folder)
    if manifest.get("task") != task_name:
        raise ConfigError(f"the 'model' channel holds a {manifest.get('task')} model; this is a {task_name} job")
    load_matching(model, artifact.load_state_dict(folder), source="the 'model' channel")
    log.info("incremental training: initialised from the model channel (%s)", manifest.get("architecture"))


def run(paths: Paths, stop: StopRequest) -> int:
    """Train one job; returns the exit code."""
    task = get_task(os.environ.get(ENV_TASK, "classification"))
    hp = task.schema().resolve(read_hyperparameters(paths))
    settings = task.train_settings(hp)
    raw_channel_config = read_input_data_config(paths)
    # the one place the channels are decided: folders, config, the `model` channel's artifact; Pipe splits below
    inputs = read_inputs(discover_channels(paths, raw_channel_config), canonical_config(raw_channel_config))
    weights = task.resolve_pretrained(hp, inputs)  # before any data is read: missing weights fail the job in seconds
    resources = read_resource_config(paths)
    facts = cuda_facts()
    device = pick_device(resources.instance_type, facts)
    dist_utils.init(device)
    export_threads(dist_utils.local_world_size(), "training process")
    apply_torch_threads()
    torch.manual_seed(settings.seed + dist_utils.rank())
    if dist_utils.is_main():
        log.info("task %s on %s (%s; %d process(es)); hyperparameters: %s", task.name, device, facts.describe(),
                 dist_utils.world_size(), json.dumps(hp, default=list, sort_keys=True))
    inputs = inputs.spooled()  # Pipe-mode splits copied to local disk, once
    data = task.prepare_data(hp, inputs, inputs.config)
    model = task.build_model(hp, data, inputs, weights)
    init_from_model_channel(task.name, model, inputs)
    if dist_utils.is_main():
        advisor.report(advisor.advise(settings, task.advisor_facts(hp, data)), paths.advisor_file)
    snapshots = paths.model_dir / "snapshots"
    trainer = Trainer(task, hp, settings, data, model, device, paths.checkpoint_dir, stop,
                      on_snapshot=lambda epoch, state: artifact.atomic_torch_save(
                          {k: v.detach().cpu() for k, v in state.items()}, snapshots / f"epoch-{epoch:04d}.pt"),
                      emit=emit, tensorboard_dir=paths.tensorboard_dir)
    result = trainer.fit()
    if dist_utils.is_main():
        save_outputs(paths, TrainedJob(task, hp, settings, data, model, result, device), inputs, weights, stop)
    return 0


def save_outputs(paths: Paths, job: TrainedJob, inputs: ChannelInputs, weights: Optional[Path], stop: StopRequest) -> None:
    """Rank 0 after training: the model artifact, metrics.json, the report and the model card, then `success`."""
    task, hp, data, result = job.task, job.hp, job.data, job.result
    trained = result.epochs_completed > 0 or inputs.model_artifact is not None
    if not trained:
        log.warning("no epoch finished: the saved model has untrained weights; endpoints refuse it unless %s=1",
                    ENV_ALLOW_UNTRAINED)
    manifest = {"task": task.name, "class_names": data.class_names, "hyperparameters": dict(hp),
                "selected_epoch": result.selected_epoch, "epochs_completed": result.epochs_completed,
                "trained": trained, "metrics": result.metrics, **task.manifest_fields(hp, data)}
    artifact.save_artifact(paths.model_dir, result.state_dict, manifest)
    if hp.get("export_onnx"):
        export_after_training(paths.model_dir)
    paths.output_data_dir.mkdir(parents=True, exist_ok=True)
    (paths.output_data_dir / "metrics.json").write_text(json.dumps(result.history, indent=1))
    log.info("model saved to %s (%s)", paths.model_dir, selection_summary(result, task.objective_metric))
    chosen: dict = {}

    def update_manifest(fields: dict) -> None:
        chosen.update(fields)
        save_manifest_fields(paths.model_dir, fields)

    plots = write_report(job, paths.output_data_dir, paths.evaluation_file, stop=lambda: stop.requested,
                         update_manifest=update_manifest)
    write_model_card(job, plots, describe_start(weights, inputs.model_artifact is not None), paths.model_card_file,
                     {**manifest, **chosen}.get("decision_threshold"))
    if not result.stopped_by_signal:
        write_success(paths)


def save_manifest_fields(model_dir: Path, fields: dict) -> None:
    """What the report pass chose on validation (a decision threshold) into manifest.json, logged."""
    artifact.update_manifest(model_dir, fields)
    for name, value in fields.items():
        log.info("manifest.json: %s = %s", name, json.dumps(value, sort_keys=True))


def selection_summary(result: FitResult, objective: str) -> str:
    """Which epoch's weights were saved and why, e.g. 'best epoch 9 of 10; validation:mAP=0.9412'."""
    value = result.metrics.get(objective)
    if value is None or not math.isfinite(value):
        return f"epoch {result.selected_epoch} of {result.epochs_completed}, the last; no {objective or 'objective'} to choose by"
    return f"best epoch {result.selected_epoch} of {result.epochs_completed}; {objective}={value:.4g}"


def failure_message(exc: BaseException) -> str:
    """A one-line cause; errors re-raised from DataLoader workers keep only the original message."""
    text = str(exc)
    if "Original Traceback" in text:
        lines = [line for line in text.strip().splitlines() if line.strip()]
        text = lines[-1].split(": ", 1)[-1] if lines else text
        if not text.startswith(exc.category if isinstance(exc, UserError) else ""):
            text = f"{getattr(exc, 'category', 'Error')}: {text}"
    return text


def main(argv: Optional[list[str]] = None) -> int:
    """Entry point: exit 0 on success or a clean stop, 2 on a user error, 1 on an internal error."""
    configure_logging()
    paths = Paths.from_env()
    stop = StopRequest().install()
    try:
        relaunched = maybe_relaunch(paths)
        if relaunched is not None:
            if relaunched != 0 and not paths.failure_file.exists():
                write_failure(paths, f"InternalError: a training process exited with code {relaunched}; see the log")
            return relaunched
        return run(paths, stop)
    except UserError as exc:
        message = failure_message(exc)
        log.error("%s", message)
        write_failure(paths, message)
        return EXIT_USER_ERROR
    except Exception as exc:
        log.error("internal error:\n%s", traceback.format_exc())
        write_failure(paths, f"InternalError: {type(exc).__name__}: {exc}. The training log has the traceback; "
                             "please report it with the log")
        return EXIT_INTERNAL_ERROR
    finally:
        reap_worker_processes()
        dist_utils.shutdown()


if __name__ == "__main__":
    sys.exit(main())
