"""Training hyperparameters: one frozen dataclass, each field declared with its check.

The same checks validate :class:`TrainParams` and every value of a sweep spec
(``sweeper.spec`` calls :func:`check_param`), so a value the spec accepts is one training
accepts. No TensorFlow import here.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from model.errors import ConfigError, suggest

__all__ = ["TrainParams", "PARAMETER_NAMES", "PRECISIONS", "check_param", "int_arg", "is_int", "one_of", "side_arg"]

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16", "auto")
"""Keras dtype policies a trial may train under: ``mixed_bfloat16`` for CPUs with native bf16
(AVX-512 BF16, AMX) and TPUs; ``mixed_float16`` for GPUs with tensor cores (a T4), with loss
scaling. The output layer and every metric stay float32 either way. ``auto`` is the one of
these the node's hardware runs best (:func:`model.runtime.choose_precision`), decided where
the trial trains; the ledger's ``dtype_policy`` column records what it was."""


def is_int(value: Any) -> bool:
    """Whether ``value`` is an ``int`` and not a ``bool``.

    Shared with ``sweeper.spec`` so both judge whole numbers alike.
    """
    # bool is an int subclass, but `epochs: true` is a mistake, not 1.
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (is_int(value) or isinstance(value, float)) and math.isfinite(value)


def _optimizer(value: Any) -> str | None:
    from model.optimizers import OPTIMIZERS

    if not isinstance(value, str):
        return f"optimizer must be a name, got {value!r}; valid: {', '.join(OPTIMIZERS)}"
    if value not in OPTIMIZERS:
        return f"unknown optimizer {value!r}{suggest(value, list(OPTIMIZERS))}; valid: {', '.join(OPTIMIZERS)}"
    return None


def _loss(value: Any) -> str | None:
    from model.losses import parse_loss

    if not isinstance(value, str):
        return f"loss must be a name or an expression like 'mae+0.1*sobel', got {value!r}"
    try:
        parse_loss(value)
    except ConfigError as err:
        return str(err)
    return None


def one_of(valid: Sequence[str], what: str, shown: Callable[[Any], str] = repr) -> Callable[[Any], str | None]:
    """A check for one of the names ``valid``: ``None``, or ``unknown <what> <value> (did you
    mean ...?); use one of ...``; ``shown`` renders the bad value (the spec shows YAML)."""

    def check(value: Any) -> str | None:
        if isinstance(value, str) and value in valid:
            return None
        hint = suggest(value, valid) if isinstance(value, str) else ""
        return f"unknown {what} {shown(value)}{hint}; use one of {', '.join(valid)}"

    return check


def _number(low: float, high: float, low_open: bool, high_open: bool, hint: str) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        ok = _is_number(value) and (value > low if low_open else value >= low) and (
            value < high if high_open else value <= high
        )
        return None if ok else f"{value!r} is out of range: {hint}"

    return check


def _integer(minimum: int, multiple: int = 1, maximum: int | None = None) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if not is_int(value):
            return f"{value!r} is not an integer; use a whole number >= {minimum}"
        if value < minimum:
            return f"{value!r} is too small; use a whole number >= {minimum}"
        if maximum is not None and value > maximum:
            return f"{value!r} is too large; use a whole number <= {maximum}"
        if value % multiple:
            return f"{value!r} is not a multiple of {multiple}; use e.g. {value - value % multiple or multiple}"
        return None

    return check


def int_arg(field: str, value: Any, example: int | None = None, *, minimum: int | None = None) -> int:
    """An integer argument (at least ``minimum``, when given), rejecting bools and floats
    (``24.0`` is a typo for a count).

    Raises:
        ConfigError: naming ``field=value`` (and ``field=example`` as the fix, when given).
    """
    hint = f", e.g. {field}={example}" if example is not None else ""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ConfigError(f"{field}={value!r}: must be an integer{hint}")
    if minimum is not None and value < minimum:
        raise ConfigError(f"{field}={value!r}: must be >= {minimum}{hint}")
    return int(value)


def side_arg(field: str, value: Any, *, minimum: int = 4) -> int:
    """An image or patch side: an integer >= ``minimum`` and a multiple of 4, since the network
    halves it twice.

    Raises:
        ConfigError: naming ``field=value`` and the nearest valid side.
    """
    side = int_arg(field, value)
    if side < minimum or side % 4:
        fix = max(minimum, side - side % 4)
        bound = "a positive" if minimum == 4 else f">= {minimum} and a"
        raise ConfigError(f"{field}={value!r}: must be {bound} multiple of 4 (the network halves it twice); "
                          f"use e.g. {field}={fix}")
    return side


def _param(default: Any, check: Callable[[Any], str | None]) -> Any:
    """A :class:`TrainParams` field: its default and its check, declared together."""
    return dataclasses.field(default=default, metadata={"check": check})


@dataclass(frozen=True)
class TrainParams:
    """Hyperparameters of one training run; validated at construction.

    Defaults are the write-up's best setting (RMSprop, MAE, lr 0.001, rho 0.9) at a budget
    a 2-core CPU finishes in about a minute. Each field is declared with its check, which
    :func:`check_param` applies to a sweep spec's values too.
    """

    optimizer: str = _param("rmsprop", _optimizer)
    loss: str = _param("mae", _loss)
    learning_rate: float = _param(0.001, _number(0.0, math.inf, True, True,
                                                 "learning_rate must be a number > 0, e.g. 0.001"))
    rho: float = _param(0.9, _number(0.0, 1.0, True, True, "rho must be in (0, 1), e.g. 0.9"))
    momentum: float = _param(0.0, _number(0.0, 1.0, False, True, "momentum must be in [0, 1), e.g. 0.9"))
    epochs: int = _param(3, _integer(1))
    steps_per_epoch: int = _param(10, _integer(1))
    batch_size: int = _param(8, _integer(1))
    # Two 2x poolings need a multiple of 4; below 8 the SSIM/Sobel windows do not fit.
    patch_size: int = _param(64, _integer(8, multiple=4))
    # keras.utils.set_random_seed takes a 32-bit seed
    seed: int = _param(0, _integer(0, maximum=2**32 - 1))
    precision: str = _param("float32", one_of(PRECISIONS, "precision"))

    def __post_init__(self) -> None:
        problems = [
            f"{field.name}: {problem}"
            for field in dataclasses.fields(self)
            if (problem := check_param(field.name, getattr(self, field.name))) is not None
        ]
        if problems:
            raise ConfigError("; ".join(problems))

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "TrainParams":
        """Build from a mapping (e.g. a trial's params); unknown keys are an error."""
        unknown = sorted(set(values) - set(PARAMETER_NAMES))
        if unknown:
            raise ConfigError("; ".join(check_param(name, None) or name for name in unknown))
        return cls(**dict(values))

    def to_dict(self) -> dict[str, Any]:
        """The parameters as a plain dict (sorted keys)."""
        return dict(sorted(dataclasses.asdict(self).items()))


# name -> check(value) returning a one-line problem (without the key path) or None.
_CHECKS: dict[str, Callable[[Any], str | None]] = {f.name: f.metadata["check"] for f in dataclasses.fields(TrainParams)}

PARAMETER_NAMES: tuple[str, ...] = tuple(sorted(_CHECKS))


def check_param(name: str, value: Any) -> str | None:
    """Check one hyperparameter value.

    Returns:
        ``None`` when valid, else a one-line description of the problem and the fix.
    """
    if name not in _CHECKS:
        return f"unknown parameter {name!r}{suggest(name, PARAMETER_NAMES)}; valid: {', '.join(PARAMETER_NAMES)}"
    return _CHECKS[name](value)
