"""The offline dashboard: every sweep mirrored into an Optuna study, served by optuna-dashboard."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import optuna
import pytest
import yaml
from typer.testing import CliRunner

from sweeper.cli import app
from sweeper.folder import read_spec
from sweeper.ledger import Ledger
from sweeper.study import ledger_study, mirror_to_optuna
from tests.conftest import ROOT, free_port
from tests.test_report import OPT_LOSS, make_sweep, opt_loss

runner = CliRunner()


def _sweep(tmp_path: Path) -> Path:
    status = {("mae", "sgd"): ["error", "diverged"]}
    return make_sweep(tmp_path / "optim", OPT_LOSS, opt_loss([30.0, 30.2], [25.0, 25.1]), status=status)


def test_a_grid_sweep_is_mirrored_once_with_its_distributions(tmp_path: Path) -> None:
    sweep = _sweep(tmp_path)
    url, name = mirror_to_optuna(sweep)
    assert url == f"sqlite:///{(sweep / 'optuna.db').resolve()}" and name == "optim"
    study = optuna.load_study(study_name=name, storage=url)
    trials = study.get_trials()
    states = sorted(t.state.name for t in trials)
    assert states == ["COMPLETE"] * 10 + ["FAIL"] * 2
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE
    assert study.best_trial.value == 30.2 and study.best_trial.params == {"loss": "mae", "optimizer": "rmsprop", "seed": 1}
    assert study.best_trial.intermediate_values == {1: 29.2, 2: 30.2}
    dist = study.best_trial.distributions["optimizer"]
    assert isinstance(dist, optuna.distributions.CategoricalDistribution) and dist.choices == ("adam", "rmsprop", "sgd")
    failed = [t for t in trials if t.state.name == "FAIL"]
    assert {t.user_attrs["status"] for t in failed} == {"error", "diverged"} and "boom" in failed[0].user_attrs["error"]
    mirror_to_optuna(sweep)  # again: nothing new to add
    assert len(optuna.load_study(study_name=name, storage=url).get_trials()) == 12


def _raced(folder: Path, seeds: int) -> Path:
    """A raced grid's folder whose configurations all ran seeds ``0 .. seeds-1``."""
    values = {(loss, opt): [22.0 + s / 10 for s in range(seeds)]
              for loss in OPT_LOSS["loss"] for opt in OPT_LOSS["optimizer"]}
    sweep = make_sweep(folder, OPT_LOSS, values, seeds=seeds)
    doc = yaml.safe_load((sweep / "spec.yaml").read_text())
    del doc["parameters"]["seed"]  # a race chooses its seeds itself
    doc["sweeper"]["race"] = {"seeds": {"first": 3, "max": 5}}
    (sweep / "spec.yaml").write_text(yaml.safe_dump(doc))
    return sweep


def test_a_race_is_mirrored_again_after_a_round_adds_a_seed(tmp_path: Path) -> None:
    """Seen on lr_rho_race: the study was told the seeds run so far, and the round after the
    mirror failed ("CategoricalDistribution does not support dynamic value space")."""
    three, four = _raced(tmp_path / "three", 3), _raced(tmp_path / "four", 4)
    mirror_to_optuna(three)
    shutil.copy(three / "optuna.db", four / "optuna.db")  # the study as it was a round ago
    url, name = mirror_to_optuna(four)
    trials = optuna.load_study(study_name=name, storage=url).get_trials()
    assert len(trials) == 24 and sorted({t.params["seed"] for t in trials}) == [0, 1, 2, 3]
    assert {t.distributions["seed"].choices for t in trials} == {(0, 1, 2, 3, 4)}
    # In memory (the report's importance, which weighs every choice): the seeds recorded.
    report_study = ledger_study(*Ledger(four, create=False).snapshot(), metric="val_psnr", goal="maximize",
                                study_name="report", spec=read_spec(four))
    assert {t.distributions["seed"].choices for t in report_study.get_trials()} == {(0, 1, 2, 3)}


def test_a_spec_whose_values_changed_rebuilds_its_study_from_the_ledger(tmp_path: Path) -> None:
    sweep = _sweep(tmp_path)
    url, name = mirror_to_optuna(sweep)
    spec = sweep / "spec.yaml"
    spec.write_text(spec.read_text().replace("- sgd", "- sgd\n    - nadam"))
    assert "nadam" in spec.read_text()
    mirror_to_optuna(sweep)
    trials = optuna.load_study(study_name=name, storage=url).get_trials()
    assert len(trials) == 12 and len({t.user_attrs["sweeper_trial_id"] for t in trials}) == 12
    assert {t.distributions["optimizer"].choices for t in trials} == {("adam", "nadam", "rmsprop", "sgd")}


def test_a_file_that_is_not_a_study_is_a_one_line_error_and_the_ledger_is_kept(tmp_path: Path) -> None:
    sweep = _sweep(tmp_path)
    (sweep / "optuna.db").write_text("not a database\n")
    ledger = (sweep / "trials.parquet").read_bytes()
    result = runner.invoke(app, ["dashboard", str(sweep), "--port", str(free_port())])
    assert result.exit_code == 1 and "Traceback" not in result.stderr, result.output
    assert result.stderr.strip().splitlines() == [
        f"sweeper: error: {sweep / 'optuna.db'}: not an Optuna study this Optuna can read ((sqlite3.DatabaseError) file "
        "is not a database); move it aside: the ledger keeps every trial, and the study is made again from it"]
    assert (sweep / "trials.parquet").read_bytes() == ledger
    (sweep / "optuna.db").unlink()  # moved aside, as it says: the study comes back from the ledger
    url, name = mirror_to_optuna(sweep)
    assert len(optuna.load_study(study_name=name, storage=url).get_trials()) == 12


def test_a_bayes_study_written_by_optuna_search_is_left_alone(tmp_path: Path) -> None:
    sweep = _sweep(tmp_path)
    spec = sweep / "spec.yaml"
    spec.write_text(spec.read_text().replace("method: grid", "method: bayes\nrun_cap: 12"))
    url = f"sqlite:///{(sweep / 'optuna.db').resolve()}"
    own = optuna.create_study(study_name="optim", storage=url, direction="maximize")
    own.add_trial(optuna.trial.create_trial(value=1.0))
    assert mirror_to_optuna(sweep) == (url, "optim")
    assert len(optuna.load_study(study_name="optim", storage=url).get_trials()) == 1


def test_dashboard_refuses_a_bad_port_and_an_empty_sweep(tmp_path: Path) -> None:
    result = runner.invoke(app, ["dashboard", str(_sweep(tmp_path)), "--port", "70000"])
    assert result.exit_code == 2 and "--port: 70000 is not a TCP port" in result.stderr
    empty = make_sweep(tmp_path / "empty", OPT_LOSS, {}, record=False)
    result = runner.invoke(app, ["dashboard", str(empty)])
    assert result.exit_code == 1 and "no trials recorded yet" in result.stderr


def _wait_for(url: str, proc: subprocess.Popen, timeout: float = 60.0) -> bytes:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"dashboard exited {proc.returncode}: {proc.stderr.read()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.read()
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"{url} did not answer within {timeout} s")


@pytest.mark.slow
def test_the_dashboard_lists_the_sweeps_trials_in_headless_chromium(tmp_path: Path) -> None:
    browser = shutil.which("chromium")
    assert browser, "Debian's chromium is needed (apt-get install chromium; .ci/run installs it)"
    sweep = _sweep(tmp_path)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "sweeper.cli", "dashboard", str(sweep), "--port", str(port)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        studies = json.loads(_wait_for(f"http://127.0.0.1:{port}/api/studies", proc))
        assert [s["study_name"] for s in studies["study_summaries"]] == ["optim"]
        page = f"http://127.0.0.1:{port}/dashboard/studies/1/trials"
        # A profile of its own: with the default one, a second Chromium running at the same
        # moment (another test run on the machine) takes the request and this one prints nothing.
        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync",
                 f"--user-data-dir={tmp_path / 'chromium-profile'}",
                 "--disable-dev-shm-usage", "--virtual-time-budget=20000", "--window-size=1400,1000"]
        dom = subprocess.run([browser, *flags, "--dump-dom", page], capture_output=True, text=True, timeout=120).stdout
        # The trial list the React app renders: the study, its 12 trials, their states.
        assert "optim" in dom and "12 Trials" in dom, dom[-2000:]
        assert all(f"Trial {k}" in dom for k in range(12))
        assert dom.count("Complete") >= 10 and "Fail" in dom
        shot = tmp_path / "dashboard.png"
        subprocess.run([browser, *flags, f"--screenshot={shot}", page], capture_output=True, timeout=120)
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    # Bound to this machine only.
    assert f"http://127.0.0.1:{port}/" in proc.stdout.read()
