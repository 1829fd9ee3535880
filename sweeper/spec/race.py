"""The ``sweeper.race`` block: race a grid's configurations over seeds instead of running each
on a fixed number of them.

::

    sweeper:
      race:
        seeds: {first: 3, max: 10}   # every configuration runs 3 seeds, then one more per round
        alpha: 0.05                  # the whole race's error rate (split over its looks)
        test: friedman               # or ttest-holm
        budget: {trials: 150}        # optional: stop when this many trials (or seconds) are spent
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from sweeper.spec.checks import Check, choice, mapping, raise_if, real, unknown_keys, whole

__all__ = ["RACE_TESTS", "Race"]

RACE_TESTS = ("friedman", "ttest-holm")
_KEYS = {"seeds": ("first", "max"), "budget": ("trials", "seconds")}


@dataclass(frozen=True)
class Race:
    """How a grid is raced (see :mod:`sweeper.race`).

    Attributes:
        first: Seeds every configuration runs before the first test (at least 2).
        max: Seeds a configuration runs at the most; the race ends there.
        alpha: The probability the whole race may eliminate a configuration of a field of
            equals; each of its ``max - first + 1`` looks tests at ``alpha / looks``.
        test: ``friedman`` (ranks; Conover post-hoc) or ``ttest-holm`` (paired t, Holm).
        budget_trials: Stop starting new rounds once this many trials have run.
        budget_seconds: Stop starting new rounds once the trials' seconds add up to this.
    """

    first: int = 3
    max: int = 10
    alpha: float = 0.05
    test: str = "friedman"
    budget_trials: int | None = None
    budget_seconds: float | None = None

    PATH: ClassVar[str] = "sweeper.race."
    # field -> (key path under sweeper.race, check)
    CHECKS: ClassVar[dict[str, tuple[str, Check]]] = {
        "first": ("seeds.first", whole(2)),
        "max": ("seeds.max", whole(2)),
        "alpha": ("alpha", real(above=0)),
        "test": ("test", choice(RACE_TESTS, "race test")),
        "budget_trials": ("budget.trials", whole(1, optional=True)),
        "budget_seconds": ("budget.seconds", real(above=0, optional=True)),
    }

    def __post_init__(self) -> None:
        problems = [
            f"{self.PATH}{path}: {problem}"
            for name, (path, check) in self.CHECKS.items()
            if (problem := check(getattr(self, name))) is not None
        ]
        if not problems and self.max < self.first:
            problems.append(f"{self.PATH}seeds.max: {self.max} is less than seeds.first {self.first}; "
                            f"use max >= {self.first}")
        if not problems and self.alpha >= 0.5:
            problems.append(f"{self.PATH}alpha: {self.alpha} is not an error rate worth racing at; use e.g. 0.05")
        raise_if(problems)

    @property
    def looks(self) -> int:
        """How many times the race may test: after ``first`` seeds, then after each new one."""
        return self.max - self.first + 1

    @classmethod
    def from_block(cls, block: dict[Any, Any]) -> tuple[dict[str, Any], list[str]]:
        """The constructor's arguments from the YAML block (nested ``seeds`` and ``budget``),
        and the problems with its shape (unknown keys, a nested block that is not a mapping)."""
        problems = unknown_keys(cls.PATH.rstrip("."), block, ("alpha", "budget", "seeds", "test"))
        kwargs: dict[str, Any] = {k: block[k] for k in ("alpha", "test") if k in block}
        for outer, inner in _KEYS.items():
            path = f"{cls.PATH}{outer}"
            nested = mapping(path, block.get(outer), f"{{{inner[0]}: ...}}", problems)
            if nested is None:
                continue
            problems += unknown_keys(path, nested, inner)
            for key in inner:
                if key in nested:
                    kwargs[key if outer == "seeds" else f"budget_{key}"] = nested[key]
        return kwargs, problems

    def to_dict(self) -> dict[str, Any]:
        """The block as written in the YAML."""
        budget = {k: v for k, v in (("trials", self.budget_trials), ("seconds", self.budget_seconds)) if v is not None}
        block: dict[str, Any] = {"seeds": {"first": self.first, "max": self.max}, "alpha": self.alpha, "test": self.test}
        return {**block, "budget": budget} if budget else block
