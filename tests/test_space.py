"""Trial expansion: deterministic grids, stable ids, seeded random draws."""

from __future__ import annotations

import numpy as np
import pytest

from sweeper.space import Trial, expand, finite_ids, full_params, pending, trial_count, trial_id
from sweeper.spec import loads

HEAD = "name: {name}\nmethod: {method}\nmetric: {{name: val_psnr, goal: maximize}}\n{extra}parameters:\n"


def spec(body: str, name: str = "s", method: str = "grid", extra: str = "") -> object:
    return loads(HEAD.format(name=name, method=method, extra=extra) + body)


def test_grid_is_the_sorted_product_and_seeds_repeat_each_combination() -> None:
    trials = expand(spec("  optimizer: {values: [sgd, adam]}\n  loss: {values: [mae, mse, huber]}\n"
                         "  seed: {values: [0, 1]}\n  epochs: {value: 2}\n"))
    assert len(trials) == 12 and len({t.id for t in trials}) == 12
    combos = [(t.params["loss"], t.params["optimizer"], t.params["seed"]) for t in trials]
    # keys sorted (loss < optimizer < seed); values in the order the file lists them
    assert combos[:4] == [("mae", "sgd", 0), ("mae", "sgd", 1), ("mae", "adam", 0), ("mae", "adam", 1)]
    assert all(t.params["epochs"] == 2 for t in trials)
    assert list(trials[0].params) == sorted(trials[0].params)


def test_unlisted_params_take_the_training_defaults() -> None:
    (trial,) = expand(spec("  loss: {value: mae}\n"))
    assert trial.params["optimizer"] == "rmsprop" and trial.params["rho"] == 0.9


def test_trial_ids_are_stable_and_normalised() -> None:
    params = full_params({"optimizer": "rmsprop", "loss": "mae", "learning_rate": 0.001, "rho": 0.9})
    # A regression pin: the id scheme is part of every ledger on disk; changing it orphans them.
    assert trial_id(params) == "828dadf89703"
    assert trial_id(params) == trial_id(dict(reversed(list(params.items()))))
    assert trial_id({**params, "learning_rate": 1e-3}) == trial_id(params)
    assert trial_id({**params, "epochs": 3.0}) == trial_id({**params, "epochs": 3})
    assert trial_id({**params, "learning_rate": 1}) == trial_id({**params, "learning_rate": 1.0})
    assert trial_id({**params, "rho": 0.95}) != trial_id(params)
    assert trial_id({"loss": "mae"}) == trial_id(full_params({}))  # unlisted params take the defaults


def test_numpy_scalars_hash_like_python_numbers() -> None:
    # Ray and Optuna hand back numpy scalars; their repr differs across numpy versions.
    params = full_params({"seed": 3, "learning_rate": 0.5, "loss": "mse"})
    as_numpy = {**params, "seed": np.int64(3), "learning_rate": np.float64(0.5), "loss": np.str_("mse")}
    assert trial_id(as_numpy) == trial_id(params)
    assert type(full_params(as_numpy)["seed"]) is int and type(full_params(as_numpy)["learning_rate"]) is float


def test_grid_ids_are_distinct_and_the_same_in_every_run() -> None:
    body = "  learning_rate: {values: [0.0001, 0.001, 0.01]}\n  rho: {values: [0.8, 0.9]}\n  seed: {values: [0, 1]}\n"
    trials = expand(spec(body))
    assert len(trials) == 12 and len({t.id for t in trials}) == 12
    assert [t.id for t in expand(spec(body))] == [t.id for t in trials]
    seeds_of = {}
    for t in trials:  # each (lr, rho) combination once per seed
        seeds_of.setdefault((t.params["learning_rate"], t.params["rho"]), []).append(t.params["seed"])
    assert len(seeds_of) == 6 and all(seeds == [0, 1] for seeds in seeds_of.values())


def test_random_draws_run_cap_trials_within_bounds_deterministically() -> None:
    body = ("  learning_rate: {distribution: log_uniform_values, min: 0.0001, max: 0.01}\n"
            "  rho: {distribution: uniform, min: 0.8, max: 0.99}\n  optimizer: {values: [adam, rmsprop]}\n"
            "  batch_size: {distribution: int_uniform, min: 2, max: 8}\n")
    first = expand(spec(body, name="r", method="random", extra="run_cap: 7\n"))
    again = expand(spec(body, name="r", method="random", extra="run_cap: 7\n"))
    assert [t.id for t in first] == [t.id for t in again] and len(first) == 7
    for t in first:
        assert 0.0001 <= t.params["learning_rate"] <= 0.01 and 0.8 <= t.params["rho"] <= 0.99
        assert t.params["optimizer"] in ("adam", "rmsprop") and 2 <= t.params["batch_size"] <= 8
    other = expand(spec(body, name="other", method="random", extra="run_cap: 7\n"))
    assert [t.id for t in other] != [t.id for t in first]


def test_random_quantised_draws_are_clean_multiples_of_q() -> None:
    body = ("  rho: {distribution: q_uniform, min: 0.5, max: 0.9, q: 0.1}\n"
            "  batch_size: {distribution: q_uniform, min: 4, max: 16, q: 4}\n")
    trials = expand(spec(body, method="random", extra="run_cap: 6\n"))
    assert len(trials) == 6
    for t in trials:
        assert t.params["rho"] in (0.5, 0.6, 0.7, 0.8, 0.9)
        assert type(t.params["batch_size"]) is int and t.params["batch_size"] in (4, 8, 12, 16)


def test_random_over_a_small_discrete_space_stops_at_its_size() -> None:
    trials = expand(spec("  optimizer: {values: [adam, sgd]}\n", method="random", extra="run_cap: 5\n"))
    assert sorted(t.params["optimizer"] for t in trials) == ["adam", "sgd"]


def test_bayes_has_nothing_to_expand() -> None:
    body = "  learning_rate: {distribution: log_uniform_values, min: 0.0001, max: 0.01}\n"
    with pytest.raises(ValueError, match="Optuna"):
        expand(spec(body, method="bayes", extra="run_cap: 3\n"))


def test_a_bayes_sweep_counts_the_trials_its_space_holds() -> None:
    discrete = "  optimizer: {values: [adam, sgd]}\n  rho: {values: [0.8, 0.9, 0.95]}\n  epochs: {value: 2}\n"
    small = spec(discrete, method="bayes", extra="run_cap: 10\n")
    # The same ids a grid over the same values lists: what a bayes sweep can run at most.
    assert finite_ids(small) == {t.id for t in expand(spec(discrete))} and len(finite_ids(small)) == 6
    assert trial_count(small) == 6 and trial_count(spec(discrete, method="bayes", extra="run_cap: 4\n")) == 4
    continuous = spec("  learning_rate: {distribution: log_uniform_values, min: 0.0001, max: 0.01}\n",
                      method="bayes", extra="run_cap: 3\n")
    assert finite_ids(continuous) is None and trial_count(continuous) == 3
    assert trial_count(spec(discrete)) == 6  # grid: its combinations
    # A space too large to list counts as unbounded.
    assert finite_ids(small, limit=5) is None


def test_pending_keeps_order_and_drops_done() -> None:
    trials = [Trial(str(i), {}) for i in range(5)]
    assert [t.id for t in pending(trials, {"1", "3"})] == ["0", "2", "4"]


def test_a_parameter_added_later_keeps_every_recorded_id() -> None:
    """precision came after ledgers were written: at its old behaviour (float32) it is left out
    of the hash, so the ids on disk stay; any other value is a different trial."""
    params = full_params({"optimizer": "rmsprop", "loss": "mae", "learning_rate": 0.001, "rho": 0.9})
    assert params["precision"] == "float32" and trial_id(params) == "828dadf89703"
    assert trial_id({**params, "precision": "mixed_bfloat16"}) != trial_id(params)
