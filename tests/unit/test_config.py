"""Hyperparameter decoding (every spelling SageMaker clients send) and validation errors."""

import pytest

from smcv.config import Param, Schema, decode_value
from smcv.errors import ConfigError
from smcv.tasks.classification import ClassificationTask

REQUIRED_HP = {"num_classes": "2", "num_training_samples": "10"}


def resolve(**extra):
    return ClassificationTask().schema().resolve({**REQUIRED_HP, **extra})


@pytest.mark.parametrize("raw, expected", [("0.1", 0.1), ('"0.1"', 0.1), ("1e-3", 0.001), ("1", 1.0), ('"1"', 1.0)])
def test_float_spellings(raw, expected):
    assert resolve(learning_rate=raw).learning_rate == pytest.approx(expected)


@pytest.mark.parametrize("raw", ["1", "True", "true", '"true"', '"True"', "yes", "1.0"])
def test_true_spellings(raw):
    assert resolve(use_pretrained_model=raw).use_pretrained_model is True


@pytest.mark.parametrize("raw", ["0", "False", "false", '"false"', "no"])
def test_false_spellings(raw):
    assert resolve(early_stopping=raw).early_stopping is False


@pytest.mark.parametrize("raw", ["sgd", '"sgd"', "SGD", '"Adam"', " nag "])
def test_choice_spellings(raw):
    assert resolve(optimizer=raw).optimizer == raw.strip().strip('"').lower()


@pytest.mark.parametrize("raw, expected", [("18", 18), ('"18"', 18), ("18.0", 18)])
def test_int_spellings(raw, expected):
    assert resolve(num_layers=raw).num_layers == expected


@pytest.mark.parametrize("raw", ["10, 20", "10,20", "[10, 20]", '"10, 20"', '"[10,20]"'])
def test_int_list_spellings(raw):
    assert resolve(lr_scheduler_step=raw).lr_scheduler_step == (10, 20)


@pytest.mark.parametrize("raw", ["3,224,224", '"3,224,224"', "[3, 224, 224]"])
def test_shape_spellings(raw):
    assert resolve(image_shape=raw).image_shape == (3, 224, 224)


def test_native_json_types_are_accepted():
    hp = ClassificationTask().schema().resolve({"num_classes": 2, "num_training_samples": 10, "epochs": 3,
                                                "use_pretrained_model": True, "learning_rate": 0.5})
    assert (hp.epochs, hp.use_pretrained_model, hp.learning_rate) == (3, True, 0.5)


def test_defaults_match_the_builtin():
    hp = resolve()
    assert (hp.num_layers, hp.epochs, hp.learning_rate, hp.mini_batch_size, hp.optimizer) == (152, 30, 0.1, 32, "sgd")
    assert (hp.momentum, hp.weight_decay, hp.image_shape, hp.lr_scheduler_factor) == (0.9, 0.0001, (3, 224, 224), 0.1)
    assert (hp.beta_1, hp.beta_2, hp.eps, hp.gamma, hp.precision_dtype) == (0.9, 0.999, 1e-8, 0.9, "float32")
    assert (hp.early_stopping, hp.early_stopping_min_epochs, hp.early_stopping_patience) == (False, 10, 5)
    assert hp.augmentation_type is None and hp.multi_label is False and hp.use_pretrained_model is False


@pytest.mark.parametrize("name, raw, fragment", [
    ("augmentation_type", "flip", "'crop', 'crop_color', 'crop_color_transform'"),
    ("optimizer", "adagrad", "'sgd', 'adam', 'rmsprop', 'nag'"),
    ("num_layers", "19", "18"),
    ("learning_rate", "abc", "float"),
    ("learning_rate", "2", "<= 1"),
    ("epochs", "0", ">= 1"),
    ("epochs", "2.5", "int"),
    ("use_pretrained_model", "maybe", "bool"),
    ("image_shape", "3,224", "'C,H,W'"),
    ("momentum", "nan", "float"),
])
def test_bad_values_name_the_value_and_the_valid_choices(name, raw, fragment):
    with pytest.raises(ConfigError) as err:
        resolve(**{name: raw})
    text = str(err.value)
    assert repr(raw) in text and repr(name) in text and fragment in text
    assert text.startswith("ConfigError: ")


def test_unknown_name_lists_valid_names():
    with pytest.raises(ConfigError, match="unknown hyperparameter.*'learning_rat'.*valid names:.*learning_rate"):
        resolve(learning_rat="0.1")


def test_missing_required_name():
    with pytest.raises(ConfigError, match="'num_classes' hyperparameter is required"):
        ClassificationTask().schema().resolve({"num_training_samples": "10"})


def test_sagemaker_and_tuning_names_are_ignored():
    hp = resolve(sagemaker_program="x.py", _tuning_objective_metric="validation:accuracy",
                 sagemaker_submit_directory="s3://b/k")
    assert "sagemaker_program" not in hp and "_tuning_objective_metric" not in hp


def test_empty_optional_value_means_default():
    assert resolve(lr_scheduler_step="").lr_scheduler_step == ()


def test_decode_value_rejects_bool_for_int():
    with pytest.raises(ConfigError):
        decode_value(Param("x", "int"), True)


def test_schema_describe_lists_every_param():
    rows = Schema("t", [Param("a", "int", 1, low=0, high=5)]).describe()
    assert rows == [{"name": "a", "kind": "int", "required": False, "default": 1, "valid": "a int >= 0 and <= 5", "help": ""}]
