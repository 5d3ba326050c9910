"""Command line: `smcv train|serve|metric-definitions|hyperparameters|algorithm-spec|predict|...` and `serve`."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from typing import Optional

from smcv.contract import ENV_TASK
from smcv.engine.metrics_log import metric_definitions
from smcv.tasks import get_task

#: modules that add their own subcommands through register(subparsers)
PLUGINS = ("smcv.predict_client", "smcv.evaluate", "smcv.classification.convert", "smcv.detection.convert", "smcv.export")


def _task_name(args: argparse.Namespace) -> str:
    return args.task or os.environ.get(ENV_TASK, "classification")


def cmd_train(_args: argparse.Namespace) -> int:
    from smcv.train import main  # imports torch: only for this subcommand

    return main()


def cmd_serve(_args: argparse.Namespace) -> int:
    from smcv.serving.server import main  # imports gunicorn and flask: only for this subcommand

    return main() or 0


def cmd_metric_definitions(args: argparse.Namespace) -> int:
    task = get_task(_task_name(args))
    print(json.dumps(metric_definitions(list(task.metric_names)), indent=2))
    return 0


def cmd_hyperparameters(args: argparse.Namespace) -> int:
    print(json.dumps(get_task(_task_name(args)).schema().describe(), indent=2, default=list))
    return 0


def cmd_algorithm_spec(args: argparse.Namespace) -> int:
    from smcv.spec import placeholder_image, training_specification  # imports torch (via Task): only here

    name = _task_name(args)
    print(json.dumps(training_specification(get_task(name), args.image or placeholder_image(name)), indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(prog="smcv", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("train", help="run the training program over /opt/ml").set_defaults(func=cmd_train)
    sub.add_parser("serve", help="start the model server on port 8080").set_defaults(func=cmd_serve)
    for name, func, text in (("metric-definitions", cmd_metric_definitions, "SageMaker MetricDefinitions (JSON)"),
                             ("hyperparameters", cmd_hyperparameters, "the hyperparameter table (JSON)")):
        p = sub.add_parser(name, help=text)
        p.add_argument("--task", help="classification | detection | segmentation (default: $SMCV_TASK)")
        p.set_defaults(func=func)
    p = sub.add_parser("algorithm-spec", help="CreateAlgorithm TrainingSpecification (JSON)")
    p.add_argument("--task")
    p.add_argument("--image", help="training image URI (default: the task's smcv-<task> ECR URI, account and region "
                                   "left as placeholders)")
    p.set_defaults(func=cmd_algorithm_spec)
    for module in PLUGINS:
        try:
            importlib.import_module(module).register(sub)
        except ImportError:
            continue
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    """`smcv ...`"""
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


def serve_main() -> int:
    """`serve` (what SageMaker runs for hosting)."""
    return cmd_serve(argparse.Namespace())


if __name__ == "__main__":
    sys.exit(main())
