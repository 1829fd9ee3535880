"""Search-space YAML -> :class:`SweepSpec`: frozen dataclasses, validation, ``--set`` overrides.

A spec file is a W&B sweep configuration plus a ``sweeper:`` block that W&B never sees::

    name: lr_search
    method: random
    run_cap: 20
    metric: {name: val_psnr, goal: maximize}
    parameters:
      learning_rate: {distribution: log_uniform_values, min: 0.0001, max: 0.01}
      loss: {values: [mae, 'mae+0.1*sobel']}
      epochs: {value: 3}
    early_terminate: {type: hyperband, min_iter: 1}
    sweeper:
      dataset: {dir: data, name: synthetic}
      resources: {cpu: 1, gpu: 1, accelerator_type: T4, fallback: cpu}

:func:`load` reads such a file with ``yaml.safe_load`` only, applies ``--set`` overrides to a
copy, checks everything, and raises one :class:`SpecError` listing every problem, one line each,
each naming its key path and the fix. Parameter values are checked by the same table that checks
training parameters (:func:`model.params.check_param`), so a spec that loads is one training
accepts. Nothing here imports TensorFlow, Keras or Ray.

Modules: :mod:`~sweeper.spec.checks` (the error and field checks), :mod:`~sweeper.spec.params`
(:class:`Param`), :mod:`~sweeper.spec.sweep` (:class:`SweepSpec` and its blocks),
:mod:`~sweeper.spec.loader` (YAML and documents), :mod:`~sweeper.spec.overrides` (``--set``),
:mod:`~sweeper.spec.wandb_schema` (W&B's own schema check).
"""

from __future__ import annotations

from model.params import PARAMETER_NAMES
from sweeper.spec.checks import SpecError
from sweeper.spec.loader import from_dict, load, loads
from sweeper.spec.params import Param
from sweeper.spec.race import Race
from sweeper.spec.sweep import MAX_GRID, DatasetConfig, Hyperband, Resources, SweepSpec

__all__ = [
    "SweepSpec",
    "Param",
    "Hyperband",
    "Resources",
    "DatasetConfig",
    "Race",
    "SpecError",
    "load",
    "loads",
    "from_dict",
    "PARAMETER_NAMES",
    "MAX_GRID",
]
