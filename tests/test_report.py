"""`sweeper report`: ranking, intervals and verdicts on hand-made ledgers with known answers."""

from __future__ import annotations

import base64
import dataclasses
import json
import math
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import yaml
from scipy import stats
from typer.testing import CliRunner

from sweeper.cli import app
from sweeper.ledger import Ledger
from sweeper.records import Elimination, EpochRow, Placement, TrialRow, label, show, shown_apart
from sweeper.report import OUTCOMES, build_report, difference_interval, mean_interval, render, report
from sweeper.spec import from_dict
from tests.conftest import ROOT, run_cli_light

runner = CliRunner()


def make_sweep(folder: Path, grid: dict[str, list], values: dict[tuple, list[float]], *,
               metric: str = "val_psnr", goal: str = "maximize", fixed: dict | None = None,
               status: dict[tuple, list[str]] | None = None, seeds: int = 2, record: bool = True,
               dataset: tuple[Path, str] | None = None, placement: Placement = Placement()) -> Path:
    """A sweep folder: a resolved spec.yaml for ``grid`` x seeds, and one ledger row per value.

    ``values`` maps a configuration (a tuple in sorted-``grid``-key order) to its val_psnr per seed;
    val_ssim and val_mae follow from it (higher PSNR, higher SSIM, lower MAE). Every trial ran
    where ``placement`` says.
    """
    names = sorted(grid)
    doc = {
        "name": folder.name, "method": "grid", "metric": {"name": metric, "goal": goal},
        "parameters": {**{k: {"values": v} for k, v in grid.items()}, "seed": {"values": list(range(seeds))},
                       **{k: {"value": v} for k, v in (fixed or {}).items()}},
        # No data unless asked for: the report then has no blurred-input baseline.
        "sweeper": {"dataset": {"dir": str(dataset[0] if dataset else folder / "no-data"),
                                "name": dataset[1] if dataset else "none"}},
    }
    folder.mkdir(parents=True)
    (folder / "spec.yaml").write_text(yaml.safe_dump(from_dict(doc).to_dict()))
    ledger = Ledger(folder)
    if not record:
        return folder
    for config, psnrs in values.items():
        for seed, psnr in enumerate(psnrs):
            st = (status or {}).get(config, ["ok"] * len(psnrs))[seed]
            tid = "-".join(map(str, config)) + f"-s{seed}"
            ok = st == "ok"
            ledger.record(
                TrialRow(tid, st, params={**dict(zip(names, config)), "seed": seed, **(fixed or {})},
                         metrics={"val_psnr": psnr if ok else math.nan, "val_ssim": psnr / 40 if ok else math.nan,
                                  "val_mae": 1 / psnr if ok else math.nan},
                         seconds=10.0 + seed, epochs_run=2, error="" if ok else f"{st}: boom in trial {tid}",
                         placement=placement),
                [EpochRow(e, train_loss=0.1, metrics={"val_psnr": psnr - 2 + e, "val_ssim": 0.5, "val_mae": 0.05})
                 for e in (1, 2)] if ok else [],
            )
    return folder


OPT_LOSS = {"optimizer": ["adam", "rmsprop", "sgd"], "loss": ["mae", "mse"]}


def opt_loss(rmsprop_mae: list[float], adam_mae: list[float], rest: float = 22.0) -> dict[tuple, list[float]]:
    # keys in sorted-name order: (loss, optimizer)
    values = {(loss, opt): [rest, rest + 0.1] for loss in ("mae", "mse") for opt in ("adam", "rmsprop", "sgd")}
    values[("mae", "rmsprop")] = rmsprop_mae
    values[("mae", "adam")] = adam_mae
    return values


# ----------------------------------------------------------------------------------------- labels


@pytest.mark.parametrize("value, shown", [
    (0.001, "0.001"), (1e-05, "1e-05"), (100000.0, "100000"), (0.9, "0.9"),
    # %g alone would print 0.00123457 for both of the next two
    (0.00123456789, "0.00123456789"), (0.0012345700001, "0.0012345700001"),
    (float("inf"), "inf"), ("mae", "mae"), (3, "3"),
])
def test_a_parameter_value_is_shown_short_and_never_loses_digits(value: Any, shown: str) -> None:
    assert show(value) == shown


@pytest.mark.parametrize("p, level, shown", [
    (0.0123, 0.0056, ("0.012", "0.0056")),
    # optim_loss_race's sixth look: 28 of 5000 permutations against alpha 0.05 over 9 looks
    (0.0056, 0.05 / 9, ("0.0056", "0.00556")),
    (0.0055555, 0.05 / 9, ("0.005555", "0.005556")),
    (0.05, 0.05, ("0.05", "0.05")),  # equal is shown equal
])
def test_a_p_value_and_its_level_are_shown_with_the_digits_that_tell_them_apart(
        p: float, level: float, shown: tuple[str, str]) -> None:
    assert shown_apart(p, level) == shown
    row = Elimination.none_at(7, p, "a22462401294", "friedman", level)
    assert row.reason == f"nothing eliminated after 7 seeds (friedman: omnibus p={shown[0]}, level {shown[1]})"


def test_a_label_names_the_keys_in_order_and_tells_close_learning_rates_apart() -> None:
    params = {"optimizer": "rmsprop", "learning_rate": 0.001, "rho": 0.9}
    assert label(params) == "optimizer=rmsprop, learning_rate=0.001, rho=0.9"
    assert label(params, ["rho", "optimizer"]) == "rho=0.9, optimizer=rmsprop"
    assert label(params, []) == ""
    assert label({"learning_rate": 0.00123456789}) != label({"learning_rate": 0.0012345700001})


# ------------------------------------------------------------------------------------- statistics


def test_mean_interval_is_the_student_t_interval() -> None:
    iv = mean_interval([1.0, 2.0, 3.0])
    # t(0.975, 2) = 4.3027; s = 1; half-width = 4.3027 / sqrt(3) = 2.4841
    assert iv.mean == 2.0 and iv.n == 3
    assert iv.high - iv.mean == pytest.approx(2.484138, abs=1e-5)
    assert iv.low == pytest.approx(2.0 - 2.484138, abs=1e-5)
    one = mean_interval([5.0, math.nan])
    assert one.mean == 5.0 and one.n == 1 and not one.known
    assert mean_interval([]).n == 0


def test_difference_interval_matches_scipys_welch_test() -> None:
    a, b = [1.0, 2.0, 3.0, 2.5], [4.0, 6.0, 8.0]
    iv = difference_interval(a, b)
    expected = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert iv.mean == pytest.approx(2.125 - 6.0)
    assert (iv.low, iv.high) == pytest.approx((expected.low, expected.high), rel=1e-9)
    assert not difference_interval([1.0], b).known
    same = difference_interval([2.0, 2.0], [1.0, 1.0])
    assert (same.low, same.mean, same.high) == (1.0, 1.0, 1.0)


# ------------------------------------------------------------------------------------- ranking


def test_ranking_order_and_intervals_on_a_known_ledger(tmp_path: Path) -> None:
    sweep = make_sweep(tmp_path / "s", OPT_LOSS, opt_loss([30.0, 31.0], [28.0, 28.5]))
    result = build_report(sweep, plots=False)
    assert result.keys == ("loss", "optimizer")
    first, second = result.ranking[:2]
    assert (first.rank, first.params, first.n) == (1, {"loss": "mae", "optimizer": "rmsprop"}, 2)
    assert second.params == {"loss": "mae", "optimizer": "adam"}
    psnr = first.metrics["val_psnr"]
    # two seeds: mean 30.5, s = 0.7071, t(0.975, 1) = 12.706; half-width = 12.706 * 0.7071 / sqrt(2) = 6.353
    assert psnr.mean == 30.5 and psnr.high - psnr.mean == pytest.approx(6.35310, abs=1e-4)
    assert [c.rank for c in result.ranking] == list(range(1, 7))
    assert first.seconds == 10.5 and first.statuses == {"ok": 2}
    assert result.recorded == 12 and result.planned == 12 and not result.partial


def test_a_minimised_metric_ranks_lowest_first(tmp_path: Path) -> None:
    sweep = make_sweep(tmp_path / "s", OPT_LOSS, opt_loss([30.0, 31.0], [28.0, 28.5]))
    result = build_report(sweep, "val_mae", plots=False)
    assert result.goal == "minimize"
    means = [c.metrics["val_mae"].mean for c in result.ranking]
    assert means == sorted(means) and result.ranking[0].params["optimizer"] == "rmsprop"


# ------------------------------------------------------------------------------------- verdicts


@pytest.mark.parametrize(("rmsprop_mae", "adam_mae", "outcome", "said"), [
    ([30.0, 30.2], [25.0, 25.1], "reproduced", "beats every other configuration beyond the seed noise"),
    ([25.0, 25.1], [30.0, 30.2], "not reproduced", "the winner loss=mae, optimizer=adam is better by"),
    ([27.0, 29.0], [28.0, 28.5], "inconclusive", "inside the seed noise"),  # rmsprop leads by 0.25 dB
    ([28.0, 28.4], [27.0, 29.5], "inconclusive", "behind the winner"),  # 0.05 dB behind
])
def test_each_verdict_outcome(tmp_path: Path, rmsprop_mae: list, adam_mae: list, outcome: str, said: str) -> None:
    sweep = make_sweep(tmp_path / "s", OPT_LOSS, opt_loss(rmsprop_mae, adam_mae))
    verdict = {v.claim.key: v for v in build_report(sweep, plots=False).verdicts}
    rm = verdict["rmsprop_mae"]
    assert rm.outcome == outcome and said in rm.reason, rm.reason
    assert rm.of == 6 and rm.difference is not None
    assert rm.difference.mean == pytest.approx(sum(rmsprop_mae) / 2 - max(sum(adam_mae) / 2, 22.05))
    assert verdict["lr_rho"].outcome == "not tested" and "does not vary learning_rate or rho" in verdict["lr_rho"].reason
    assert {v.outcome for v in verdict.values()} <= set(OUTCOMES)


def test_lr_rho_claim_is_judged_on_an_lr_rho_grid(tmp_path: Path) -> None:
    grid = {"learning_rate": [0.0001, 0.001, 0.01], "rho": [0.8, 0.9]}
    values = {(lr, rho): [20.0 + 10 * lr, 20.1 + 10 * lr] for lr in grid["learning_rate"] for rho in grid["rho"]}
    values[(0.001, 0.9)] = [26.0, 26.1]
    sweep = make_sweep(tmp_path / "s", grid, values, fixed={"optimizer": "rmsprop", "loss": "mae"})
    verdict = {v.claim.key: v for v in build_report(sweep, plots=False).verdicts}
    assert verdict["lr_rho"].outcome == "reproduced" and verdict["lr_rho"].rank == 1
    assert verdict["lr_rho"].compared_with == {"learning_rate": 0.01, "rho": 0.8}
    assert verdict["rmsprop_mae"].outcome == "not tested"


def test_a_claim_missing_from_the_grid_is_not_tested(tmp_path: Path) -> None:
    grid = {"optimizer": ["adam", "sgd"], "loss": ["mae", "mse"]}
    values = {(loss, opt): [20.0, 20.5] for loss in grid["loss"] for opt in grid["optimizer"]}
    sweep = make_sweep(tmp_path / "s", grid, values)
    verdict = build_report(sweep, plots=False).verdicts[0]
    assert verdict.outcome == "not tested" and "no configuration with optimizer=rmsprop, loss=mae" in verdict.reason


def test_one_seed_per_config_is_inconclusive_not_a_verdict(tmp_path: Path) -> None:
    values = {k: v[:1] for k, v in opt_loss([30.0, 30.2], [25.0, 25.1]).items()}
    sweep = make_sweep(tmp_path / "s", OPT_LOSS, values, seeds=1)
    verdict = build_report(sweep, plots=False).verdicts[0]
    assert verdict.outcome == "inconclusive" and "no interval" in verdict.reason


# ------------------------------------------------------------------------------------- failures, partial


def test_errors_and_diverged_trials_are_listed_never_dropped(tmp_path: Path) -> None:
    values = opt_loss([30.0, 30.2], [25.0, 25.1])
    status = {("mae", "sgd"): ["error", "diverged"], ("mae", "rmsprop"): ["ok", "diverged"]}
    sweep = make_sweep(tmp_path / "s", OPT_LOSS, values, status=status)
    result = report(sweep)
    assert result.status_counts == {"diverged": 2, "error": 1, "ok": 9}
    by = {tuple(c.params.values()): c for c in result.ranking}
    assert by[("mae", "sgd")].n == 0 and by[("mae", "sgd")].rank == 6  # nothing to rank by: last
    assert by[("mae", "rmsprop")].n == 1 and by[("mae", "rmsprop")].statuses == {"diverged": 1, "ok": 1}
    assert by[("mae", "rmsprop")].metrics["val_psnr"].mean == 30.0
    assert sorted(f["trial_id"] for f in result.failures) == ["mae-rmsprop-s1", "mae-sgd-s0", "mae-sgd-s1"]
    md = (sweep / "report.md").read_text()
    assert "Failed trials" in md and "error: boom in trial mae-sgd-s0" in md and "diverged 1, ok 1" in md
    doc = json.loads((sweep / "report.json").read_text())
    assert {f["status"] for f in doc["failures"]} == {"error", "diverged"}


def test_a_partial_sweep_reports_what_is_done_and_says_so(tmp_path: Path) -> None:
    values = {k: v for k, v in list(opt_loss([30.0, 30.2], [25.0, 25.1]).items())[:2]}
    sweep = make_sweep(tmp_path / "s", OPT_LOSS, values)
    result = report(sweep)
    assert result.partial and (result.recorded, result.planned) == (4, 12)
    assert "PARTIAL: 8 trials not recorded yet" in result.headline()
    assert "PARTIAL" in (sweep / "report.md").read_text() and json.loads(render(result, "json"))["partial"] is True


def test_the_headline_counts_trials_whose_16_bit_convolutions_were_emulated(tmp_path: Path) -> None:
    values = {k: v for k, v in list(opt_loss([30.0, 30.2], [25.0, 25.1]).items())[:2]}
    plain = report(make_sweep(tmp_path / "native", OPT_LOSS, values, fixed={"precision": "mixed_bfloat16"},
                              placement=Placement(accelerator="cpu", dtype_policy="mixed_bfloat16")))
    assert plain.emulated == 0 and "float32" not in plain.headline()
    emulated = report(make_sweep(tmp_path / "avx2", OPT_LOSS, values, fixed={"precision": "mixed_bfloat16"},
                                 placement=Placement(accelerator="cpu", dtype_policy="mixed_bfloat16",
                                                     emulation="float32-accumulate")))
    assert emulated.emulated == 4 and emulated.headline().endswith(
        "; PARTIAL: 8 trials not recorded yet (the sweep is still running or was interrupted; `sweeper run SPEC` "
        "resumes it); all 4 recorded trials ran on a CPU without native 16-bit arithmetic, their 16-bit "
        "convolutions computed in float32 and rounded once (the ledger's emulation column)")
    assert json.loads(render(emulated, "json"))["emulated"] == 4
    some = dataclasses.replace(emulated, emulated=3)  # the wording when the ledger mixes CPUs
    assert "; 3 of the 4 recorded trials ran on a CPU without native 16-bit arithmetic" in some.headline()


def test_an_empty_sweep_is_a_one_line_error(tmp_path: Path) -> None:
    sweep = make_sweep(tmp_path / "s", OPT_LOSS, {}, record=False)
    result = runner.invoke(app, ["report", str(sweep)])
    assert result.exit_code == 1 and "no trials recorded yet" in result.stderr and "Traceback" not in result.stderr


# ------------------------------------------------------------------------------------- outputs


class _Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.srcs: list[str] = []
        self.tags: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, Any]]) -> None:
        self.tags.append(tag)
        attrs_d = dict(attrs)
        if tag == "img":
            self.srcs.append(attrs_d["src"])
        for key in ("href", "src"):
            if tag != "img" and attrs_d.get(key):
                self.links.append(attrs_d[key])


def test_html_is_self_contained_with_embedded_pngs(tmp_path: Path) -> None:
    sweep = make_sweep(tmp_path / "s", OPT_LOSS, opt_loss([30.0, 30.2], [25.0, 25.1]))
    result = report(sweep)
    parser = _Images()
    parser.feed((sweep / "report.html").read_text())
    assert parser.tags[0] == "html" and "table" in parser.tags and not parser.links
    assert len(parser.srcs) == len(result.figures) >= 4  # heatmap, curves, parallel, importance
    for src in parser.srcs:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert (sweep / "plots" / "heatmap_optimizer_loss.png").is_file()
    md = (sweep / "report.md").read_text()
    assert "![Heatmap: optimizer x loss](plots/heatmap_optimizer_loss.png)" in md
    assert "| 1 | mae | rmsprop | 2 | 30.10 ± 1.27 |" in md  # 12.706 * 0.1414 / sqrt(2) = 1.27


def test_json_has_the_documented_shape(tmp_path: Path) -> None:
    sweep = make_sweep(tmp_path / "s", OPT_LOSS, opt_loss([30.0, 30.2], [25.0, 25.1]))
    doc = json.loads(render(report(sweep), "json"))
    assert {"ranking", "verdict", "failures", "importance", "partial", "metric", "goal"} <= set(doc)
    top = doc["ranking"][0]
    assert set(top) >= {"rank", "params", "n", "val_psnr", "val_ssim", "val_mae", "seconds", "statuses", "trial_ids"}
    assert set(top["val_psnr"]) == {"mean", "low", "high", "n"} and top["params"] == {"loss": "mae", "optimizer": "rmsprop"}
    assert set(doc["verdict"]) == {"rmsprop_mae", "lr_rho"}
    assert doc["verdict"]["rmsprop_mae"]["outcome"] == "reproduced"
    assert set(doc["verdict"]["rmsprop_mae"]["difference"]) == {"mean", "low", "high", "n"}
    assert math.isclose(sum(doc["importance"].values()), 1.0, rel_tol=1e-6)
    assert all(round(v, 9) == v for v in doc["importance"].values())  # no CPU-dependent last digits
    assert set(doc["importance"]) == {"loss", "optimizer", "seed"}


def test_importance_scores_only_the_parameters_the_recorded_trials_vary(tmp_path: Path) -> None:
    """Seen on lr_rho_race: its first 6 trials all at learning rate 0.0001 gave learning_rate a
    PED-ANOVA importance of 0.147. A parameter with one value among the ok trials explains none
    of their spread: it is left out, and with fewer than two varied the report says why."""
    adam_only = report(make_sweep(tmp_path / "adam", OPT_LOSS, {("mae", "adam"): [25.0, 25.2],
                                                                 ("mse", "adam"): [24.0, 24.3]}))
    assert set(adam_only.importance) == {"loss", "seed"}
    assert math.isclose(sum(adam_only.importance.values()), 1.0, rel_tol=1e-6)
    one = report(make_sweep(tmp_path / "one", OPT_LOSS, {("mae", "adam"): [25.0, 25.2, 25.1, 24.9]}, seeds=4))
    assert one.importance == {}
    assert one.importance_note == ("importance needs two or more parameters that the ok trials vary; "
                                   "loss, optimizer have one value so far")


def test_csv_format_is_the_ranking(tmp_path: Path) -> None:
    sweep = make_sweep(tmp_path / "s", OPT_LOSS, opt_loss([30.0, 30.2], [25.0, 25.1]))
    lines = render(report(sweep), "csv").splitlines()
    assert lines[0].startswith("rank,loss,optimizer,n,val_psnr_mean,val_psnr_low,val_psnr_high")
    assert lines[1].startswith("1,mae,rmsprop,2,30.1,") and len(lines) == 7


def test_a_committed_csv_export_reports_the_same(tmp_path: Path) -> None:
    sweep = make_sweep(tmp_path / "s", OPT_LOSS, opt_loss([30.0, 30.2], [25.0, 25.1]))
    before = report(sweep).to_dict()
    for name in ("trials.parquet", "epochs.parquet"):
        (sweep / name).unlink()
    after = report(sweep).to_dict()
    assert after["ranking"] == before["ranking"] and after["verdict"] == before["verdict"]


def test_report_imports_neither_tensorflow_nor_ray_nor_keras(tmp_path: Path) -> None:
    sweep = make_sweep(tmp_path / "s", OPT_LOSS, opt_loss([30.0, 30.2], [25.0, 25.1]))
    proc = run_cli_light(["report", str(sweep), "--format", "json"])
    assert json.loads(proc.stdout)["verdict"]["rmsprop_mae"]["outcome"] == "reproduced"


# ------------------------------------------------------------------------------------- CLI


def test_cli_report_formats_and_bad_options(tmp_path: Path) -> None:
    sweep = make_sweep(tmp_path / "r" / "optim", OPT_LOSS, opt_loss([30.0, 30.2], [25.0, 25.1]))
    table = runner.invoke(app, ["report", "--results-dir", str(tmp_path / "r")])  # the latest sweep
    assert table.exit_code == 0, table.output
    assert "REPRODUCED" in table.stdout and "rmsprop" in table.stdout and "report.html" in table.stdout
    md = runner.invoke(app, ["report", str(sweep), "--format", "md", "--metric", "val_ssim"])
    assert md.exit_code == 0 and md.stdout.startswith("# Sweep report: optim") and "Ranking by val_ssim" in md.stdout
    bad = runner.invoke(app, ["report", str(sweep), "--format", "pdf"])
    assert bad.exit_code == 2 and bad.stderr.strip() == (
        "sweeper: error: --format: unknown format 'pdf'; valid: table, md, csv, html, json")
    bad = runner.invoke(app, ["report", str(sweep), "--metric", "val_psnrr"])
    assert bad.exit_code == 2 and "did you mean 'val_psnr'" in bad.stderr
    missing = runner.invoke(app, ["report", str(tmp_path / "nope")])
    assert missing.exit_code == 1 and "no such sweep folder" in missing.stderr
    by_name = runner.invoke(app, ["report", "optim", "--results-dir", str(tmp_path / "r"), "--format", "md"])
    assert by_name.exit_code == 0 and by_name.stdout.startswith("# Sweep report: optim"), by_name.output


def test_cli_report_as_a_subprocess(tmp_path: Path) -> None:
    sweep = make_sweep(tmp_path / "s", OPT_LOSS, opt_loss([30.0, 30.2], [25.0, 25.1]))
    proc = subprocess.run([sys.executable, "-m", "sweeper.cli", "report", str(sweep), "--format", "csv"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[1].startswith("1,mae,rmsprop,2,")
    broken = sweep / "trials.parquet"
    broken.write_bytes(broken.read_bytes()[:40])
    proc = subprocess.run([sys.executable, "-m", "sweeper.cli", "report", str(sweep)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith(f"sweeper: error: {broken} is unreadable")


def test_report_while_the_ledger_is_being_written(tmp_path: Path) -> None:
    from model.errors import UserError
    from tests.test_ledger import _writer

    sweep = tmp_path / "live"
    stop = tmp_path / "stop"
    # The writer keeps committing until told to stop, so every report below runs while it writes,
    # on a fast machine or a loaded one.
    writer = _writer(sweep, 1_000_000, stop=stop)
    seen: list[int] = []
    reports = 0
    while reports < 6:
        assert writer.poll() is None, "the writer ended before the reports were done"
        try:
            result = report(sweep) if reports % 3 == 0 else build_report(sweep, plots=False)
        except UserError as err:  # before the first row: a clean "nothing yet", nothing else
            assert "no trials recorded yet" in str(err) or "no such sweep folder" in str(err), err
            continue
        reports += 1
        (config,) = result.ranking  # only the seed varies: one configuration of every trial
        assert config.n == result.recorded and config.metrics["val_psnr"].mean == (result.recorded - 1) / 2
        seen.append(result.recorded)
    stop.touch()
    out, _ = writer.communicate(timeout=60)
    committed = int(out.split()[-1]) + 1
    assert writer.returncode == 0 and seen == sorted(seen) and len(set(seen)) >= 2, seen
    assert build_report(sweep, plots=False).recorded == committed >= seen[-1]
    assert json.loads((sweep / "report.json").read_text())["recorded"] <= committed


def test_the_blurred_input_baseline_is_scored_like_a_trial_and_cached(tmp_path: Path, tiny_data) -> None:
    import numpy as np
    from PIL import Image
    from skimage.metrics import peak_signal_noise_ratio

    sweep = make_sweep(tmp_path / "s", OPT_LOSS, opt_loss([30.0, 30.2], [25.0, 25.1]),
                       dataset=(tiny_data.dir, tiny_data.name))
    result = report(sweep)
    test = Path(tiny_data.dir) / tiny_data.name / "test"
    expected = [peak_signal_noise_ratio(np.asarray(Image.open(test / "sharp" / f.name)), np.asarray(Image.open(f)))
                for f in sorted((test / "blur").iterdir())]
    assert result.baseline is not None and result.baseline["images"] == 2
    assert result.baseline["val_psnr"] == pytest.approx(np.mean(expected), abs=1e-3)
    gain = 30.1 - result.baseline["val_psnr"]
    assert f"is {gain:+.3f} dB from it in val_psnr, its mean over 2 trials." in (sweep / "report.md").read_text()
    assert json.loads(render(result, "json"))["baseline"] == result.baseline
    cached = json.loads((sweep / "baseline.json").read_text())
    moved = make_sweep(tmp_path / "t", OPT_LOSS, {}, record=False)  # the same cache, no data at all
    (moved / "baseline.json").write_text(json.dumps(cached))
    Ledger(moved).record(TrialRow("a", "ok", params={"seed": 0}, metrics={"val_psnr": 30.0}))
    assert build_report(moved, plots=False).baseline == cached


def test_samples_of_the_best_and_worst_trial_and_a_committed_figure_kept(tmp_path: Path) -> None:
    import numpy as np
    from PIL import Image

    values = {**opt_loss([30.0, 30.2], [25.0, 25.1]), ("mse", "sgd"): [20.0, 21.0]}
    sweep = make_sweep(tmp_path / "s", OPT_LOSS, values)
    strips = sweep / "samples"
    strips.mkdir()
    for tid, level in (("mae-rmsprop-s1", 200), ("mse-sgd-s0", 40)):  # the best and the worst trial
        Image.fromarray(np.full((16, 48, 3), level, np.uint8)).save(strips / f"{tid}.png")
    title = "Samples: the best and the worst trial"
    figure = report(sweep).figures[title]
    drawn = np.asarray(Image.open(figure).convert("L"))
    assert (drawn > 190).any() and ((drawn > 30) & (drawn < 50)).any()  # both strips are in it
    import shutil

    shutil.rmtree(strips)  # what a committed reference run looks like
    assert report(sweep).figures[title] == figure and figure.is_file()
