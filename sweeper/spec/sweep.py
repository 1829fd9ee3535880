"""The validated spec: :class:`SweepSpec`, its blocks, and the rules that relate its fields.

Every dataclass validates on construction and raises one :class:`SpecError` listing every
problem. :func:`spec_problems` is the single home of the top-level field rules: the
dataclass runs it, and the loader runs it itself only when the document is too broken to
build a :class:`SweepSpec` from (so every problem is still reported at once).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Mapping, Sequence

from model.errors import ConfigError
from sweeper.spec.checks import Check, choice, directory, raise_if, real, run_checks, safe_name, show, whole
from sweeper.spec.params import Param, grid_size
from sweeper.spec.race import Race

__all__ = [
    "GOALS",
    "MAX_GRID",
    "METHODS",
    "DatasetConfig",
    "Hyperband",
    "Resources",
    "SweepSpec",
    "spec_problems",
]

MAX_GRID = 100_000
"""Largest number of trials accepted without ``allow_huge=True`` (the CLI's ``--yes``)."""

METHODS = ("grid", "random", "bayes")
GOALS = ("maximize", "minimize")


def _fields(obj: Any) -> dict[str, Any]:
    """A dataclass's fields by name (shallow, unlike :func:`dataclasses.asdict`)."""
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}


# ---------------------------------------------------------------------------------------------
# Blocks


@dataclass(frozen=True)
class Hyperband:
    """``early_terminate: {type: hyperband, min_iter, eta, max_iter}`` (run as Ray Tune's ASHA:
    grace period ``min_iter`` epochs, reduction factor ``eta``, ``max_t`` = ``max_iter``)."""

    min_iter: int
    eta: float = 3
    max_iter: int | None = None
    type: str = "hyperband"

    PATH: ClassVar[str] = "early_terminate."
    CHECKS: ClassVar[dict[str, Check]] = {
        "type": choice(("hyperband",), "early_terminate type"),
        "min_iter": whole(1),
        "eta": real(above=1),
        "max_iter": whole(1, optional=True),
    }

    def __post_init__(self) -> None:
        problems = run_checks(self.PATH, _fields(self), self.CHECKS)
        if not problems and self.max_iter is not None and self.max_iter <= self.min_iter:
            problems.append(f"{self.PATH}max_iter: {self.max_iter} must be greater than min_iter {self.min_iter}")
        raise_if(problems)

    def to_dict(self) -> dict[str, Any]:
        """The block as written in the YAML."""
        block = {"type": self.type, "min_iter": self.min_iter, "eta": self.eta}
        return block if self.max_iter is None else {**block, "max_iter": self.max_iter}


@dataclass(frozen=True)
class Resources:
    """Per-trial resources. ``accelerator_type`` pins trials to that GPU type where the cluster
    has it; otherwise ``fallback: cpu`` runs on CPU and ``fallback: none`` refuses."""

    cpu: float = 1
    gpu: float = 1
    accelerator_type: str | None = "T4"
    fallback: str = "cpu"

    PATH: ClassVar[str] = "sweeper.resources."
    CHECKS: ClassVar[dict[str, Check]] = {
        "cpu": real(above=0),
        "gpu": real(at_least=0),
        "accelerator_type": safe_name("accelerator type", "T4", optional=True),
        "fallback": choice(("cpu", "none"), "fallback"),
    }

    def __post_init__(self) -> None:
        raise_if(run_checks(self.PATH, _fields(self), self.CHECKS))
        object.__setattr__(self, "cpu", float(self.cpu))
        object.__setattr__(self, "gpu", float(self.gpu))

    def to_dict(self) -> dict[str, Any]:
        """The block as written in the YAML."""
        return _fields(self)


@dataclass(frozen=True)
class DatasetConfig:
    """Where trials read data: ``<dir>/<name>/{train,test}/{blur,sharp}``. The ``synthetic``
    dataset is made on first use; any other name must exist (checked at dispatch, not here,
    because ``--data-dir`` can still move it)."""

    dir: Path = Path("data")
    name: str = "synthetic"

    PATH: ClassVar[str] = "sweeper.dataset."
    CHECKS: ClassVar[dict[str, Check]] = {
        "dir": directory,
        "name": safe_name("dataset name", "synthetic"),
    }

    def __post_init__(self) -> None:
        raise_if(run_checks(self.PATH, _fields(self), self.CHECKS))
        object.__setattr__(self, "dir", Path(self.dir))

    def to_dict(self) -> dict[str, Any]:
        """The block as written in the YAML."""
        return {"dir": str(self.dir), "name": self.name}


# ---------------------------------------------------------------------------------------------
# Top-level rules


def spec_problems(fields: Mapping[str, Any]) -> list[str]:
    """Every problem with the :class:`SweepSpec` fields given in ``fields``.

    A field absent from ``fields`` is not checked; ``run_cap`` counts as given whenever its
    key is present, even as ``None`` (the loader's ``run_cap: null``). The rules that relate
    fields (what a method needs) run when ``method`` is valid. The trial-count guard
    (``MAX_GRID``) is not here: it belongs to the loader, which can be told ``allow_huge``.

    Args:
        fields: field name -> value, e.g. ``{"name": "x", "method": "grid", "parameters": (...)}``.

    Returns:
        One-line problems, each starting with its key path.
    """
    problems = [
        f"{path}: {problem}"
        for key, (path, check) in SweepSpec.CHECKS.items()
        if key in fields and (problem := check(fields[key])) is not None
    ]
    if "metric" in fields:
        problems += _metric_problems(fields["metric"], fields.get("goal"))
    for key, label, kind in (
        ("early_terminate", "early_terminate", (Hyperband, type(None))),
        ("dataset", "sweeper.dataset", DatasetConfig),
        ("resources", "sweeper.resources", Resources),
        ("race", "sweeper.race", (Race, type(None))),
    ):
        if key in fields and not isinstance(fields[key], kind):
            expected = kind.__name__ if isinstance(kind, type) else kind[0].__name__
            problems.append(f"{label}: expected a {expected}, got {show(fields[key])}")
    params = fields.get("parameters", ())
    if "parameters" in fields:
        params = tuple(params) if isinstance(params, (list, tuple)) else ()
        if not params or not all(isinstance(p, Param) for p in params):
            # Relating rules need real Params; without them they would only add noise.
            return problems + ["parameters: expected one or more Param"]
        names = [p.name for p in params]
        problems += [f"parameters.{n}: given more than once" for n in sorted(set(names)) if names.count(n) > 1]
    if fields.get("method") in METHODS:
        problems += _method_problems(fields["method"], params, run_cap_given="run_cap" in fields)
    if isinstance(fields.get("race"), Race):
        problems += _race_problems(fields["race"], fields.get("method"), params, fields.get("early_terminate"))
    return problems


def _metric_problems(name: Any, goal: Any) -> list[str]:
    """Problems with ``metric: {name, goal}``. ``goal`` is required: W&B would default it to
    minimize, which is wrong for val_psnr, so the file would mean different things to W&B and us."""
    # Imported here: model.metrics is light at import, but only spec checks need it.
    from model.metrics import metric_goal

    if not isinstance(name, str):
        return [f"metric.name: expected a metric name like 'val_psnr', got {show(name)}"]
    try:
        direction = metric_goal(name)
    except ConfigError as err:
        return [f"metric.name: {err}"]
    if not str(name).startswith("val_"):
        return [f"metric.name: use 'val_{name}', the name trials log it under"]
    better = "higher" if direction == "maximize" else "lower"
    if goal is None:
        return [f"metric.goal: missing; add goal: {direction} ({name} is better when {better})"]
    if (problem := choice(GOALS, "goal")(goal)) is not None:
        return [f"metric.goal: {problem}"]
    if goal != direction:
        return [f"metric.goal: {name} is better when {better}; use goal: {direction}"]
    return []


def _method_problems(method: str, params: Sequence[Param], *, run_cap_given: bool) -> list[str]:
    """What a method needs: grid takes lists and no run_cap; random and bayes need run_cap."""
    if method != "grid":
        return [] if run_cap_given else [f"run_cap: required for method {method}; add e.g. run_cap: 20"]
    problems = [
        f"parameters.{p.name}: grid needs values or value; use random or bayes for distributions"
        for p in params
        if p.kind == "distribution"
    ]
    if run_cap_given:
        problems.append(
            f"run_cap: a grid runs all its {grid_size(params)} combinations; remove run_cap or use method: random"
        )
    return problems


def _race_problems(race: Race, method: Any, params: Sequence[Param], early_terminate: Any) -> list[str]:
    """What a race needs: a grid of two or more configurations, whose seeds it chooses itself."""
    problems = []
    if method != "grid":
        problems.append("sweeper.race: only a grid is raced; use method: grid or remove sweeper.race")
    if any(p.name == "seed" for p in params):
        problems.append(f"parameters.seed: a race runs seeds 0 to {race.max - 1} itself (sweeper.race.seeds); "
                        "remove seed from parameters")
    elif method == "grid" and params and grid_size(params) < 2:
        problems.append("sweeper.race: the grid has one configuration; a race needs two or more to compare")
    if early_terminate is not None:
        problems.append("early_terminate: a race already stops the configurations that fall behind; "
                        "remove early_terminate or sweeper.race")
    return problems


# ---------------------------------------------------------------------------------------------
# The spec


@dataclass(frozen=True)
class SweepSpec:
    """A validated search space. Construct it with :func:`~sweeper.spec.load`,
    :func:`~sweeper.spec.loads` or :func:`~sweeper.spec.from_dict`; direct construction
    validates too (``allow_huge`` is assumed there).

    Attributes:
        parameters: sorted by name; parameters not listed take :class:`model.params.TrainParams`
            defaults.
        early_terminate: ``None`` or a :class:`Hyperband` block (run as ASHA).
        run_cap: number of trials for random and bayes; ``None`` for grid.
        max_concurrent: trials running at once; ``None`` lets Ray decide from resources.
        max_failures: retries of a failing trial before it is recorded as an error.
        race: ``None``, or a :class:`~sweeper.spec.race.Race`: the grid's configurations are
            raced over seeds, the ones falling behind eliminated.
    """

    name: str
    method: str
    metric: str
    goal: str
    parameters: tuple[Param, ...]
    early_terminate: Hyperband | None = None
    run_cap: int | None = None
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    resources: Resources = field(default_factory=Resources)
    max_concurrent: int | None = None
    max_failures: int = 2
    race: Race | None = None

    # field -> (key path in the YAML, check).
    CHECKS: ClassVar[dict[str, tuple[str, Check]]] = {
        "name": ("name", safe_name("sweep name", "optim_loss")),
        "method": ("method", choice(METHODS, "method")),
        "run_cap": ("run_cap", whole(1, optional=True)),
        "max_concurrent": ("sweeper.max_concurrent", whole(1, optional=True)),
        "max_failures": ("sweeper.max_failures", whole(0)),
    }

    def __post_init__(self) -> None:
        given = _fields(self)
        if self.run_cap is None:
            del given["run_cap"]  # None is the default, "not given"; to_dict leaves it out too
        raise_if(spec_problems(given))
        object.__setattr__(self, "parameters", tuple(sorted(self.parameters, key=lambda p: p.name)))

    def grid_size(self) -> int:
        """Trials a grid runs: the product of each ``values`` list's length (a fixed value
        counts once). For random and bayes the trial count is ``run_cap`` instead."""
        return grid_size(self.parameters)

    def param(self, name: str) -> Param | None:
        """The parameter called ``name``, or ``None`` when the spec leaves it at its default."""
        return next((p for p in self.parameters if p.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        """The resolved spec as a YAML-ready document (defaults filled in); loads back equal."""
        doc: dict[str, Any] = {
            "name": self.name,
            "method": self.method,
            "metric": {"name": self.metric, "goal": self.goal},
            "parameters": {p.name: p.to_dict() for p in self.parameters},
        }
        if self.run_cap is not None:
            doc["run_cap"] = self.run_cap
        if self.early_terminate is not None:
            doc["early_terminate"] = self.early_terminate.to_dict()
        doc["sweeper"] = {
            "dataset": self.dataset.to_dict(),
            "resources": self.resources.to_dict(),
            "max_concurrent": self.max_concurrent,
            "max_failures": self.max_failures,
        }
        if self.race is not None:
            doc["sweeper"]["race"] = self.race.to_dict()
        return doc

    def wandb_config(self) -> dict[str, Any]:
        """The spec minus ``sweeper:``: what ``wandb.sweep`` / ``wandb sweep`` accepts."""
        doc = self.to_dict()
        del doc["sweeper"]
        return doc
