"""Hyperparameter schemas: lenient decoding of SageMaker's string values, strict validation."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Iterable, Optional

from smcv.errors import ConfigError

REQUIRED = object()
#: names SageMaker, the SDK or HPO may add; accepted and ignored
IGNORED_PREFIXES = ("sagemaker_", "_tuning_objective_metric", "_")

#: values of the shared `tensorboard` hyperparameter
TENSORBOARD_CHOICES = ("auto", "1", "0", "true", "false")
_TRUE = {"true", "1", "yes", "y", "t", "on"}
_FALSE = {"false", "0", "no", "n", "f", "off"}


@dataclass(frozen=True)
class Param:
    """One hyperparameter: name, kind, default, allowed values and help."""

    name: str
    kind: str  # int | float | bool | str | int_list | shape
    default: Any = None
    choices: Optional[tuple] = None
    low: Optional[float] = None
    high: Optional[float] = None
    low_inclusive: bool = True
    high_inclusive: bool = True
    help: str = ""
    tuning: Optional[tuple[float, float]] = None  # range HPO may search when the valid range is open-ended

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def describe_range(self) -> str:
        """Human text for the valid values."""
        if self.choices:
            return "one of the following: " + ", ".join(repr(c) for c in self.choices)
        parts = []
        if self.low is not None:
            parts.append(f"{'>=' if self.low_inclusive else '>'} {self.low:g}")
        if self.high is not None:
            parts.append(f"{'<=' if self.high_inclusive else '<'} {self.high:g}")
        kind = {"int_list": "comma-separated integers", "shape": "'C,H,W' integers"}.get(self.kind, self.kind)
        return f"a {kind}" + (" " + " and ".join(parts) if parts else "")


class HyperParameters(dict):
    """Resolved hyperparameters; read as attributes (hp.learning_rate)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError as exc:
            raise AttributeError(name) from exc


def _unquote(raw: str) -> Any:
    text = raw.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return text[1:-1]
    return text


def _invalid(param: Param, raw: Any) -> ConfigError:
    return ConfigError(
        f"The value {raw!r} is not valid for the {param.name!r} hyperparameter, which accepts {param.describe_range()}"
    )


def _to_int(param: Param, value: Any, raw: Any) -> int:
    if isinstance(value, bool):
        raise _invalid(param, raw)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise _invalid(param, raw) from None
    if not math.isfinite(number) or number != int(number):
        raise _invalid(param, raw)
    return int(number)


def _to_float(param: Param, value: Any, raw: Any) -> float:
    if isinstance(value, bool):
        raise _invalid(param, raw)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise _invalid(param, raw) from None
    if not math.isfinite(number):
        raise _invalid(param, raw)
    return number


def _to_bool(param: Param, value: Any, raw: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    if text in ("1.0", "0.0"):
        return text == "1.0"
    raise _invalid(param, raw)


def _to_int_list(param: Param, value: Any, raw: Any) -> tuple[int, ...]:
    if isinstance(value, (list, tuple)):
        items = list(value)
    else:
        text = str(value).strip()
        if text.startswith("["):
            try:
                items = json.loads(text)
            except json.JSONDecodeError:
                raise _invalid(param, raw) from None
        else:
            items = [part for part in text.replace(";", ",").split(",") if part.strip()]
    return tuple(_to_int(param, item, raw) for item in items)


def decode_value(param: Param, raw: Any) -> Any:
    """Decode one raw value ('0.1', '"sgd"', 'True', '1', '10, 20') to the parameter's kind."""
    value = _unquote(raw) if isinstance(raw, str) else raw
    if param.kind == "int":
        result: Any = _to_int(param, value, raw)
    elif param.kind == "float":
        result = _to_float(param, value, raw)
    elif param.kind == "bool":
        result = _to_bool(param, value, raw)
    elif param.kind == "int_list":
        result = _to_int_list(param, value, raw)
    elif param.kind == "shape":
        result = _to_int_list(param, value, raw)
        if len(result) != 3 or min(result) <= 0:
            raise _invalid(param, raw)
    else:
        result = str(value).strip()
    _check_range(param, result, raw)
    return result


def _check_range(param: Param, value: Any, raw: Any) -> None:
    if param.choices is not None:
        candidates = param.choices
        if param.kind == "str":
            match = [c for c in candidates if str(c).lower() == str(value).lower()]
            if not match:
                raise _invalid(param, raw)
        elif value not in candidates:
            raise _invalid(param, raw)
    numbers = value if param.kind in ("int_list", "shape") else (value,)
    if param.kind in ("int", "float", "int_list", "shape"):
        for number in numbers:
            if param.low is not None and (number < param.low or (number == param.low and not param.low_inclusive)):
                raise _invalid(param, raw)
            if param.high is not None and (number > param.high or (number == param.high and not param.high_inclusive)):
                raise _invalid(param, raw)


class Schema:
    """An ordered set of Params for one task."""

    def __init__(self, task: str, params: Iterable[Param]) -> None:
        self.task = task
        self.params = {p.name: p for p in params}

    def resolve(self, raw: dict[str, Any]) -> HyperParameters:
        """Decode and validate raw hyperparameters; unknown or missing names are errors."""
        unknown = sorted(k for k in raw if k not in self.params and not k.startswith(IGNORED_PREFIXES))
        if unknown:
            raise ConfigError(
                f"unknown hyperparameter(s) {', '.join(map(repr, unknown))} for the {self.task} algorithm; "
                f"valid names: {', '.join(sorted(self.params))}"
            )
        resolved = HyperParameters()
        for name, param in self.params.items():
            if name in raw and not (isinstance(raw[name], str) and raw[name].strip() in ("", '""') and not param.required):
                value = decode_value(param, raw[name])
                if param.kind == "str" and param.choices:
                    value = next(c for c in param.choices if str(c).lower() == value.lower())
                resolved[name] = value
            elif param.required:
                raise ConfigError(f"the {name!r} hyperparameter is required for the {self.task} algorithm ({param.help})")
            else:
                resolved[name] = param.default
        return resolved

    def describe(self) -> list[dict[str, Any]]:
        """A table of the parameters for docs and the algorithm specification."""
        rows = []
        for p in self.params.values():
            rows.append({
                "name": p.name, "kind": p.kind, "required": p.required,
                "default": None if p.required else p.default, "valid": p.describe_range(), "help": p.help,
            })
        return rows


#: lr_scheduler values (engine.optim.lr_factor implements them)
LR_SCHEDULERS = ("step", "poly", "cosine")


def common_training_params(defaults: dict[str, Any]) -> list[Param]:
    """Engine hyperparameters shared by all tasks, with per-task defaults."""
    d = defaults
    return [
        Param("epochs", "int", d.get("epochs", 30), low=1, tuning=(1, 1000), help="passes over the training data"),
        Param("learning_rate", "float", d.get("learning_rate", 0.1), low=0, high=1, low_inclusive=False, help="initial learning rate"),
        Param("mini_batch_size", "int", d.get("mini_batch_size", 32), low=1, tuning=(1, 1024), help="batch size per host (as the built-ins), split across that host's GPUs; N hosts train with N x this batch"),
        Param("momentum", "float", d.get("momentum", 0.9), low=0, high=1, help="momentum for sgd and nag"),
        Param("weight_decay", "float", d.get("weight_decay", 0.0001), low=0, high=1, help="L2 weight decay"),
        Param("lr_scheduler_step", "int_list", d.get("lr_scheduler_step", ()), low=1, help="epochs at which the learning rate is multiplied by lr_scheduler_factor, e.g. '10, 20'"),
        Param("lr_scheduler_factor", "float", d.get("lr_scheduler_factor", 0.1), low=0, high=1, help="learning-rate reduction factor"),
        Param("lr_scheduler", "str", d.get("lr_scheduler", "step"), choices=LR_SCHEDULERS,
              help="learning-rate schedule over all epochs: step (lr_scheduler_step and lr_scheduler_factor; "
                   "a constant rate without steps), poly ((1 - t)^0.9) or cosine (half a cosine to 0); "
                   "smcv's extension for classification and object-detection"),
        Param("lr_warmup_epochs", "float", d.get("lr_warmup_epochs", 0.0), low=0,
              help="smcv: the learning rate rises linearly from near 0 to the schedule's value over the first N "
                   "epochs (fractions allowed; 0: no warm-up; object-detection's default: 1 when "
                   "use_pretrained_model=0, else 0)"),
        Param("early_stopping", "bool", d.get("early_stopping", False), help="stop when the objective stops improving"),
        Param("early_stopping_min_epochs", "int", d.get("early_stopping_min_epochs", 10), low=1, help="epochs before early stopping may stop"),
        Param("early_stopping_patience", "int", d.get("early_stopping_patience", 5), low=1, help="epochs without relative improvement before stopping"),
        Param("early_stopping_tolerance", "float", d.get("early_stopping_tolerance", 0.0), low=0, high=1, help="relative improvement below which an epoch counts as no improvement"),
        Param("kv_store", "str", None, choices=("dist_sync", "dist_async", "device", "local"), help="accepted for compatibility; smcv always trains data-parallel synchronously"),
        Param("num_workers", "int", None, low=0, help="DataLoader worker processes (default: from CPU count and /dev/shm)"),
        Param("seed", "int", 0, low=0, help="random seed"),
        Param("log_interval_seconds", "float", 30.0, low=0, help="smcv: seconds between progress lines (epoch, step, "
                                                                "loss, images/s, data wait, ETA); 0: none"),
        Param("tensorboard", "str", "auto", choices=TENSORBOARD_CHOICES,
              help="smcv: TensorBoard event files in /opt/ml/output/tensorboard; auto: when that folder exists "
                   "(SageMaker's TensorBoardOutputConfig), 1: always, 0: never"),
        Param("precision_dtype", "str", "float32", choices=("float32", "float16", "bfloat16"), help="training precision"),
        Param("amp", "bool", True, help="smcv: BF16 autocast on GPUs that support it"),
        Param("gradient_accumulation_steps", "int", 1, low=1, help="smcv: optimizer step every N mini-batches"),
        Param("checkpoint_frequency", "int", None, low=1, help="also save the model every N epochs under model/snapshots"),
        Param("compile", "bool", False,
              help="smcv: 1: torch.compile the network for training (validation stays eager); the first step's "
                   "compile time is reported apart and left out of train:throughput; if compiling fails, training "
                   "continues eagerly after one warning"),
        Param("ema_decay", "float", 0.0, low=0, high=1, high_inclusive=False,
              help="smcv: keep an exponential moving average of the weights with this decay (e.g. 0.999; warmed up "
                   "as min(decay, (1+n)/(10+n)) over the first n steps); validation, the best-epoch choice and the "
                   "saved model use the average; 0: off"),
        Param("export_onnx", "bool", False, help="smcv: also write model.onnx (see docs/export.md) into the model "
                                                 "directory at the end of training; serving ignores it"),
    ]


def test_time_flip_param() -> Param:
    """`test_time_flip`, shared by the tasks that support it (classification, segmentation; not object-detection)."""
    return Param("test_time_flip", "bool", False,
                 help="smcv: validation and the endpoint average the network's outputs on the image and its "
                      "left-right mirror image (twice the inference cost); stored in the model manifest; classification "
                      "and semantic segmentation only (object-detection does not offer it)")
