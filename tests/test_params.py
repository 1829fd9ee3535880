"""TrainParams validation: every bad value names the field and the fix."""

from __future__ import annotations

import pytest

from model.errors import ConfigError
from model.params import PARAMETER_NAMES, TrainParams, check_param


def test_defaults_are_the_writeups_best_setting() -> None:
    p = TrainParams()
    assert (p.optimizer, p.loss, p.learning_rate, p.rho) == ("rmsprop", "mae", 0.001, 0.9)


@pytest.mark.parametrize(
    "field,value,expected",
    [
        ("optimizer", "rmsprp", "optimizer: unknown optimizer 'rmsprp' (did you mean 'rmsprop'?)"),
        ("optimizer", 3, "optimizer: optimizer must be a name"),
        ("loss", "maee", "loss:"),
        ("loss", "mae+0.1*", "loss:"),
        ("learning_rate", 0.0, "learning_rate: 0.0 is out of range"),
        ("learning_rate", -1e-3, "learning_rate must be a number > 0"),
        ("learning_rate", float("nan"), "learning_rate:"),
        ("rho", 1.0, "rho must be in (0, 1)"),
        ("rho", 0.0, "rho must be in (0, 1)"),
        ("momentum", 1.0, "momentum must be in [0, 1)"),
        ("batch_size", 0, "batch_size: 0 is too small"),
        ("epochs", True, "epochs: True is not an integer"),
        ("epochs", 2.5, "epochs: 2.5 is not an integer"),
        ("patch_size", 30, "patch_size: 30 is not a multiple of 4; use e.g. 28"),
        ("patch_size", 4, "patch_size: 4 is too small"),
        ("seed", -1, "seed: -1 is too small"),
        ("seed", 2**32, "seed: 4294967296 is too large; use a whole number <= 4294967295"),
    ],
)
def test_bad_values_name_the_field_and_the_fix(field: str, value: object, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        TrainParams(**{field: value})
    message = str(info.value)
    assert expected in message
    assert "\n" not in message and info.value.exit_code == 2


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as info:
        TrainParams(rho=2.0, batch_size=0)
    assert "rho:" in str(info.value) and "batch_size:" in str(info.value)


def test_from_mapping_rejects_unknown_keys_with_a_suggestion() -> None:
    with pytest.raises(ConfigError, match=r"unknown parameter 'learnig_rate' \(did you mean 'learning_rate'\?\)"):
        TrainParams.from_mapping({"learnig_rate": 0.1})


def test_from_mapping_and_to_dict_round_trip() -> None:
    p = TrainParams(optimizer="sgd", momentum=0.9, loss="mae+0.1*sobel")
    assert TrainParams.from_mapping(p.to_dict()) == p
    assert list(p.to_dict()) == sorted(PARAMETER_NAMES)


def test_check_param_accepts_every_default() -> None:
    for name, value in TrainParams().to_dict().items():
        assert check_param(name, value) is None


def test_optimizer_registry_passes_on_what_each_optimizer_takes() -> None:
    import pytest as _pytest

    _pytest.importorskip("keras")
    from model.optimizers import OPTIMIZERS, get_optimizer

    rms = get_optimizer("rmsprop", 0.01, rho=0.8, momentum=0.5)
    assert type(rms).__name__ == "RMSprop" and rms.rho == 0.8 and rms.momentum == 0.5
    assert float(rms.learning_rate) == _pytest.approx(0.01)
    assert get_optimizer("sgd", 0.1, momentum=0.9).momentum == 0.9
    assert {type(get_optimizer(name, 0.001)).__name__.lower() for name in OPTIMIZERS} == set(OPTIMIZERS)


def test_unknown_optimizer_lists_the_valid_ones() -> None:
    from model.optimizers import get_optimizer

    with pytest.raises(ConfigError, match=r"unknown optimizer 'sgdd' \(did you mean 'sgd'\?\); valid: adadelta, "):
        get_optimizer("sgdd", 0.001)
