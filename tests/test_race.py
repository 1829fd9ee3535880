"""Racing: the tests' error rate by simulation (no Ray), and whole races on a real local Ray
with a trainable whose scores the test controls, interrupted by kill -9 and resumed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from sweeper.race import look, look_level, race_state, seeds_needed
from sweeper.spec import loads
from tests.conftest import ROOT

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


# ------------------------------------------------------------------ the statistics (no Ray)


def _simulated_race(rng: np.random.Generator, k: int, first: int, most: int, test: str, alpha: float,
                    shift: np.ndarray | None = None) -> tuple[list[int], int]:
    """One race on synthetic scores (seed effects shared by every configuration, as in a real
    sweep): the configurations it eliminated and the seeds it stopped at."""
    x = rng.normal(size=(most, k)) + 3.0 * rng.normal(size=(most, 1))
    if shift is not None:
        x = x + shift
    alive, eliminated, level = list(range(k)), [], look_level(alpha, most - first + 1)
    for n in range(first, most + 1):
        result = look(x[:n][:, alive], test, level)
        eliminated += [alive[j] for j in result.eliminated]
        alive = [a for i, a in enumerate(alive) if i not in result.eliminated]
        if len(alive) == 1:
            break
    return eliminated, n


@pytest.mark.parametrize(("test", "k", "races", "first"), [
    ("friedman", 5, 600, 3), ("friedman", 2, 300, 3), ("ttest-holm", 5, 1500, 3), ("ttest-holm", 25, 1500, 3),
    # The reference races' shape: 25 configurations (lr_rho_race has 20), first look at 2 seeds (one block
    # fewer than above: the look the rank test's step-down and the t test's 1 df must survive).
    ("friedman", 25, 400, 2), ("ttest-holm", 25, 1500, 2)])
def test_equal_configurations_are_eliminated_at_most_at_the_stated_rate(test: str, k: int, races: int,
                                                                        first: int) -> None:
    """A field of equals, raced ``first`` to 10 seeds at alpha 0.05: the share of races that
    eliminate any of them must be within the bound (plus three standard errors of the estimate)."""
    rng = np.random.default_rng(7)
    alpha = 0.05
    false = sum(bool(_simulated_race(rng, k, first, 10, test, alpha)[0]) for _ in range(races))
    bound = alpha + 3 * (alpha * (1 - alpha) / races) ** 0.5
    assert false / races <= bound, (false, races)


def test_without_the_gate_comparing_with_the_best_would_break_the_rate() -> None:
    """Why the omnibus gate is there: Holm-corrected t tests against the best of 25 equals,
    ungated, eliminate far more often than their level (the best of k is biased upwards);
    the gated look, on the same scores, stays within it."""
    from scipy import stats

    rng = np.random.default_rng(3)
    level, ungated, gated = 0.05, 0, 0
    for _ in range(400):
        x = rng.normal(size=(3, 25))
        best = int(np.argmax(x.mean(axis=0)))
        p = sorted(float(stats.ttest_rel(x[:, best], x[:, j], alternative="greater").pvalue)
                   for j in range(25) if j != best)
        ungated += p[0] < level / len(p)  # Holm's first step: any rejection at all starts here
        gated += bool(look(x, "ttest-holm", level).eliminated)
    assert ungated / 400 > 2 * level and gated / 400 <= level + 3 * (level * (1 - level) / 400) ** 0.5


@pytest.mark.parametrize(("test", "k", "bad", "at_least"), [("friedman", 25, list(range(10)), 5),
                                                           ("ttest-holm", 4, [2], 1), ("ttest-holm", 25, list(range(10)), 0)])
def test_clearly_worse_configurations_are_eliminated_at_the_first_test(test: str, k: int, bad: list[int],
                                                                      at_least: int) -> None:
    """Far behind (as Adagrad and SGD are behind Adam at a short budget), after 3 seeds and at
    alpha / 8: the first look eliminates most of them and never one of the equal rest. A rank
    test cannot tell a single bad configuration of a few at 3 seeds (its ranks are all it
    shows); Holm's t tests at 3 seeds have 2 degrees of freedom, too few for 24 comparisons
    (hence ``at_least`` 0 there: the second look, at 4 seeds, eliminates all ten; see
    README, Racing)."""
    rng = np.random.default_rng(11)
    shift = np.zeros(k)
    shift[bad] = -50.0
    for _ in range(10):
        result = look(rng.normal(size=(3, k)) + 3.0 * rng.normal(size=(3, 1)) + shift, test, look_level(0.05, 8))
        assert set(result.eliminated) <= set(bad) and len(result.eliminated) >= at_least
        later = look(rng.normal(size=(4, k)) + 3.0 * rng.normal(size=(4, 1)) + shift, test, look_level(0.05, 8))
        assert set(later.eliminated) <= set(bad) and len(later.eliminated) >= max(at_least, len(bad) // 2)


def test_configurations_every_seed_ranks_the_same_way_are_eliminated_worst_first() -> None:
    """Three configurations in the same order on all six seeds (the omnibus p is 6 / 6^6 for
    exact permutations): Conover's residual spread is zero there, the clearest evidence there
    is, and the worst goes; then Wilcoxon, with two left, cannot decide on six seeds (its
    smallest two-sided p is 2 / 2^6)."""
    rng = np.random.default_rng(5)
    x = np.array([25.4, 25.0, 24.0]) + 3.0 * rng.normal(size=(6, 1)) + 0.01 * rng.normal(size=(6, 3))
    result = look(x, "friedman", look_level(0.05, 9))
    assert result.best == 0 and set(result.eliminated) == {2} and result.eliminated[2] == 0.0
    assert look(x[:2], "friedman", look_level(0.05, 9)).eliminated == {}  # two seeds: 1/36 > the level


@pytest.mark.parametrize("test", ["friedman", "ttest-holm"])
def test_what_a_look_decides_does_not_depend_on_the_order_of_the_configurations(test: str) -> None:
    """The same scores with the grid's columns reordered: the same best, the same eliminations
    at the same p-values (rank sums tie often with 2-4 seeds; the permutation p-value draws the
    same permutations whatever the order)."""
    rng = np.random.default_rng(3)
    level, decided = look_level(0.05, 9), 0
    for _ in range(40):
        n, k = int(rng.integers(2, 5)), int(rng.integers(2, 21))
        x = 0.05 * rng.normal(size=(n, k)) + rng.random() * np.linspace(0.0, 1.0, k) + 3.0 * rng.normal(size=(n, 1))
        order = rng.permutation(k)
        a, b = look(x, test, level), look(x[:, order], test, level)
        assert int(order[b.best]) == a.best
        assert {int(order[j]): p for j, p in b.eliminated.items()} == pytest.approx(a.eliminated)
        assert {int(order[j]): p for j, p in b.gates.items()} == pytest.approx(a.gates)
        decided += bool(a.eliminated)
    assert decided >= 10, f"only {decided} of 40 looks eliminated anything: the check compared too little"


def test_the_last_two_go_by_the_signed_ranks_in_either_order() -> None:
    """Two left, 21 seeds: one is ahead by 1 dB on 20 of them and behind by 20 on the last, so
    the mean difference is exactly zero but Wilcoxon's signed ranks reject; the one behind on
    20 seeds goes, whichever column it is in."""
    base = 0.5 * np.arange(21.0)  # exact in binary: the differences are exactly +1 and -20
    ahead = base + np.r_[np.ones(20), -20.0]
    for x, behind in ((np.c_[ahead, base], 1), (np.c_[base, ahead], 0)):
        assert (x[:, 0] - x[:, 1]).mean() == 0.0
        result = look(x, "friedman", look_level(0.05, 9))
        assert list(result.eliminated) == [behind] and result.best == 1 - behind


def test_a_tie_for_the_worst_rank_sum_goes_by_the_mean_score() -> None:
    """lr_rho_race's first look, its last step (2026-12-06): 8 configurations left, lr 0.001
    rho 0.8 and lr 0.003 rho 0.99 ranked 8th and 7th on seed 0, 7th and 8th on seed 1. The
    one with the lower mean goes (25.254 against 25.258 dB), in either order; the other stays."""
    scores = {"0.001/0.8": (25.246, 25.270), "0.001/0.9": (25.298, 25.272), "0.001/0.95": (25.260, 25.296),
              "0.001/0.99": (25.259, 25.287), "0.003/0.8": (25.419, 25.379), "0.003/0.9": (25.374, 25.377),
              "0.003/0.95": (25.357, 25.357), "0.003/0.99": (25.251, 25.257)}
    for names in (list(scores), list(reversed(scores))):
        result = look(np.array([scores[c] for c in names]).T, "friedman", look_level(0.05, 9))
        assert [names[j] for j in result.eliminated] == ["0.003/0.99"]
        assert names[result.best] == "0.003/0.8"


def test_each_elimination_keeps_the_p_value_of_the_step_that_let_it_go() -> None:
    """lr_rho_race's second look (2026-12-06, seeds 0-2 of the 7 configurations left): the
    step-down eliminated four, one per step, each past its own step's gate. The last, lr 0.001
    rho 0.9, was last of the 4 left on every seed: Conover's spread is zero (comparison p 0)
    and its gate is the permutation Friedman test on those 4 (8 / 5000), not the first step's
    on all 7 (2 / 5000)."""
    scores = {"0.001/0.9": (25.298441, 25.27167, 25.283868), "0.001/0.95": (25.260015, 25.295976, 25.276844),
              "0.001/0.99": (25.259075, 25.287252, 25.281967), "0.003/0.8": (25.419272, 25.378535, 25.436036),
              "0.003/0.9": (25.374394, 25.377259, 25.413982), "0.003/0.95": (25.357275, 25.356792, 25.360659),
              "0.003/0.99": (25.25145, 25.25696, 25.22526)}
    names, level = list(scores), look_level(0.05, 9)
    result = look(np.array([scores[c] for c in names]).T, "friedman", level)
    gone = [names[j] for j in result.eliminated]
    assert gone == ["0.003/0.99", "0.001/0.99", "0.001/0.95", "0.001/0.9"] and names[result.best] == "0.003/0.8"
    gates = [result.gates[names.index(c)] for c in gone]
    assert result.p_value == gates[0] == pytest.approx(2 / 5000) and gates[-1] == pytest.approx(8 / 5000)
    assert all(g < level for g in gates) and result.eliminated[names.index("0.001/0.9")] == 0.0


def test_an_elimination_by_a_spread_of_zero_says_so_and_quotes_its_steps_gate(tmp_path: Path, monkeypatch) -> None:
    """Three learning rates ranked alike on all six seeds: the worst goes with a comparison p of
    0, and its reason says what that means (last on every seed) rather than "p=0"."""
    import matplotlib.axes

    from sweeper.ledger import Ledger
    from sweeper.records import TrialRow
    from sweeper.report import plots
    from sweeper.report.race import summarise_race
    from sweeper.space import expand

    spec = loads(_CLAIM_SPEC.replace("optimizer: {values: [adam, rmsprop, sgd]}", "optimizer: {value: adam}")
                 .replace("loss: {values: [mae, mse]}", "learning_rate: {values: [0.1, 0.01, 0.001]}")
                 .replace("{first: 3, max: 8}, alpha: 0.05, test: ttest-holm", "{first: 6, max: 8}, alpha: 0.05, test: friedman"))
    rng = np.random.default_rng(5)
    x = np.array([25.4, 25.0, 24.0]) + 3.0 * rng.normal(size=(6, 1)) + 0.01 * rng.normal(size=(6, 3))
    column = {0.001: 0, 0.01: 1, 0.1: 2}
    ledger = Ledger(tmp_path / "spread")
    for trial in expand(spec):
        if trial.params["seed"] < 6:
            ledger.record(TrialRow(trial.id, "ok", params=trial.params, seconds=60.0, metrics={
                "val_psnr": float(x[trial.params["seed"], column[trial.params["learning_rate"]]]),
                "val_ssim": 0.6, "val_mae": 0.03}))
    state = race_state(spec, ledger.trials())
    (cid, out), = state.eliminated.items()
    assert state.configs[cid]["learning_rate"] == 0.1 and out.p_value == 0.0
    assert out.reason == (f"behind the best after 6 seeds (friedman: last of the 3 left on every seed, omnibus "
                          f"p={state.rounds[0].p_value:.2g} on the 3 left, level {state.level:.2g})")
    assert state.rounds[0].eliminated == (cid,)
    # The race figure says it the same way (its note has no room for "of the 3 left").
    notes: list[str] = []
    text = matplotlib.axes.Axes.text
    monkeypatch.setattr(matplotlib.axes.Axes, "text",
                        lambda ax, x, y, s, *a, **k: notes.append(s) or text(ax, x, y, s, *a, **k))
    plots.race(summarise_race(spec, state, ledger.trials(), ["learning_rate"], "val_psnr"), "val_psnr",
               tmp_path / "race.png")
    assert (tmp_path / "race.png").stat().st_size > 0
    assert "out after 6: last on every seed" in notes and not [n for n in notes if "p=0" in n]


@pytest.mark.parametrize("test, p, left, level, shown", [
    # a Conover p just below the look's level (0.05 / 9) has the digits that tell them apart
    ("friedman", 0.0055501, 4, 0.05 / 9, "p=0.00555"),
    ("friedman", 0.0012, 6, 0.05 / 9, "p=0.0012"),
    ("friedman", 0.0, 3, 0.05 / 9, "last of the 3 left on every seed"),
    # ttest-holm compares the worst of 4 with the best at Holm's 0.05 / 3, and names that level
    ("ttest-holm", 0.0166, 4, 0.05, "p=0.0166 at Holm's level 0.0167"),
    ("ttest-holm", 0.003, 4, 0.05, "p=0.003 at Holm's level 0.017"),
    ("ttest-holm", 0.03, 2, 0.05, "p=0.03"),  # the last comparison is at the look's own level
    ("ttest-holm", 0.003, None, None, "p=0.003"),  # the figure's note: no room for a level
])
def test_an_eliminations_comparison_is_shown_against_the_level_it_was_tested_at(
        test: str, p: float, left: int | None, level: float | None, shown: str) -> None:
    from sweeper.race import comparison

    assert comparison(test, p, left, level) == shown


def test_a_ttest_holm_race_records_each_comparison_with_holms_level(tmp_path: Path) -> None:
    """The worse three of six leave by paired t tests at Holm's level for the rivals then left
    (0.05 / 3 / 5, then / 4, ...), each reason naming that level, each p below it."""
    import re

    from sweeper.ledger import Ledger
    from sweeper.race import comparison_level
    from sweeper.records import shown_apart

    folder = _run_race_on(tmp_path / "holm", {**_MEANS, ("rmsprop", "mae"): 22.0})
    level = look_level(0.05, 6)  # seeds 3 to 8: six looks
    rows = Ledger(folder).eliminations()
    gone = rows[rows["config_id"] != ""]  # the other rows record looks that eliminated none
    assert len(gone) >= 3, rows
    for row in gone.itertuples():
        match = re.fullmatch(r"behind the best after (\d) seeds \(ttest-holm: p=(\S+) at Holm's level (\S+), "
                             r"omnibus p=\S+ on the (\d) left, level \S+\)", row.reason)
        assert match, row.reason
        left, holm = int(match[4]), comparison_level("ttest-holm", level, int(match[4]))
        assert left > 2 and holm == level / (left - 1) and row.p_value < holm
        assert (match[2], match[3]) == shown_apart(row.p_value, holm), row.reason


def test_seeds_needed_grows_as_the_difference_shrinks() -> None:
    wide = seeds_needed([0.2, 0.3, 0.25, 0.22], level=0.01)
    narrow = seeds_needed([0.02, 0.3, -0.2, 0.05], level=0.01)
    assert wide is not None and narrow is not None and wide < narrow
    assert seeds_needed([0.1, -0.1], level=0.01) is None  # no difference observed: nothing decides it


# ------------------------------------------------------------------ whole races on real Ray

# A driver whose trainable reports scores the test controls: learning rate 0.1 is far behind,
# the other three are equal but for a small deterministic per-seed noise. Written out as a
# script so the kill -9 test can run it as a process of its own; the in-process test execs it.
_DRIVER = '''
import os, sys
from pathlib import Path

from sweeper import trainable
from sweeper.dispatch import RunOptions, run
from sweeper.spec import load


def controlled_trial(config, context):  # defined in __main__: Ray pickles it by value
    import hashlib, math, os, time

    from ray import tune

    from sweeper.records import TrialReport
    from sweeper.space import config_trial

    params, tid = config_trial(config)
    time.sleep(float(os.environ.get("RACE_TRIAL_SECONDS", "0")))
    lr, seed = params["learning_rate"], params["seed"]
    noise = int(hashlib.sha256(f"{lr}-{seed}".encode()).hexdigest()[:8], 16) % 1000 / 1000 - 0.5
    psnr = (10.0 if lr == 0.1 else 20.0) + 0.5 * math.sin(seed) + 0.2 * noise
    tune.report(TrialReport(trial_id=tid, epoch=1, train_loss=0.1,
                            metrics={"val_psnr": psnr, "val_ssim": 0.5, "val_mae": 0.05}).to_dict())


trainable.run_trial = controlled_trial
summary = run(load(sys.argv[1]), RunOptions(results_dir=Path(sys.argv[2]), progress=False,
                                            wandb_mode=os.environ.get("RACE_WANDB_MODE", "disabled")))
print("dispatched", summary.dispatched)
'''

_SPEC = """
name: raced
method: grid
metric: {name: val_psnr, goal: maximize}
parameters:
  learning_rate: {values: [0.001, 0.002, 0.003, 0.1]}
  epochs: {value: 1}
sweeper:
  dataset: {dir: DATA_DIR, name: DATA_NAME}
  resources: {cpu: 1, gpu: 0}
  max_concurrent: 2
  race: {seeds: {first: 3, max: 5}, alpha: 0.05, test: ttest-holm}
"""


def _race_files(tmp_path: Path, data) -> tuple[Path, Path]:
    spec = tmp_path / "raced.yaml"
    spec.write_text(_SPEC.replace("DATA_DIR", str(data.dir)).replace("DATA_NAME", data.name))
    driver = tmp_path / "driver.py"
    driver.write_text(_DRIVER)
    return spec, driver


def _env() -> dict[str, str]:
    env = {**os.environ, "WANDB_MODE": "disabled", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    env.pop("RAY_ADDRESS", None)
    return env


@pytest.fixture(scope="module")
def finished_race(tiny_data, tmp_path_factory):
    """The controlled race run to its end in one driver process: the reference the
    interrupted one must match."""
    tmp = tmp_path_factory.mktemp("race")
    spec, driver = _race_files(tmp, tiny_data)
    env = {**_env(), "RACE_WANDB_MODE": "offline"}  # the driver logs each look (the trainable here logs nothing)
    proc = subprocess.run([sys.executable, str(driver), str(spec), str(tmp / "r")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return spec, tmp / "r" / "raced"


def test_a_race_eliminates_the_clearly_worse_configuration_at_the_first_test(finished_race) -> None:
    from sweeper.ledger import Ledger
    from sweeper.report.build import build_report
    from sweeper.space import config_id
    from sweeper.status import sweep_status
    from sweeper.tracking import read_run_summary

    spec_path, sweep_dir = finished_race
    ledger = Ledger(sweep_dir)
    trials, eliminations = ledger.trials(), ledger.eliminations()
    bad = config_id({"learning_rate": 0.1, "epochs": 1})
    # only it, recorded with its round and p-value; then the looks after 4 and 5 seeds, which eliminated none
    assert list(eliminations["config_id"]) == [bad, "", ""] and list(eliminations["round"]) == [3, 4, 5]
    row = eliminations.iloc[0]
    assert row["round"] == 3 and row["test"] == "ttest-holm" and 0 < row["p_value"] < 0.05 / 3
    assert (eliminations["p_value"].iloc[1:] >= 0.05 / 3).all()  # their omnibus tests did not reject
    # 4 configurations x 3 seeds, then the 3 equal ones on seeds 3 and 4; each trial once.
    assert len(trials) == 12 + 3 + 3 and trials["trial_id"].is_unique
    per_config = trials.groupby("params_learning_rate")["params_seed"].apply(sorted).to_dict()
    assert per_config == {0.001: [0, 1, 2, 3, 4], 0.002: [0, 1, 2, 3, 4], 0.003: [0, 1, 2, 3, 4], 0.1: [0, 1, 2]}
    state = race_state(loads(spec_path.read_text()), trials, eliminations)
    assert state.done and state.why == "every configuration left ran the maximum seeds" and len(state.alive) == 3
    assert not state.new  # the ledger already holds every elimination the replay decides
    ray_trials = list((sweep_dir / "ray").glob("run-*/*/result.json"))
    assert len(ray_trials) == len(trials)  # no trial trained twice, nothing trained beyond the race
    # The driver logged each look to W&B as a run of its own, the first naming the one it eliminated.
    looks = {p.name.split("-race-")[1]: p for p in (sweep_dir / "wandb").glob("offline-run-*")}
    assert sorted(looks) == ["3-seeds", "4-seeds", "5-seeds"]
    summary = read_run_summary(looks["3-seeds"])
    assert (summary["left"], summary["eliminated"], summary["trials_run"]) == (3, "learning_rate=0.1", 12)
    assert summary["p_value"] < summary["level"] == pytest.approx(0.05 / 3)  # the gate rejected at the look's level
    # A race of learning rates (rho at its default 0.9) tests the lr/rho claim, not the optimizer x loss one
    rmsprop_mae, lr_rho = build_report(sweep_dir, plots=False).verdicts
    assert (rmsprop_mae.outcome, rmsprop_mae.reason) == ("not tested", "this race does not vary optimizer or loss")
    assert lr_rho.outcome == "inconclusive" and lr_rho.reason.startswith(  # level with 0.002 and 0.003 to the end
        "the race ended (every configuration left ran the maximum seeds) with learning_rate=0.001, rho=0.9 and 2 "
        "rivals still in it"), lr_rho.reason
    # Over with 3 left: the seeds that would part the leader from the runner-up, from their
    # paired differences, at the look's level over the 2 comparisons with the leader.
    left = trials[trials["params_learning_rate"] != 0.1].pivot(index="params_seed", columns="params_learning_rate",
                                                               values="val_psnr")
    leader, runner_up = left.mean().sort_values(ascending=False).index[:2]
    diffs = (left[leader] - left[runner_up]).tolist()
    needed = seeds_needed(diffs, 0.05 / 3 / 2)
    assert needed is not None and needed > 5  # the scores the test controls: a small, steady lead
    race = build_report(sweep_dir, plots=False).race
    assert race.parting == (pytest.approx(sum(diffs) / 5), 5, needed)
    assert race.headline().endswith(
        f" The leader, learning_rate={leader:g}, is {sum(diffs) / 5:.3g} dB ahead of the runner-up, learning_rate="
        f"{runner_up:g}, on average over 5 shared seeds: parting them would take about {needed} seeds (80% power at "
        "the per-look level, from the paired differences seen)."), race.headline()
    last_look = read_run_summary(looks["5-seeds"])
    assert last_look["done"] is True and last_look["seeds_to_part"] == needed
    status = sweep_status(sweep_dir, sweep_dir.parent).splitlines()
    assert status[1].startswith("race after 5 seeds: 3 of 4 configurations left; over: ") and \
        status[2] == race.parting_line(), status


def test_a_race_killed_mid_way_resumes_to_the_same_survivors_with_no_trial_twice(finished_race, tiny_data,
                                                                                 tmp_path) -> None:
    from sweeper.ledger import Ledger

    spec, driver = _race_files(tmp_path, tiny_data)
    results = tmp_path / "r"
    env = {**_env(), "RACE_TRIAL_SECONDS": "1.5"}
    first = subprocess.Popen([sys.executable, str(driver), str(spec), str(results)], cwd=ROOT, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    # Killed once the first round is partly recorded: the race is between two trials.
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and first.poll() is None:
        if (results / "raced" / "trials.parquet").exists() and len(Ledger(results / "raced").trials()) >= 5:
            break
        time.sleep(0.2)
    assert first.poll() is None, "the race ended before it could be interrupted"
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=60)
    runs_before = set((results / "raced" / "ray").glob("run-*"))
    before = set(Ledger(results / "raced").trials()["trial_id"])
    assert 5 <= len(before) < 18

    again = subprocess.run([sys.executable, str(driver), str(spec), str(results)], cwd=ROOT, env=_env(),
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    resumed, reference = Ledger(results / "raced"), Ledger(finished_race[1])
    assert sorted(resumed.trials()["trial_id"]) == sorted(reference.trials()["trial_id"])
    assert list(resumed.eliminations()["config_id"]) == list(reference.eliminations()["config_id"])
    later = {p.name.split("_")[0] for run_dir in set((results / "raced" / "ray").glob("run-*")) - runs_before
             for p in run_dir.iterdir() if p.is_dir()}
    assert not (later & before), "a trial the ledger held before the kill was dispatched again"


# ------------------------------------------------------------------ the spec's race block


@pytest.mark.parametrize(("block", "message"), [
    ("{seeds: {first: 1, max: 10}}", "sweeper.race.seeds.first: 1 is too small; use a whole number >= 2"),
    ("{seeds: {first: 4, max: 3}}", "sweeper.race.seeds.max: 3 is less than seeds.first 4; use max >= 4"),
    ("{test: anova}", "sweeper.race.test: unknown race test 'anova'; use one of friedman, ttest-holm"),
    ("{tset: friedman}", "sweeper.race.tset: unknown key 'tset' (did you mean 'test'?)"),
    ("{budget: {trial: 3}}", "sweeper.race.budget.trial: unknown key 'trial' (did you mean 'trials'?)"),
    ("{alpha: 0.7}", "sweeper.race.alpha: 0.7 is not an error rate worth racing at; use e.g. 0.05"),
    ("[3, 10]", "sweeper.race: expected a mapping like {seeds: {first: 3, max: 10}"),
])
def test_a_bad_race_block_is_one_line_naming_its_key(block: str, message: str) -> None:
    from sweeper.spec import SpecError

    text = _SPEC.replace("DATA_DIR", "data").replace("DATA_NAME", "synthetic").replace(
        "race: {seeds: {first: 3, max: 5}, alpha: 0.05, test: ttest-holm}", f"race: {block}")
    with pytest.raises(SpecError) as info:
        loads(text)
    assert any(problem.startswith(message) for problem in info.value.problems), info.value.problems


@pytest.mark.parametrize(("change", "message"), [
    (("learning_rate: {values: [0.001, 0.002, 0.003, 0.1]}", "learning_rate: {value: 0.001}"),
     "sweeper.race: the grid has one configuration; a race needs two or more to compare"),
    (("  epochs: {value: 1}", "  epochs: {value: 1}\n  seed: {values: [0, 1]}"),
     "parameters.seed: a race runs seeds 0 to 4 itself (sweeper.race.seeds); remove seed from parameters"),
    (("method: grid", "method: random\nrun_cap: 3"), "sweeper.race: only a grid is raced"),
])
def test_a_race_needs_a_grid_of_two_or_more_configurations_and_its_own_seeds(change: tuple[str, str],
                                                                              message: str) -> None:
    from sweeper.spec import SpecError

    text = _SPEC.replace("DATA_DIR", "data").replace("DATA_NAME", "synthetic").replace(*change)
    with pytest.raises(SpecError) as info:
        loads(text)
    assert any(problem.startswith(message) for problem in info.value.problems), info.value.problems


def test_a_raced_spec_round_trips_and_lists_each_configuration_on_every_seed() -> None:
    from sweeper.space import config_id, expand
    from sweeper.spec import from_dict

    spec = loads(_SPEC.replace("DATA_DIR", "data").replace("DATA_NAME", "synthetic"))
    assert from_dict(spec.to_dict()) == spec and "race" not in spec.wandb_config()
    trials = expand(spec)
    assert len(trials) == 4 * 5 and sorted({t.params["seed"] for t in trials}) == [0, 1, 2, 3, 4]
    assert len({config_id(t.params) for t in trials}) == 4 and len({t.id for t in trials}) == 20


# ------------------------------------------------------------------ a race in the report (no Ray)

_CLAIM_SPEC = """
name: claim_race
method: grid
metric: {name: val_psnr, goal: maximize}
parameters:
  optimizer: {values: [adam, rmsprop, sgd]}
  loss: {values: [mae, mse]}
sweeper:
  dataset: {dir: nowhere, name: none}
  race: {seeds: {first: 3, max: 8}, alpha: 0.05, test: ttest-holm}
"""


def _run_race_on(folder: Path, means: dict[tuple[str, str], float], spread: float = 0.05,
                 stop_after: int | None = None, wandb_mode: str = "disabled", spec_text: str = _CLAIM_SPEC) -> Path:
    """Run (or resume) the race of ``spec_text`` to its end (or for ``stop_after`` trials) on scores drawn
    around ``means``: the driver's own rounds (its eliminations recorded in a real ledger, its
    looks logged to W&B in ``wandb_mode``), each trial scored here (no Ray, no training)."""
    import yaml

    from sweeper.dispatch.driver import _race_rounds
    from sweeper.ledger import Ledger
    from sweeper.records import TrialRow

    spec = loads(spec_text)
    folder.mkdir(parents=True, exist_ok=True)  # an existing one: the race resumed
    (folder / "spec.yaml").write_text(yaml.safe_dump(spec.to_dict()))
    ledger, rng = Ledger(folder), np.random.default_rng(5 + len(Ledger(folder).trials()))
    for batch in _race_rounds(spec, ledger, wandb_mode):
        for trial in batch:
            if stop_after is not None and len(ledger.trials()) >= stop_after:
                return folder
            p = trial.params
            value = means[(p["optimizer"], p["loss"])] + 0.3 * np.sin(p["seed"]) + spread * rng.normal()
            ledger.record(TrialRow(trial.id, "ok", params=p, seconds=60.0,
                                   metrics={"val_psnr": value, "val_ssim": 0.6, "val_mae": 0.03}))
    return folder


_MEANS = {("adam", "mae"): 25.0, ("adam", "mse"): 24.9, ("rmsprop", "mse"): 24.7, ("sgd", "mae"): 22.0,
          ("sgd", "mse"): 22.0}


@pytest.mark.parametrize(("rmsprop_mae", "outcome"), [(26.0, "reproduced"), (24.0, "not reproduced"),
                                                      (25.0, "inconclusive")])
def test_the_claims_verdict_comes_from_the_race(tmp_path: Path, rmsprop_mae: float, outcome: str) -> None:
    import json

    from sweeper.report import render, report

    sweep = _run_race_on(tmp_path / "claim_race", {**_MEANS, ("rmsprop", "mae"): rmsprop_mae})
    result = report(sweep)
    verdict = result.verdicts[0]
    assert verdict.claim.key == "rmsprop_mae" and verdict.outcome == outcome, verdict.reason
    if outcome == "inconclusive":  # level with adam + mae to the end: how many seeds would decide it
        assert result.race.done and (verdict.seeds_needed is None or verdict.seeds_needed > 8)
        # the rival is named by its place: the leader the claim trails, or the runner-up it leads
        leads = result.race.alive[0].params == {"optimizer": "rmsprop", "loss": "mae"}
        role = "the runner-up, loss=mae, optimizer=adam: " if leads else "the leader, loss=mae, optimizer=adam: "
        assert role in verdict.reason and ("ahead of it" if leads else "behind it") in verdict.reason, verdict.reason
    if outcome == "not reproduced":
        assert "eliminated optimizer=rmsprop, loss=mae after" in verdict.reason
    # the race varies no learning rate or rho: it has no lr/rho rivals, whatever values it holds
    assert (result.verdicts[1].outcome, result.verdicts[1].reason) == (
        "not tested", "this race does not vary learning_rate or rho")
    doc = json.loads(render(result, "json"))
    assert doc["race"]["trials_run"] == result.recorded and doc["race"]["full_trials"] == 6 * 8
    assert doc["race"]["most_trials"] == result.recorded and "if no look eliminates" not in result.race.headline()
    assert 0 < doc["race"]["compute_fraction"] < 1  # sgd is far behind: it never runs all 8 seeds
    assert "The race: seeds run, eliminations, compute" in result.figures
    assert (sweep / "plots" / "race.png").is_file() and "Configurations in the race" in render(result, "md")
    assert not result.partial  # a finished race plans exactly what it ran


def test_a_look_once_recorded_is_replayed_as_recorded(tmp_path: Path) -> None:
    """The ledger holds a look that eliminated one configuration fewer than today's tests would
    (as after a change to the tests, or to the spec's alpha): the replay keeps the look as
    recorded, adds no elimination to it, and that configuration races on."""
    from sweeper.ledger import Ledger
    from sweeper.space import config_id

    ledger = Ledger(_run_race_on(tmp_path / "r", {**_MEANS, ("rmsprop", "mae"): 24.0}))
    recorded = ledger.eliminations()
    first = recorded[recorded["round"] == recorded["round"].min()]
    spared = first["config_id"].iloc[0]
    state = race_state(loads(_CLAIM_SPEC), ledger.trials(), recorded.drop(index=first.index[0]))
    assert spared in state.alive and spared not in state.eliminated and state.new == ()
    assert any(spared in r.alive and spared not in r.eliminated for r in state.rounds)
    assert set(first["config_id"]) - {spared} <= state.eliminated.keys() <= set(recorded["config_id"]) - {spared}
    # It races on: its next seed is among the trials to run (the others ran theirs already).
    assert any(config_id(t.params) == spared for t in state.pending)


def test_a_look_that_eliminated_nothing_is_recorded_and_stays_so(tmp_path: Path) -> None:
    """A look that eliminated nothing is a row of the race table too (no configuration, its
    round, omnibus p-value and best), kept through the CSV export; a replay under looser
    settings (alpha 0.05 -> 0.45) eliminates nothing at such a look, which without the row it
    would."""
    from sweeper.ledger import Ledger
    from sweeper.records import Elimination

    sweep = _run_race_on(tmp_path / "a" / "claim_race", {**_MEANS, ("rmsprop", "mae"): 24.9})
    ledger = Ledger(sweep)
    rows, trials = ledger.eliminations(), ledger.trials()
    state = race_state(loads(_CLAIM_SPEC), trials, rows)
    quiet = [r for r in state.rounds if not r.eliminated]
    assert quiet and any(r.eliminated for r in state.rounds)  # both kinds of look happened
    looks = rows[rows["config_id"] == ""]
    assert looks["round"].tolist() == [r.seeds for r in quiet]
    assert looks["p_value"].tolist() == pytest.approx([r.p_value for r in quiet])
    assert looks["best_config_id"].tolist() == [r.best for r in quiet]
    assert looks["reason"].str.startswith("nothing eliminated after ").all()
    assert set(rows.loc[rows["config_id"] != "", "config_id"]) == state.eliminated.keys()
    assert state.to_record == ()  # the driver recorded every look as it made it
    again = [Elimination.none_at(r.seeds, r.p_value, r.best, "ttest-holm", state.level) for r in quiet]
    assert ledger.record_eliminations(again) == 0 and len(ledger.eliminations()) == len(rows)  # each look once

    # The committed form carries them: a ledger made from the CSV export holds the same rows.
    copy = tmp_path / "b" / "claim_race"
    ledger.export_csv(copy)
    imported = Ledger(copy)
    assert imported.import_csv_export() == len(trials)
    assert imported.eliminations().equals(rows)

    loose = loads(_CLAIM_SPEC.replace("alpha: 0.05", "alpha: 0.45"))
    kept = race_state(loose, trials, rows)
    assert (kept.new, kept.new_looks) == ((), ())
    assert [r.eliminated for r in kept.rounds] == [r.eliminated for r in state.rounds]
    redecided = race_state(loose, trials, rows[rows["config_id"] != ""])  # as before looks were recorded
    assert redecided.new and {e.round for e in redecided.new} <= {r.seeds for r in quiet}


def test_a_race_before_its_first_look_says_so_and_how_far_it_has_got(tmp_path: Path) -> None:
    """Mid-way through the first round nothing has been compared: the verdict says when the
    first look comes, not a gap over zero shared seeds."""
    from sweeper.report import report

    sweep = _run_race_on(tmp_path / "claim_race", {**_MEANS, ("rmsprop", "mae"): 25.0}, stop_after=10)
    result = report(sweep)
    verdict = result.verdicts[0]
    assert verdict.outcome == "inconclusive" and not result.race.done
    assert verdict.reason == ("the race is still running with optimizer=rmsprop, loss=mae and 5 rivals in it; "
                              "no look yet: the first comes once every configuration has run 3 seeds "
                              "(8 trials of that round to go)"), verdict.reason
    assert "nan" not in verdict.reason and verdict.seeds_needed is None


def test_each_look_of_a_race_is_one_wandb_run_with_its_table_and_the_claims_verdict(tmp_path: Path) -> None:
    """A W&B user sees the race beside its trials: one run per look (job_type race, the sweep's
    group) with every configuration's seeds, mean, elimination and p-value as a table and the
    claim's verdict, worded as the report's, in its summary. A resumed race replays its looks
    but logs none twice."""
    import json

    from sweeper.ledger import Ledger
    from sweeper.report import report
    from sweeper.space import config_id
    from sweeper.tracking import readback

    def looks() -> list[str]:
        return sorted(p.name.split("-race-")[1] for p in (sweep / "wandb").glob("offline-run-*"))

    means = {**_MEANS, ("rmsprop", "mae"): 24.0}
    # 18 trials to the first look (6 configurations x 3 seeds), then 2 of the next round's
    sweep = _run_race_on(tmp_path / "claim_race", means, stop_after=20, wandb_mode="offline")
    assert looks() == ["3-seeds"]
    _run_race_on(sweep, means, wandb_mode="offline")  # resumed to the end
    ledger = Ledger(sweep)
    state = race_state(loads(_CLAIM_SPEC), ledger.trials(), ledger.eliminations())
    assert state.done and looks() == sorted(f"{n}-seeds" for n in range(3, state.seeds + 1))

    first = next((sweep / "wandb").glob("offline-run-*-claim_race-race-3-seeds"))
    record = readback._inspect_run(first)  # wandb leet inspect --summary --json
    summary, out = record["summary"], ledger.eliminations().set_index("config_id")
    claimed = config_id({"optimizer": "rmsprop", "loss": "mae"})
    assert (summary["seeds"], summary["configurations"], summary["left"], summary["trials_run"]) == (3, 6, 6 - 3, 18)
    assert summary["most_trials"] == 18 + 3 * (8 - 3)  # the 3 left on seeds 3 to 7, if no look eliminated another
    assert summary["eliminated"].count("optimizer=") == 3 and "loss=mae, optimizer=rmsprop" in summary["eliminated"]
    assert summary["verdict_rmsprop_mae"] == "not reproduced" and "verdict_lr_rho" not in summary
    assert summary["verdict_rmsprop_mae_reason"] == report(sweep).verdicts[0].reason  # an elimination is final
    assert record["config"]["test"] == "ttest-holm" and record["config"]["seeds_max"] == 8
    table = json.loads(next((first / "files" / "media" / "table").glob("race_*.table.json")).read_text())
    rows = [dict(zip(table["columns"], row)) for row in table["data"]]
    mine = next(r for r in rows if (r["optimizer"], r["loss"]) == ("rmsprop", "mae"))
    assert len(rows) == 6 and (mine["seeds"], mine["eliminated_after"]) == (3, 3)
    assert mine["p_value"] == pytest.approx(out.loc[claimed, "p_value"]) and mine["p_value"] < summary["level"]
    assert sum(r["eliminated_after"] is None for r in rows) == 3


def test_a_race_whose_looks_cannot_reach_wandb_still_runs_to_the_same_end(tmp_path: Path, caplog) -> None:
    """W&B is a view of the race: a look it refuses is one warning, and the race, its
    eliminations and the ledger are those of a race without W&B."""
    import logging

    from sweeper.ledger import Ledger

    means = {**_MEANS, ("rmsprop", "mae"): 24.0}
    (tmp_path / "broken" / "claim_race").mkdir(parents=True)
    (tmp_path / "broken" / "claim_race" / "wandb").write_text("a file where W&B wants its folder")
    with caplog.at_level(logging.WARNING):
        broken = Ledger(_run_race_on(tmp_path / "broken" / "claim_race", means, wandb_mode="offline"))
    plain = Ledger(_run_race_on(tmp_path / "plain" / "claim_race", means))
    assert broken.trials()[["trial_id", "val_psnr"]].equals(plain.trials()[["trial_id", "val_psnr"]])
    assert broken.eliminations()["config_id"].tolist() == plain.eliminations()["config_id"].tolist()
    warned = [m for m in caplog.messages if m.startswith("W&B tracking off for race run race-3-seeds (wandb.init failed")]
    assert len(warned) == 1 and warned[0].endswith("the sweep goes on"), caplog.messages


def test_status_estimates_a_race_with_no_trial_recorded_from_its_checkpointed_epochs(tmp_path: Path) -> None:
    """Before the first trial of a long race is recorded, the pace of the epochs its running
    trials have checkpointed sets the estimate (seconds per epoch times the trial's epochs)."""
    from model.checkpoint import TrainState, save_state
    from sweeper.ledger import Ledger
    from sweeper.status import sweep_status

    sweep = _run_race_on(tmp_path / "claim_race", _MEANS | {("rmsprop", "mae"): 25.0}, stop_after=0)
    ledger = Ledger(sweep)
    pending = race_state(loads(_CLAIM_SPEC), ledger.trials(), ledger.eliminations()).pending
    assert len(ledger.trials()) == 0 and len(pending) == 18
    assert "the next look" not in sweep_status(sweep, tmp_path)  # nothing to go on yet
    assert sweep_status(sweep, tmp_path).splitlines()[0] == "claim_race: 0 trials recorded"
    # 1 of 3 epochs in 100 s (a 300 s trial), 2 of 3 in 400 s (a 600 s trial): 450 s a trial
    for trial, epochs, seconds in ((pending[0], 1, 100.0), (pending[1], 2, 400.0)):
        history = tuple({"epoch": e + 1, "val_psnr": 22.0} for e in range(epochs))
        state = TrainState(history=history, best_epoch=1, images=16, fit_seconds=1.0, seconds=seconds,
                           weights=[np.zeros(3, np.float32)], optimizer=[np.zeros(1, np.int64)])
        save_state(sweep / "checkpoints" / f"{trial.id}.npz", {"params": trial.params}, state)
        if trial is pending[0]:  # 300 s x 2/3 for the started one, then 17 more at 300 s: 5300 s
            assert sweep_status(sweep, tmp_path).splitlines()[2] == (
                "the next look after about 88 min of trial time (18 trials at 5 min, the pace so far of the 1 "
                "checkpointed trial; checkpointed epochs counted)")
    # 450 s x (2/3 + 1/3) for the started two, then 16 more at 450 s: 7500 s of trial time
    assert sweep_status(sweep, tmp_path).splitlines()[2] == (
        "the next look after about 2.1 h of trial time (18 trials at 8 min, the pace so far of the 2 checkpointed "
        "trials; checkpointed epochs counted)")


def test_status_says_who_runs_the_sweep_and_paces_it_at_that_drivers_concurrency(tmp_path: Path) -> None:
    """While a driver holds the sweep's lock, status names it and paces the sweep at the
    concurrency the driver was told (a sweep joined to another's cluster with
    ``--max-concurrent 1`` runs one trial at a time, whatever its spec says); once it lets go,
    neither is said."""
    import datetime
    import json
    import socket

    import yaml

    from sweeper.dispatch.driver import RunOptions, sweep_lock
    from sweeper.status import sweep_status

    sweep = _run_race_on(tmp_path / "claim_race", _MEANS | {("rmsprop", "mae"): 25.0}, stop_after=6)
    doc = yaml.safe_load((sweep / "spec.yaml").read_text())
    (sweep / "spec.yaml").write_text(yaml.safe_dump({**doc, "sweeper": {**doc["sweeper"], "max_concurrent": 4}}))
    spec = loads(_CLAIM_SPEC.replace("sweeper:\n", "sweeper:\n  max_concurrent: 4\n"))
    assert spec.max_concurrent == 4
    idle = sweep_status(sweep, tmp_path).splitlines()
    # 12 trials of the first round to go, at the recorded 60 s each, the spec's 4 at a time
    assert idle[2] == ("the next look in about 3 min (12 trials at the recorded mean of 60 s, 4 at a "
                       "time; checkpointed epochs counted)"), idle
    assert not [line for line in idle if line.startswith("running now")]
    for told, address, at in ((1, "127.0.0.1:6379", "12 min"), (None, None, "3 min")):
        options = RunOptions(results_dir=tmp_path, max_concurrent=told, address=address)
        with sweep_lock(spec, options, sweep):
            lines = sweep_status(sweep, tmp_path).splitlines()
        assert lines[1].startswith(f"running now: pid {os.getpid()} on {socket.gethostname()} since "), lines
        assert lines[1].endswith(f", {told or 4} trial{'' if told == 1 else 's'} at a time"
                                 + (f" on the cluster at {address}" if address else "")), lines
        assert lines[3] == (f"the next look in about {at} (12 trials at the recorded mean of 60 s, "
                            f"{told or 4} at a time; checkpointed epochs counted)"), lines
    # 1 of the driver's 4 runs, 3 have waited 5 min to start (the cluster's other work holds
    # the cores): it goes on at the pace of the one, 12 trials one at a time
    since = (datetime.datetime.now().astimezone() - datetime.timedelta(minutes=5)).isoformat(timespec="seconds")
    with sweep_lock(spec, RunOptions(results_dir=tmp_path), sweep):
        (sweep / ".driver.trials").write_text(json.dumps({"running": 1, "waiting": 3, "since": since}))
        lines = sweep_status(sweep, tmp_path).splitlines()
    assert lines[1].endswith(f", 4 trials at a time; 1 running, 3 waiting to start since {since}: the cluster's "
                             "resources are taken (by another sweep on it?)"), lines
    assert lines[3] == ("the next look in about 12 min (12 trials at the recorded mean of 60 s, 1 at a time; "
                        "checkpointed epochs counted)"), lines
    time.sleep(0.05)  # past the file clock's tick
    with sweep_lock(spec, RunOptions(results_dir=tmp_path), sweep):  # the next driver: that note is not its own
        lines = sweep_status(sweep, tmp_path).splitlines()
    assert lines[1].endswith(", 4 trials at a time") and lines[3] == idle[2], lines
    assert sweep_status(sweep, tmp_path).splitlines() == idle  # the lock let go: as before


def test_status_gives_the_claims_verdict_as_the_last_look_left_it(tmp_path: Path) -> None:
    """`sweeper status` on a race ends with the claim's verdict, worded as the report's. Mid-round
    it is the last look's: the claim's seed recorded since waits for the next look, and is not
    counted among the seeds that look compared. An eliminated claim is final at once."""
    from sweeper.report import report
    from sweeper.status import sweep_status

    claim = 'claim "RMSprop + MAE is the best optimizer x loss pair": '
    sweep = _run_race_on(tmp_path / "claim_race", {**_MEANS, ("rmsprop", "mae"): 25.0}, stop_after=20)
    result = report(sweep)
    verdict = result.verdicts[0]
    # the report bounds the race's compute as status does: 20 run, 2 to go, the 4 left on seeds 4 to 7
    assert result.race.most_trials == 38 and result.race.headline().endswith(
        "It runs at most 38 of them (79%), if no look eliminates another."), result.race.headline()
    assert verdict.outcome == "inconclusive" and verdict.seeds_needed, verdict.reason
    assert ("and 3 rivals still in it at its look after 3 seeds (its seed 3 is recorded since: it counts at the "
            "next look); " in verdict.reason and " on average over 3 shared seeds; " in verdict.reason), verdict.reason
    lines = sweep_status(sweep, tmp_path).splitlines()
    # 20 recorded, 2 to go on seed 3, then the 4 left on seeds 4 to 7
    assert lines[1] == ("race after 3 seeds: 4 of 6 configurations left; 2 trials of the next round to run "
                        "(at most 38 trials)")
    # the claim's line, and none for the write-up's other claim, which this race does not test
    assert [line for line in lines if line.startswith("claim ")] == [f"{claim}inconclusive: {verdict.reason}"]
    assert lines[0] == "claim_race: 20 trials recorded (ok 20)"  # a race plans no count: none after the 20
    single = _run_race_on(tmp_path / "single" / "claim_race", {**_MEANS, ("rmsprop", "mae"): 25.0}, stop_after=1)
    assert sweep_status(single, tmp_path / "single").splitlines()[0] == "claim_race: 1 trial recorded (ok 1)"
    sweep = _run_race_on(tmp_path / "one" / "claim_race", {**_MEANS, ("rmsprop", "mae"): 25.0}, stop_after=21)
    assert sweep_status(sweep, tmp_path).splitlines()[1].endswith("; 1 trial of the next round to run (at most 38 trials)")
    out = _run_race_on(tmp_path / "out" / "claim_race", {**_MEANS, ("rmsprop", "mae"): 24.0}, stop_after=19)
    lines = sweep_status(out, tmp_path).splitlines()
    assert "over: " not in lines[1] and lines[-1].startswith(
        f"{claim}not reproduced: the race eliminated optimizer=rmsprop, loss=mae after 3 seeds: behind the best "), lines


def test_status_shows_where_a_race_stands_before_and_after_its_looks(tmp_path: Path, monkeypatch) -> None:
    import shutil

    import yaml

    from model.checkpoint import TrainState, save_state
    from model.files import TMP_SUFFIX
    from sweeper.dispatch import search
    from sweeper.ledger import Ledger
    from sweeper.status import sweep_status

    early = _run_race_on(tmp_path / "early" / "claim_race", {**_MEANS, ("rmsprop", "mae"): 25.0}, stop_after=10)
    # a trial of the round in flight, checkpointed after 1 of its 3 epochs, and the temp file a killed save left
    ledger = Ledger(early)
    trial = race_state(loads(_CLAIM_SPEC), ledger.trials(), ledger.eliminations()).pending[-1]
    assert trial.params["epochs"] == 3
    state = TrainState(history=({"epoch": 1, "val_psnr": 22.0},), best_epoch=1, images=16, fit_seconds=1.0,
                       seconds=2.0, weights=[np.zeros(3, np.float32)], optimizer=[np.zeros(1, np.int64)])
    save_state(early / "checkpoints" / f"{trial.id}.npz", {"params": trial.params}, state)
    shutil.copy(early / "checkpoints" / f"{trial.id}.npz", early / "checkpoints" / f"{trial.id}.npz{TMP_SUFFIX}")
    shown = ", ".join(f"{k}={trial.params[k]}" for k in ("loss", "optimizer", "seed"))
    # 8 trials to go at 60 s (every trial's time; the last 6 of the 10 recorded set the pace), the
    # checkpointed one a third done: 460 s of trial time;
    # at most 38 to go (the 8, then 6 configurations on seeds 4 to 8): 40 s + 37 x 60 s = 2260 s
    assert sweep_status(early, tmp_path).splitlines()[1:5] == [
        "race before its first look (at 3 seeds): 6 of 6 configurations left; 8 trials of the next round to run "
        "(at most 48 trials)",
        "the next look after about 8 min of trial time (8 trials at 60 s, the mean of the last 6 recorded; "
        "checkpointed epochs counted)",
        "the race ends after at most about 38 min of trial time (38 trials: the 6 configurations left on every "
        "seed up to 8, if no look eliminates another)",
        f"in progress or cut short (checkpointed): {shown} at epoch 1/3"]
    doc = yaml.safe_load((early / "spec.yaml").read_text())
    (early / "spec.yaml").write_text(yaml.safe_dump({**doc, "sweeper": {**doc["sweeper"], "max_concurrent": 2}}))
    # two at a time, the started one first (40 s), then 7 of 60 s, each on the slot that frees first: 240 s;
    # to the end, that round, then 5 rounds (seeds 4 to 8) of 6 trials, 3 x 60 s each: 1140 s
    assert sweep_status(early, tmp_path).splitlines()[2:4] == [
        "the next look in about 4 min (8 trials at 60 s, the mean of the last 6 recorded, 2 at a time; "
        "checkpointed epochs counted)",
        "the race ends in at most about 19 min (38 trials: the 6 configurations left on every seed up to 8, if no "
        "look eliminates another)"]
    # four at a time: the round under way in 120 s (its 8 trials on 4 slots); then each round's look
    # waits for all 6 of its trials, 2 x 60 s a round, not 1.5: 120 + 5 x 120 = 720 s (the 38 trials
    # packed on 4 slots as if no look waited between rounds would say 10 min)
    (early / "spec.yaml").write_text(yaml.safe_dump({**doc, "sweeper": {**doc["sweeper"], "max_concurrent": 4}}))
    assert sweep_status(early, tmp_path).splitlines()[2:4] == [
        "the next look in about 2 min (8 trials at 60 s, the mean of the last 6 recorded, 4 at a time; "
        "checkpointed epochs counted)",
        "the race ends in at most about 12 min (38 trials: the 6 configurations left on every seed up to 8, if no "
        "look eliminates another)"]
    # a round of more trials than a Tuner holds (200 in a run, 5 here) runs as several Tuners, each
    # waiting for all its trials: the round under way as 5 (the started one's 40 s beside three of
    # 60 s, then the fifth on the slot that frees first: 100 s) and 3 (60 s); each later round of 6
    # as 5 (120 s) and 1 (60 s): 160 + 5 x 180 = 1060 s
    with monkeypatch.context() as patched:
        patched.setattr(search, "TRIALS_PER_TUNER", 5)
        assert sweep_status(early, tmp_path).splitlines()[2:4] == [
            "the next look in about 3 min (8 trials at 60 s, the mean of the last 6 recorded, 4 at a time; "
            "checkpointed epochs counted)",
            "the race ends in at most about 18 min (38 trials: the 6 configurations left on every seed up to 8, if "
            "no look eliminates another)"]
    # with seeds up to 3, the round under way is the last: its look is the race's last, and nothing follows
    (early / "spec.yaml").write_text(yaml.safe_dump({**doc, "sweeper": {
        **doc["sweeper"], "max_concurrent": 4, "race": {**doc["sweeper"]["race"], "seeds": {"first": 3, "max": 3}}}}))
    lines = sweep_status(early, tmp_path).splitlines()
    assert lines[1:3] == [
        "race before its first look (at 3 seeds): 6 of 6 configurations left; 8 trials of the next round to run "
        "(at most 18 trials)",
        "the race's last look in about 2 min (8 trials at 60 s, the mean of the last 6 recorded, 4 at a time; "
        "checkpointed epochs counted)"]
    assert not any(line.startswith("the race ends") for line in lines), lines
    done = _run_race_on(tmp_path / "done" / "claim_race", {**_MEANS, ("rmsprop", "mae"): 26.0})
    lines = sweep_status(done, tmp_path).splitlines()
    assert lines[1].startswith("race after ") and " of 6 configurations left; over: " in lines[1], lines
    assert not any(line.startswith(("the next look", "the race ends")) for line in lines), lines


def test_status_says_when_no_look_can_eliminate_one_of_the_two_left(tmp_path: Path) -> None:
    """With two left, friedman is Wilcoxon's exact test, whose p on n seeds is at least 2/2^n,
    and more once a seed went the other way: seen on lr_rho_race (level 0.0056), which could
    not eliminate either of its last two before 9 seeds, and after 8 (one seed the other way)
    at all; status says so, and what that makes certain."""
    from scipy import stats

    from sweeper.ledger import Ledger
    from sweeper.race import smallest_p
    from sweeper.status import sweep_status

    for n in range(5, 11):  # the floor is the test's own: every seed favouring the same one
        assert stats.wilcoxon(np.arange(1, n + 1) / 10, np.zeros(n)).pvalue == pytest.approx(smallest_p("friedman", 2, n))
    assert smallest_p("friedman", 3, 4) == smallest_p("ttest-holm", 2, 4) == 0.0
    # lr_rho_race after 8 seeds (results/races.md): rho 0.8 minus rho 0.9, seed 7 the other way
    # and 3rd smallest. At best seeds 8 and 9 favour rho 0.8 by more than any so far.
    lr_rho = [0.044878, 0.001277, 0.022055, 0.031047, 0.092301, 0.002245, 0.069480, -0.006453]
    assert smallest_p("friedman", 2, 9, lr_rho) == pytest.approx(stats.wilcoxon(lr_rho + [1.0]).pvalue) == 10 / 512
    assert smallest_p("friedman", 2, 10, lr_rho) == pytest.approx(10 / 1024)  # above 0.0056: no look can part them
    assert smallest_p("friedman", 2, 10, [-d for d in lr_rho]) == smallest_p("friedman", 2, 10, lr_rho)
    assert smallest_p("friedman", 2, 10, [abs(d) for d in lr_rho]) == pytest.approx(2 / 1024)
    two = {**dict.fromkeys(_MEANS, 22.0), ("adam", "mae"): 25.0, ("rmsprop", "mae"): 25.0}
    floor = ("(friedman with 2 left is Wilcoxon's signed-rank test: its p on n seeds is at least 2/2^n, and with "
             "the seeds so far at least ")
    said = {10: f"no look before 9 seeds can eliminate one of the 2 left {floor}0.0078 on 8, above the level "
                "0.0063): at least 10 trials more",  # 2 to go on seed 4, then both on seeds 5 to 8
            7: f"no look can eliminate one of the 2 left {floor}0.016 on 7, above the level 0.01): both run to 7 seeds"}
    for most, line in said.items():
        spec_text = _CLAIM_SPEC.replace("{first: 3, max: 8}, alpha: 0.05, test: ttest-holm",
                                        f"{{first: 3, max: {most}}}, alpha: 0.05, test: friedman")
        sweep = _run_race_on(tmp_path / str(most) / "claim_race", two, stop_after=24, spec_text=spec_text)
        lines = sweep_status(sweep, tmp_path / str(most)).splitlines()
        # the bound takes the two's paired differences on the 4 seeds both have run
        ledger = Ledger(sweep)
        state = race_state(loads(spec_text), ledger.trials(), ledger.eliminations())
        psnr = ledger.trials().set_index(["params_optimizer", "params_loss", "params_seed"])["val_psnr"]
        assert state.differences() == pytest.approx(
            [float(psnr["adam", "mae", s] - psnr["rmsprop", "mae", s]) for s in range(4)])
        assert lines[1].startswith("race after 4 seeds: 2 of 6 configurations left; 2 trials "), lines
        assert [x for x in lines if x.startswith("no look")] == [line], lines
    # Six left (a permutation p, no floor), or the t tests: nothing to say.
    six = _run_race_on(tmp_path / "six" / "claim_race", two, stop_after=18, spec_text=spec_text)
    ttest = _run_race_on(tmp_path / "ttest" / "claim_race", two, stop_after=24)
    assert not [x for x in [*sweep_status(six, tmp_path / "six").splitlines(),
                            *sweep_status(ttest, tmp_path / "ttest").splitlines()] if x.startswith("no look")]


@pytest.mark.parametrize("budget", ["{trials: 20}", "{seconds: 1200}"])
def test_a_race_starts_no_round_once_its_budget_is_spent_and_status_counts_only_what_it_may_still_run(
        tmp_path: Path, budget: str) -> None:
    """18 trials of 60 s after the first look (6 configurations on 3 seeds), under a budget of 20
    trials or 1200 s: the second round starts, and is the last. The status's bound on the trials
    left stops at a trials budget, as the race does."""
    from sweeper.ledger import Ledger
    from sweeper.status import sweep_status

    spec_text = _CLAIM_SPEC.replace("test: ttest-holm}", f"test: ttest-holm, budget: {budget}}}")
    equal = dict.fromkeys([*_MEANS, ("rmsprop", "mae")], 25.0)  # hardly any elimination: the budget ends it
    mid = _run_race_on(tmp_path / "mid" / "claim_race", equal, stop_after=18, spec_text=spec_text)
    ledger = Ledger(mid)
    state = race_state(loads(spec_text), ledger.trials(), ledger.eliminations())
    alive = len(state.alive)
    assert state.seeds == 3 and not state.done and len(state.pending) == alive >= 2
    lines = sweep_status(mid, tmp_path / "mid").splitlines()
    bound = 18 + alive if "trials" in budget else 18 + alive * 5  # a seconds budget: every seed up to 8
    assert lines[1] == (f"race after 3 seeds: {alive} of 6 configurations left; {alive} trials of the next round "
                        f"to run (at most {bound} trials)"), lines
    ends = [line for line in lines if line.startswith("the race ends")]
    assert ends == ([] if "trials" in budget else [
        f"the race ends after at most about {alive * 5} min of trial time ({alive * 5} trials: the {alive} "
        f"configurations left on every seed up to 8, within the budget, if no look eliminates another)"]), lines

    ended = _run_race_on(tmp_path / "end" / "claim_race", equal, spec_text=spec_text)
    ledger = Ledger(ended)
    state = race_state(loads(spec_text), ledger.trials(), ledger.eliminations())
    assert state.done and state.why == "the budget is spent", state.why
    assert [r.seeds for r in state.rounds] == [3, 4]
    assert state.trials_run == len(ledger.trials()) == 18 + len(state.rounds[1].alive)
    assert state.most_trials_left(loads(spec_text).race) == 0
    assert sweep_status(ended, tmp_path / "end").splitlines()[1].endswith(
        f"over: the budget is spent (at most {state.trials_run} trials)")


def test_a_dry_run_of_a_race_under_way_lists_its_next_round_and_the_most_trials_it_can_come_to(
        tmp_path: Path) -> None:
    """``sweeper run --dry-run`` says what a run would do now: the first round at the start;
    after a look, the round under way's trials left (not the first round again) and the bound
    the eliminations leave; once the race is over, nothing."""
    from typer.testing import CliRunner

    from sweeper.cli import app
    from sweeper.ledger import Ledger

    spec_path = tmp_path / "claim_race.yaml"
    spec_path.write_text(_CLAIM_SPEC)
    argv = ["run", str(spec_path), "--dry-run", "--results-dir", str(tmp_path)]
    runner = CliRunner()
    fresh = runner.invoke(app, argv)
    assert fresh.exit_code == 0, fresh.output
    assert fresh.stdout.splitlines()[-1] == (
        "claim_race: a race (ttest-holm, alpha 0.05); its first round is the 18 trials above (3 seeds each), then "
        "one seed a round for the configurations left, up to 8 seeds (48 trials at the most)")

    sweep = _run_race_on(tmp_path / "claim_race", {**_MEANS, ("rmsprop", "mae"): 25.0}, stop_after=20)
    ledger = Ledger(sweep)
    state = race_state(loads(_CLAIM_SPEC), ledger.trials(), ledger.eliminations())
    under_way = runner.invoke(app, argv)
    assert under_way.exit_code == 0, under_way.output
    # 20 recorded, the 2 left of seed 3, then the 4 configurations left on seeds 4 to 7
    assert under_way.stdout.splitlines()[-1] == (
        "claim_race: a race (ttest-holm, alpha 0.05), after 3 seeds: 4 of 6 configurations left; its next round "
        "is the 2 trials above (seed 3), then one seed a round for the configurations left, up to 8 seeds (38 "
        "trials at the most, 20 recorded)")
    assert len(state.pending) == 2 and all(t.id in under_way.stdout for t in state.pending)
    assert not any(t in under_way.stdout for t in ledger.trials()["trial_id"])  # recorded: not listed again

    _run_race_on(sweep, {**_MEANS, ("rmsprop", "mae"): 25.0})  # resumed to the end
    over = runner.invoke(app, argv)
    state = race_state(loads(_CLAIM_SPEC), ledger.trials(), ledger.eliminations())
    assert over.exit_code == 0 and state.done, over.output
    assert over.stdout.splitlines() == [
        f"claim_race: a race (ttest-holm, alpha 0.05), over after {state.seeds} seeds: {state.why}; nothing to run "
        f"({state.trials_run} recorded)"]


def test_the_race_figure_shades_the_seeds_a_running_race_may_still_run_and_none_once_it_is_over(
        tmp_path: Path) -> None:
    """Pale green marks what the configurations left may still cost (up to the most seeds the
    race can come to), so grey is only what the race saved."""
    import matplotlib.image

    from sweeper.report import report

    def pale_green_pixels(sweep: Path) -> int:
        image = (matplotlib.image.imread(sweep / "plots" / "race.png")[..., :3] * 255).round()
        return int((np.abs(image - (0xCF, 0xE6, 0xD3)).max(axis=-1) <= 1).sum())

    means = {**_MEANS, ("rmsprop", "mae"): 25.0}
    running = _run_race_on(tmp_path / "running" / "claim_race", means, stop_after=20)
    summary = report(running).race
    assert not summary.done and summary.most_seeds == 8 and summary.to_dict()["most_seeds"] == 8
    assert pale_green_pixels(running) > 1000  # 4 configurations left, each with seeds 4-8 or 5-8 to come
    over = _run_race_on(tmp_path / "over" / "claim_race", means)
    assert report(over).race.done and pale_green_pixels(over) == 0
