"""Optimizer registry: plain dict of name -> factory building a Keras optimizer.

Importing this module does not import TensorFlow; factories import Keras lazily, so the
spec validator can list and check names cheaply.
"""

from __future__ import annotations

from typing import Any, Callable

from model.errors import ConfigError, suggest

__all__ = ["OPTIMIZERS", "get_optimizer"]


def _factory(keras_name: str, *, takes_rho: bool = False, takes_momentum: bool = False) -> Callable[[float, float, float], Any]:
    """A factory for ``keras.optimizers.<keras_name>`` passing on only the arguments it takes."""

    def build(learning_rate: float, rho: float, momentum: float) -> Any:
        import keras

        kwargs: dict[str, float] = {"learning_rate": learning_rate}
        if takes_rho:
            kwargs["rho"] = rho
        if takes_momentum:
            kwargs["momentum"] = momentum
        return getattr(keras.optimizers, keras_name)(**kwargs)

    build.__name__ = f"build_{keras_name.lower()}"
    return build


# name -> factory(learning_rate, rho, momentum). Every factory takes the same three
# arguments so a trial's params map onto any optimizer; those an optimizer has no use
# for are ignored (rho only matters to RMSprop and Adadelta, momentum to SGD and RMSprop).
OPTIMIZERS: dict[str, Callable[[float, float, float], Any]] = {
    "adadelta": _factory("Adadelta", takes_rho=True),
    "adagrad": _factory("Adagrad"),
    "adam": _factory("Adam"),
    "adamax": _factory("Adamax"),
    "adamw": _factory("AdamW"),
    "nadam": _factory("Nadam"),
    "rmsprop": _factory("RMSprop", takes_rho=True, takes_momentum=True),
    "sgd": _factory("SGD", takes_momentum=True),
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
