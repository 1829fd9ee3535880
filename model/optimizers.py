"""Optimizer registry: plain dict of name -> factory building a Keras optimizer.

Importing this module does not import TensorFlow; factories import Keras lazily, so the
spec validator can list and check names cheaply.
"""

from __future__ import annotations

from typing import Any, Callable

from model.errors import ConfigError, suggest

__all__ = ["OPTIMIZERS", "get_optimizer"]


def _keras_optimizers() -> Any:
    import keras

    return keras.optimizers


def _sgd(learning_rate: float, rho: float, momentum: float) -> Any:
    return _keras_optimizers().SGD(learning_rate=learning_rate, momentum=momentum)


def _adam(learning_rate: float, rho: float, momentum: float) -> Any:
    return _keras_optimizers().Adam(learning_rate=learning_rate)


def _adamw(learning_rate: float, rho: float, momentum: float) -> Any:
    return _keras_optimizers().AdamW(learning_rate=learning_rate)


def _rmsprop(learning_rate: float, rho: float, momentum: float) -> Any:
    return _keras_optimizers().RMSprop(learning_rate=learning_rate, rho=rho, momentum=momentum)


def _adagrad(learning_rate: float, rho: float, momentum: float) -> Any:
    return _keras_optimizers().Adagrad(learning_rate=learning_rate)


def _adadelta(learning_rate: float, rho: float, momentum: float) -> Any:
    return _keras_optimizers().Adadelta(learning_rate=learning_rate, rho=rho)


def _nadam(learning_rate: float, rho: float, momentum: float) -> Any:
    return _keras_optimizers().Nadam(learning_rate=learning_rate)


def _adamax(learning_rate: float, rho: float, momentum: float) -> Any:
    return _keras_optimizers().Adamax(learning_rate=learning_rate)


# name -> factory(learning_rate, rho, momentum). Every factory takes the same three
# arguments so a trial's params map onto any optimizer; those an optimizer has no use
# for are ignored (rho only matters to RMSprop and Adadelta, momentum to SGD and RMSprop).
OPTIMIZERS: dict[str, Callable[[float, float, float], Any]] = {
    "adadelta": _adadelta,
    "adagrad": _adagrad,
    "adam": _adam,
    "adamax": _adamax,
    "adamw": _adamw,
    "nadam": _nadam,
    "rmsprop": _rmsprop,
    "sgd": _sgd,
}


def get_optimizer(name: str, learning_rate: float, rho: float = 0.9, momentum: float = 0.0) -> Any:
    """Build the Keras optimizer called ``name``.

    Raises:
        ConfigError: ``name`` is not in :data:`OPTIMIZERS` (the message lists the valid names).
    """
    try:
        factory = OPTIMIZERS[name]
    except KeyError:
        raise ConfigError(
            f"unknown optimizer {name!r}{suggest(name, list(OPTIMIZERS))}; "
            f"valid: {', '.join(OPTIMIZERS)}"
        ) from None
    return factory(learning_rate, rho, momentum)
