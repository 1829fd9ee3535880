"""sweeper.spec: shipped search spaces, every validation rule, --set overrides, hostile input."""

from __future__ import annotations

import copy
import logging
import pickle
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sweeper.spec
from sweeper.space import expand
from model.errors import ConfigError
from sweeper.spec import (
    MAX_GRID,
    PARAMETER_NAMES,
    DatasetConfig,
    Param,
    Resources,
    SpecError,
    SweepSpec,
    from_dict,
    load,
    loads,
    wandb_schema,
)

ROOT = Path(__file__).resolve().parents[1]
SPACES = ROOT / "search_spaces"
SHIPPED = ("optim_loss", "lr_rho", "lr_rho_bayes")

BASE = """
name: t
method: grid
metric: {name: val_psnr, goal: maximize}
parameters:
  optimizer: {values: [adam, rmsprop]}
  epochs: {value: 1}
"""
DELETE = "<delete>"


def wandb_violations(config: dict[str, Any]) -> list[str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        from sweeps import schema_violations_from_proposed_config
    return schema_violations_from_proposed_config(config)


def merged(patch: str) -> dict[str, Any]:
    """BASE with ``patch`` (YAML) merged in recursively; the value DELETE removes a key."""

    def merge(into: dict[str, Any], update: dict[str, Any]) -> None:
        for key, value in update.items():
            if value == DELETE:
                into.pop(key, None)
            elif isinstance(value, dict) and isinstance(into.get(key), dict):
                merge(into[key], value)
            else:
                into[key] = value

    doc = yaml.safe_load(BASE)
    merge(doc, yaml.safe_load(patch) or {})
    return doc


def problems_of(text: str, **kwargs: Any) -> tuple[str, ...]:
    with pytest.raises(SpecError) as info:
        loads(text, **kwargs)
    assert info.value.exit_code == 2
    return info.value.problems


# --- the shipped search spaces ---------------------------------------------------------------


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_file_loads_and_passes_wandb_schema(name: str) -> None:
    path = SPACES / f"{name}.yaml"
    spec = load(path)
    assert spec.name == name
    config = spec.wandb_config()
    assert "sweeper" not in config
    assert wandb_violations(config) == []
    raw = yaml.safe_load(path.read_text())
    raw.pop("sweeper")
    assert wandb_violations(raw) == []  # the file itself, minus sweeper:, is what `wandb sweep` reads
    assert from_dict(spec.to_dict()) == spec
    assert loads(yaml.safe_dump(spec.to_dict())) == spec


def test_shipped_grid_sizes_and_contents() -> None:
    optim_loss, lr_rho, bayes = (load(SPACES / f"{n}.yaml") for n in SHIPPED)
    assert optim_loss.grid_size() == 5 * 5 * 2 == 50
    assert lr_rho.grid_size() == 5 * 4 * 2 == 40
    assert optim_loss.param("optimizer").values == ("adagrad", "adam", "nadam", "rmsprop", "sgd")
    assert optim_loss.param("loss").values == ("fourier", "huber", "mae", "mse", "sobel")
    assert optim_loss.param("learning_rate").value == 0.001
    assert (optim_loss.metric, optim_loss.goal) == ("val_psnr", "maximize")
    assert optim_loss.resources == Resources(cpu=1, gpu=1, accelerator_type="T4", fallback="cpu")
    assert optim_loss.dataset == DatasetConfig(Path("data"), "synthetic")
    assert (optim_loss.max_concurrent, optim_loss.max_failures) == (2, 2)
    assert lr_rho.early_terminate is None
    assert lr_rho.param("rho").values == (0.8, 0.9, 0.95, 0.99)
    assert bayes.method == "bayes" and bayes.run_cap == 20
    assert bayes.param("learning_rate").to_dict() == {"distribution": "log_uniform_values", "min": 0.0001, "max": 0.01}
    assert bayes.param("rho").to_dict() == {"distribution": "uniform", "min": 0.8, "max": 0.99}
    assert bayes.early_terminate.to_dict() == {"type": "hyperband", "min_iter": 1, "eta": 3}


def test_parameters_sorted_and_defaults() -> None:
    spec = loads(BASE)
    assert [p.name for p in spec.parameters] == ["epochs", "optimizer"]
    assert spec.resources == Resources() and spec.dataset == DatasetConfig()
    assert spec.max_concurrent is None and spec.max_failures == 2 and spec.run_cap is None
    assert spec.param("rho") is None


def test_accepted_forms() -> None:
    ok = loads(BASE + "  loss: {values: [mae, 'mae+0.1*sobel', 'mae + 0.05*fourier']}\n")
    assert ok.param("loss").values[1] == "mae+0.1*sobel"
    # W&B's explicit spellings, and its inference of the distribution from the bounds' types.
    doc = merged("""
method: random
run_cap: 3
parameters:
  optimizer: {distribution: categorical, values: [adam]}
  epochs: {distribution: constant, value: 2}
  rho: {min: 0.5, max: 0.9}
  seed: {min: 0, max: 9}
  patch_size: {distribution: q_uniform, min: 8, max: 64, q: 4}
""")
    spec = from_dict(doc)
    assert spec.param("rho").distribution == "uniform" and not spec.param("rho").integer
    assert spec.param("seed").distribution == "int_uniform" and spec.param("seed").integer
    assert spec.param("patch_size").integer
    assert wandb_violations(spec.wandb_config()) == []


# --- every validation rule -------------------------------------------------------------------

CASES: list[tuple[str, str]] = [
    # parameters: names, kinds, blocks
    ("parameters: {learning_rat: {value: 0.1}}", "parameters.learning_rat: unknown parameter 'learning_rat' (did you mean 'learning_rate'?)"),
    ("parameters: {epochs: {value: 1, vaules: [1]}}", "parameters.epochs.vaules: unknown key 'vaules' (did you mean 'values'?)"),
    ("parameters: {epochs: 3}", "parameters.epochs: expected a mapping like {value: ...}"),
    ("parameters: {epochs: {value: <delete>}}", "parameters.epochs: give exactly one of value, values"),
    ("parameters: {epochs: {value: 1, values: [1, 2]}}", "parameters.epochs: give exactly one of value, values"),
    ("parameters: {epochs: {value: null}}", "parameters.epochs.value: is empty (null)"),
    ("parameters: {epochs: {value: [1, 2]}}", "parameters.epochs.value: expected a single value, got a list"),
    ("parameters: {seed: {values: []}}", "parameters.seed.values: is empty"),
    ("parameters: {seed: {values: 3}}", "parameters.seed.values: expected a list"),
    ("parameters: {seed: {values: [0, 1, 0]}}", "parameters.seed.values[2]: duplicate of values[0]"),
    ("parameters: <delete>", "parameters: missing"),
    ("parameters: {epochs: <delete>, optimizer: <delete>}", "parameters: is empty"),
    ("parameters: [epochs]", "parameters: expected a mapping"),
    # per-parameter values
    ("parameters: {optimizer: {values: <delete>, value: 3}}", "parameters.optimizer.value: optimizer must be a name"),
    ("parameters: {loss: {values: [mae, msee]}}", "parameters.loss.values[1]: unknown loss 'msee'"),
    ("parameters: {loss: {value: 'mae+'}}", "parameters.loss.value: bad loss expression 'mae+'"),
    ("parameters: {loss: {value: '__import__(\"os\")'}}", "parameters.loss.value: bad loss expression"),
    ("parameters: {learning_rate: {value: 0}}", "parameters.learning_rate.value: 0 is out of range"),
    ("parameters: {learning_rate: {values: [0.1, -0.1]}}", "parameters.learning_rate.values[1]: -0.1 is out of range"),
    ("parameters: {learning_rate: {value: .nan}}", "parameters.learning_rate.value: nan is out of range"),
    ("parameters: {learning_rate: {value: .inf}}", "parameters.learning_rate.value: inf is out of range"),
    ("parameters: {learning_rate: {value: 1e-3}}", "parameters.learning_rate.value: '1e-3' is out of range: learning_rate must be a number > 0, e.g. 0.001 (YAML read '1e-3' as text; write 0.001)"),
    ("parameters: {learning_rate: {value: true}}", "parameters.learning_rate.value: True is out of range"),
    ("parameters: {rho: {value: 1.0}}", "parameters.rho.value: 1.0 is out of range: rho must be in (0, 1)"),
    ("parameters: {rho: {values: [0.9, 0]}}", "parameters.rho.values[1]: 0 is out of range"),
    ("parameters: {momentum: {value: 1}}", "parameters.momentum.value: 1 is out of range: momentum must be in [0, 1)"),
    ("parameters: {momentum: {value: -0.5}}", "parameters.momentum.value: -0.5 is out of range"),
    ("parameters: {seed: {values: [-1]}}", "parameters.seed.values[0]: -1 is too small"),
    ("parameters: {seed: {value: 1.5}}", "parameters.seed.value: 1.5 is not an integer"),
    ("parameters: {seed: {value: 99999999999999999999}}", "parameters.seed.value: 99999999999999999999 is too large"),
    ("parameters: {epochs: {value: true}}", "parameters.epochs.value: True is not an integer"),
    ("parameters: {epochs: {value: 0}}", "parameters.epochs.value: 0 is too small"),
    ("parameters: {epochs: {value: '3'}}", "parameters.epochs.value: '3' is not an integer; use a whole number >= 1 (YAML read '3' as text; write 3)"),
    ("parameters: {steps_per_epoch: {value: 0}}", "parameters.steps_per_epoch.value: 0 is too small"),
    ("parameters: {batch_size: {value: 0}}", "parameters.batch_size.value: 0 is too small"),
    ("parameters: {batch_size: {value: 2.0}}", "parameters.batch_size.value: 2.0 is not an integer"),
    ("parameters: {patch_size: {value: 66}}", "parameters.patch_size.value: 66 is not a multiple of 4"),
    ("parameters: {patch_size: {value: 4}}", "parameters.patch_size.value: 4 is too small"),
    # distributions
    ("parameters: {learning_rate: {distribution: uniform, min: 0.001, max: 0.01}}", "parameters.learning_rate: grid needs values or value; use random or bayes for distributions"),
    ("{method: random, run_cap: 2, parameters: {learning_rate: {distribution: uniform, min: 0.01, max: 0.001}}}", "parameters.learning_rate: min 0.01 must be less than max 0.001"),
    ("{method: random, run_cap: 2, parameters: {learning_rate: {distribution: log_uniform_values, min: 0, max: 0.1}}}", "parameters.learning_rate.min: log_uniform_values needs min > 0"),
    ("{method: random, run_cap: 2, parameters: {learning_rate: {distribution: uniform, min: 0, max: 0.1}}}", "parameters.learning_rate.min: 0 is out of range"),
    ("{method: random, run_cap: 2, parameters: {rho: {distribution: uniform, min: 0.5, max: 1.5}}}", "parameters.rho.max: 1.5 is out of range"),
    ("{method: random, run_cap: 2, parameters: {rho: {distribution: uniform, min: 0.5}}}", "parameters.rho.max: missing"),
    ("{method: random, run_cap: 2, parameters: {rho: {distribution: uniform, min: 0.5, max: x}}}", "parameters.rho.max: expected a number, got 'x'"),
    ("{method: random, run_cap: 2, parameters: {rho: {distribution: uniform, min: 0.5, max: 0.9, q: 0.1}}}", "parameters.rho.q: only q_uniform and q_log_uniform_values take q"),
    ("{method: random, run_cap: 2, parameters: {rho: {distribution: unifrom, min: 0.5, max: 0.9}}}", "parameters.rho.distribution: 'unifrom' is unknown (did you mean 'uniform'?)"),
    ("{method: random, run_cap: 2, parameters: {rho: {distribution: normal}}}", "parameters.rho.distribution: 'normal' is not supported by sweeper"),
    ("{method: random, run_cap: 2, parameters: {epochs: {value: <delete>, distribution: uniform, min: 1, max: 5}}}", "parameters.epochs.distribution: uniform over [1, 5] draws values such as 3.0: 3.0 is not an integer; use a whole number >= 1 (int_uniform draws whole numbers)"),
    ("{method: random, run_cap: 2, parameters: {epochs: {value: <delete>, distribution: int_uniform, min: 1.5, max: 5}}}", "parameters.epochs: int_uniform needs whole-number min and max"),
    ("{method: random, run_cap: 2, parameters: {patch_size: {distribution: int_uniform, min: 8, max: 64}}}", "parameters.patch_size.distribution: int_uniform over [8, 64] draws values such as 9: 9 is not a multiple of 4"),
    ("{method: random, run_cap: 2, parameters: {learning_rate: {distribution: q_log_uniform_values, min: 0.0001, max: 0.01}}}", "parameters.learning_rate.distribution: q_log_uniform_values over [0.0001, 0.01] draws values such as 0.0"),
    ("{method: random, run_cap: 2, parameters: {rho: {value: 0.9, min: 0.5}}}", "parameters.rho: give exactly one of value, values or a distribution"),
    # method, run_cap
    ("method: gird", "method: unknown method 'gird' (did you mean 'grid'?)"),
    ("method: <delete>", "method: missing"),
    ("method: null", "method: unknown method null"),
    ("method: random", "run_cap: required for method random"),
    ("{method: bayes, run_cap: 0}", "run_cap: 0 is too small"),
    ("{method: bayes, run_cap: true}", "run_cap: expected a whole number >= 1, got true"),
    ("{method: bayes, run_cap: null}", "run_cap: is empty (null)"),
    ("run_cap: 5", "run_cap: a grid runs all its 2 combinations; remove run_cap"),
    # metric
    ("metric: {name: val_psnrr}", "metric.name: unknown metric 'val_psnrr' (did you mean 'val_psnr'?)"),
    ("metric: {name: psnr}", "metric.name: use 'val_psnr'"),
    ("metric: {name: [val_psnr]}", "metric.name: expected a metric name like 'val_psnr', got a list"),
    ("metric: {goal: <delete>}", "metric.goal: missing; add goal: maximize"),
    ("metric: {goal: max}", "metric.goal: unknown goal 'max'"),
    ("metric: {name: val_mae, goal: maximize}", "metric.goal: val_mae is better when lower; use goal: minimize"),
    ("metric: {target: 30}", "metric.target: unknown key 'target'"),
    ("metric: {goal: <delete>, name: <delete>}", "metric.name: missing"),
    ("metric: val_psnr", "metric: expected a mapping like {name: val_psnr, goal: maximize}"),
    ("metric: <delete>", "metric: missing"),
    # name
    ("name: ../evil", "name: '../evil' is not a safe sweep name"),
    ("name: .hidden", "name: '.hidden' is not a safe sweep name"),
    ("name: 'a b'", "name: 'a b' is not a safe sweep name"),
    ("name: 2024", "name: expected a sweep name like 'optim_loss', got 2024 (quote it)"),
    ("name: <delete>", "name: missing"),
    # top level
    ("paramters: {}", "paramters: unknown top-level key 'paramters' (did you mean 'parameters'?)"),
    ("program: train.py", "program: a W&B agent key sweeper does not use"),
    ("1: x", "1: unknown top-level key 1"),
    # early_terminate
    ("early_terminate: {type: hyperband, min_iter: 1, s: 2}", "early_terminate.s: unknown key 's'"),
    ("early_terminate: {type: asha, min_iter: 1}", "early_terminate.type: unknown early_terminate type 'asha'"),
    ("early_terminate: {type: hyperband, min_iter: 0}", "early_terminate.min_iter: 0 is too small"),
    ("early_terminate: {type: hyperband, min_iter: 1, eta: 1}", "early_terminate.eta: 1 is out of range; use a number > 1"),
    ("early_terminate: {type: hyperband, min_iter: 2, max_iter: 2}", "early_terminate.max_iter: 2 must be greater than min_iter 2"),
    ("early_terminate: {type: hyperband, eta: 3}", "early_terminate.min_iter: missing"),
    ("early_terminate: {min_iter: 1}", "early_terminate.type: missing"),
    ("early_terminate: null", "early_terminate: is empty (null)"),
    ("early_terminate: hyperband", "early_terminate: expected a mapping"),
    # sweeper:
    ("sweeper: [1]", "sweeper: expected a mapping"),
    ("sweeper: {max_concurent: 1}", "sweeper.max_concurent: unknown key 'max_concurent' (did you mean 'max_concurrent'?)"),
    ("sweeper: {max_concurrent: 0}", "sweeper.max_concurrent: 0 is too small"),
    ("sweeper: {max_failures: -1}", "sweeper.max_failures: -1 is too small"),
    ("sweeper: {max_failures: two}", "sweeper.max_failures: expected a whole number >= 0, got 'two'"),
    ("sweeper: {resources: {gpus: 1}}", "sweeper.resources.gpus: unknown key 'gpus' (did you mean 'gpu'?)"),
    ("sweeper: {resources: {cpu: 0}}", "sweeper.resources.cpu: 0 is out of range; use a number > 0"),
    ("sweeper: {resources: {gpu: -1}}", "sweeper.resources.gpu: -1 is out of range; use a number >= 0"),
    ("sweeper: {resources: {fallback: gpu}}", "sweeper.resources.fallback: unknown fallback 'gpu'"),
    ("sweeper: {resources: {fallback: no}}", "sweeper.resources.fallback: unknown fallback false"),
    ("sweeper: {resources: {accelerator_type: ''}}", "sweeper.resources.accelerator_type: '' is not a safe accelerator type"),
    ("sweeper: {resources: 2}", "sweeper.resources: expected a mapping"),
    ("sweeper: {dataset: {path: x}}", "sweeper.dataset.path: unknown key 'path'"),
    ("sweeper: {dataset: {name: a/b}}", "sweeper.dataset.name: 'a/b' is not a safe dataset name"),
    ("sweeper: {dataset: {dir: ''}}", "sweeper.dataset.dir: expected a folder path"),
]


@pytest.mark.parametrize(("patch", "expected"), CASES, ids=[c[1][:60] for c in CASES])
def test_validation_case(patch: str, expected: str) -> None:
    problems = problems_of(yaml.safe_dump(merged(patch)))
    assert any(expected in p for p in problems), problems


def test_did_you_mean_example_exactly() -> None:
    text = BASE.replace("[adam, rmsprop]", "[adam, sgd, rmsprp]")
    problems = problems_of(text, source="spaces/x.yaml")
    expected = "parameters.optimizer.values[2]: unknown optimizer 'rmsprp' (did you mean 'rmsprop'?)"
    # The line goes on to list the valid names, as every registry error does.
    assert problems == (expected + "; valid: adadelta, adagrad, adam, adamax, adamw, nadam, rmsprop, sgd",)


def test_all_problems_reported_once_each_in_one_error() -> None:
    doc = merged("""
method: gird
metric: {name: val_psnr, goal: minimize}
parameters: {optimizer: {values: [adam, rmsprp]}, rho: {value: 2}, epochs: {value: 0}, batc_size: {value: 8}}
sweeper: {max_failures: -1, resources: {cpu: 0}}
extra: 1
""")
    with pytest.raises(SpecError) as info:
        from_dict(doc, source="s.yaml")
    problems = info.value.problems
    assert len(problems) == len(set(problems)) == 9, problems
    lines = str(info.value).splitlines()
    assert len(lines) == 9 and all(line.startswith("s.yaml: ") for line in lines)
    assert isinstance(info.value, ConfigError) and info.value.exit_code == 2
    again = pickle.loads(pickle.dumps(info.value))
    assert again.problems == problems and str(again) == str(info.value)


def test_dataclasses_validate_on_construction() -> None:
    with pytest.raises(SpecError, match=r"parameters.epochs.value: 0 is too small"):
        Param("epochs", value=0)
    with pytest.raises(SpecError, match=r"sweeper.resources.cpu"):
        Resources(cpu=0)
    with pytest.raises(SpecError, match=r"sweeper.dataset.name"):
        DatasetConfig(name="..")
    lr = Param("learning_rate", distribution="uniform", min=0.001, max=0.01)
    with pytest.raises(SpecError, match="grid needs values or value"):
        SweepSpec("x", "grid", "val_psnr", "maximize", (lr,))
    spec = SweepSpec("x", "random", "val_psnr", "maximize", [Param("seed", values=[1, 0]), lr], run_cap=4)
    assert [p.name for p in spec.parameters] == ["learning_rate", "seed"]
    assert spec.param("seed").values == (1, 0)
    assert isinstance(spec.parameters, tuple)


# --- YAML-level problems -----------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "   \n", "# only a comment\n", "---\n"])
def test_empty_file(text: str) -> None:
    (problem,) = problems_of(text)
    assert "empty" in problem


@pytest.mark.parametrize(("text", "shown"), [("- a\n- b\n", "a list"), ("hello\n", "'hello'"), ("42", "42")])
def test_non_mapping_document(text: str, shown: str) -> None:
    (problem,) = problems_of(text)
    assert f"the document is {shown}, expected a mapping" in problem


def test_yaml_syntax_error_names_line_and_column() -> None:
    text = "name: t\nmethod: grid\nparameters:\n  epochs: {value: 1\nmetric: x\n"
    (problem,) = problems_of(text)
    assert problem.startswith("line 5, column ") and "YAML syntax error" in problem
    (problem,) = problems_of("name: t\n  method: grid\n")
    assert problem.startswith("line 2, column 9: YAML syntax error: mapping values are not allowed here")


def test_python_tag_refused_and_never_executed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    text = f'name: !!python/object/apply:os.system ["touch {marker}"]\nmethod: grid\n'
    (problem,) = problems_of(text)
    assert "refused YAML tag '!!python/object/apply:os.system'" in problem
    assert not marker.exists()
    (problem,) = problems_of("name: !!python/name:os.system\n")
    assert "refused YAML tag '!!python/name:os.system'" in problem
    (problem,) = problems_of("name: !custom x\n")
    assert "refused YAML tag '!custom'" in problem


@pytest.mark.parametrize("text", [
    "a: 2001-13-45\n",                              # PyYAML raises ValueError building the date
    "a: " + "9" * 5000 + "\n",                      # ValueError: int over Python's 4300-digit limit
    "a: " + "[" * 1000 + "]" * 1000 + "\n",         # RecursionError inside PyYAML
    "parameters: {epochs: {values: " + "[" * 300 + "]" * 300 + "}}\n",  # deep but loadable
    b"\xff\xfe\x00\xd8",                            # undecodable bytes
    "name: a\x00b\n",                               # control character
])
def test_hostile_yaml_is_a_spec_error(text: str | bytes) -> None:
    problems_of(text)


def test_load_missing_file_and_directory(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(SpecError) as info:
        load(missing)
    assert str(info.value).startswith(f"{missing}: cannot read the spec file")
    with pytest.raises(SpecError, match="cannot read the spec file"):
        load(tmp_path)


def test_load_names_sweep_after_file(tmp_path: Path) -> None:
    path = tmp_path / "my_sweep.yaml"
    path.write_text(BASE.replace("name: t\n", ""))
    assert load(path).name == "my_sweep"
    bad = tmp_path / "my sweep.yaml"
    bad.write_text(BASE.replace("name: t\n", ""))
    with pytest.raises(SpecError, match="name: 'my sweep' is not a safe sweep name"):
        load(bad)


# --- size guard ------------------------------------------------------------------------------


def test_huge_grid_refused_unless_allowed() -> None:
    seeds = list(range(1000))
    text = yaml.safe_dump(merged(f"parameters: {{seed: {{values: {seeds}}}, batch_size: {{values: {list(range(1, 102))}}}}}"))
    (problem,) = problems_of(text)
    assert problem.startswith(f"parameters: the grid has 202,000 trials, more than {MAX_GRID:,}")
    assert "--yes" in problem
    assert loads(text, allow_huge=True).grid_size() == 202_000
    text = yaml.safe_dump(merged(f"{{method: random, run_cap: {MAX_GRID + 1}}}"))
    assert "run_cap: 100,001 trials is more than" in problems_of(text)[0]
    assert loads(text, allow_huge=True).run_cap == MAX_GRID + 1


# --- overrides -------------------------------------------------------------------------------


def test_overrides_apply_to_a_copy() -> None:
    doc = yaml.safe_load((SPACES / "optim_loss.yaml").read_text())
    before = copy.deepcopy(doc)
    spec = from_dict(doc, overrides=[
        "parameters.epochs.value=2",
        "sweeper.max_concurrent=1",
        "parameters.seed.values=[0,1,2]",
        "steps_per_epoch=4",            # shorthand for parameters.steps_per_epoch.value
        "optimizer=[adam,sgd]",         # shorthand with a list sets values
        "parameters.learning_rate.values=[0.001, 0.01]",  # replaces the fixed value
        "sweeper.resources.accelerator_type=null",
        "name = renamed",
    ])
    assert doc == before
    assert spec.param("epochs").value == 2 and spec.max_concurrent == 1
    assert spec.param("seed").values == (0, 1, 2)
    assert spec.param("steps_per_epoch").value == 4
    assert spec.param("optimizer").values == ("adam", "sgd")
    assert spec.param("learning_rate").values == (0.001, 0.01)
    assert spec.resources.accelerator_type is None and spec.name == "renamed"
    assert spec.grid_size() == 2 * 5 * 3 * 2


def test_overrides_on_load_and_new_blocks(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(BASE)
    text_before = path.read_text()
    spec = load(path, ["sweeper.dataset.name=gopro", "early_terminate={type: hyperband, min_iter: 1}"])
    assert spec.dataset.name == "gopro" and spec.early_terminate.eta == 3
    assert path.read_text() == text_before


def test_removal_turns_a_race_into_the_winners_longer_grid() -> None:
    # The README's rule for a race's winner: the same spec, unraced, one configuration, seeds
    # 0-2, 1.5x the epochs; then the other way, a grid's seeds handed to a race.
    doc = yaml.safe_load((SPACES / "lr_rho_race.yaml").read_text())
    before = copy.deepcopy(doc)
    longer = from_dict(doc, overrides=["~sweeper.race", "name=lr_rho_longer", "learning_rate=0.003", "rho=0.8",
                                       "seed=[0,1,2]", "epochs=68"])
    assert doc == before and from_dict(doc).race is not None
    assert longer.race is None and longer.name == "lr_rho_longer" and longer.grid_size() == 3
    assert [t.params["seed"] for t in expand(longer)] == [0, 1, 2]
    assert {(t.params["learning_rate"], t.params["rho"], t.params["epochs"]) for t in expand(longer)} == {(0.003, 0.8, 68)}
    grid = yaml.safe_load((SPACES / "optim_loss.yaml").read_text())
    raced = from_dict(grid, overrides=["~seed", "sweeper.race={seeds: {first: 2, max: 4}}"])
    assert raced.race is not None and raced.race.max == 4 and "seed" not in {p.name for p in raced.parameters}
    with pytest.raises(SpecError) as err:  # the seed left in: the race refuses it, as in a file
        from_dict(grid, overrides=["sweeper.race={seeds: {first: 2, max: 4}}"])
    assert any(p.startswith("parameters.seed: a race runs seeds 0 to 3 itself") for p in err.value.problems)


def test_an_empty_race_block_is_refused_not_a_default_race() -> None:
    problems = problems_of(BASE + "sweeper: {race: null}\n")
    assert problems == ("sweeper.race: is empty (null); give {seeds: {first: 3, max: 10}, alpha: 0.05, "
                        "test: friedman}, or remove it (--set '~sweeper.race') for a plain grid",), problems


@pytest.mark.parametrize(("item", "expected"), [
    ("~sweeper.rcae", "--set '~sweeper.rcae': sweeper.rcae is not in the spec; nothing to remove"),
    ("~epochs=2", "--set '~epochs=2': a removal takes no value; expected ~dotted.key"),
    ("~", "--set '~': empty key; expected ~dotted.key"),
    ("~name.x", "--set '~name.x': name.x is not in the spec; nothing to remove"),
    ("~seed", "--set '~seed': parameters.seed is not in the spec; nothing to remove"),
    ("epochs", "--set 'epochs': expected key=value"),
    ("=3", "--set '=3': empty key"),
    ("a..b=1", "--set 'a..b=1': empty key"),
    ("epochs=[1", "--set 'epochs=[1': the value is not valid YAML"),
    ("name.x=1", "--set 'name.x=1': name is 't', not a mapping"),
    ("epochs=0", "parameters.epochs.value: 0 is too small"),
    ("parameters.epoch.value=2", "parameters.epoch: unknown parameter 'epoch' (did you mean 'epochs'?)"),
])
def test_bad_overrides(item: str, expected: str) -> None:
    problems = problems_of(BASE, overrides=[item])
    assert any(expected in p for p in problems), problems


# --- W&B schema plumbing and import hygiene --------------------------------------------------


def test_wandb_schema_violations_become_problems(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wandb_schema, "wandb_checker", lambda: (lambda doc: ["boom", "boom"]))
    assert problems_of(BASE) == ("(W&B sweep schema): boom",)
    monkeypatch.setattr(wandb_schema, "wandb_checker", lambda: None)  # sweeps not installed
    assert loads(BASE).name == "t"


def test_missing_sweeps_is_skipped_with_one_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "sweeps", None)  # makes `from sweeps import ...` raise ImportError
    wandb_schema.wandb_checker.cache_clear()
    try:
        with caplog.at_level(logging.WARNING, logger=wandb_schema.__name__):
            assert loads(BASE).name == "t"
            assert loads(BASE.replace("name: t", "name: u")).name == "u"
    finally:
        wandb_schema.wandb_checker.cache_clear()  # later tests import the real sweeps again
    warned = [r for r in caplog.records if r.name == wandb_schema.__name__]
    assert len(warned) == 1, warned
    assert warned[0].levelno == logging.WARNING
    message = warned[0].getMessage()
    assert "W&B sweep schema check skipped" in message and "'sweeps' package is not installed" in message
    assert "pip install --no-deps 'sweeps>=0.2,<0.4' jsonschema jsonref pydantic" in message


def test_docstring_example_loads() -> None:
    doc = sweeper.spec.__doc__
    assert doc is not None
    example = doc.split("::\n\n", 1)[1].split("\n\n", 1)[0]  # the indented block after "::"
    spec = loads(textwrap.dedent(example))
    assert spec.name == "lr_search" and spec.early_terminate is not None
    assert wandb_violations(spec.wandb_config()) == []


def test_import_spec_does_not_import_tensorflow_keras_ray() -> None:
    code = (
        "import sys, sweeper.spec as s; s.load('search_spaces/lr_rho_bayes.yaml'); "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'ray')]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)


# --- fuzzing ---------------------------------------------------------------------------------

VALID_KEYS = (
    *PARAMETER_NAMES, "name", "method", "metric", "parameters", "early_terminate", "run_cap", "sweeper",
    "value", "values", "distribution", "min", "max", "q", "goal", "type", "min_iter", "eta", "max_iter",
    "dataset", "resources", "max_concurrent", "max_failures", "cpu", "gpu", "accelerator_type", "fallback", "dir",
)
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)
LEAVES = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), TEXT,
    st.sampled_from(["grid", "random", "bayes", "val_psnr", "maximize", "adam", "mae+0.1*sobel", "uniform",
                     "int_uniform", "log_uniform_values", "hyperband", "cpu", "T4", "synthetic"]),
)
KEYS = st.one_of(st.sampled_from(VALID_KEYS), TEXT, st.integers(), st.booleans(), st.none())
TREES = st.recursive(
    LEAVES,
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(KEYS, children, max_size=5)),
    max_leaves=25,
)


def _block(keys: tuple[str, ...]) -> st.SearchStrategy[dict[Any, Any]]:
    return st.dictionaries(st.one_of(st.sampled_from(keys), TEXT), st.one_of(LEAVES, st.lists(LEAVES, max_size=4)), max_size=4)


# Valid values per parameter, plus near misses (boundaries, wrong types) and random leaves.
GOOD = {
    "optimizer": st.sampled_from(["adam", "rmsprop", "sgd", "nadam"]),
    "loss": st.sampled_from(["mae", "mse", "sobel", "mae+0.1*sobel", "huber + 0.5*fourier"]),
    "learning_rate": st.floats(1e-5, 1.0),
    "rho": st.floats(0.05, 0.95),
    "momentum": st.floats(0.0, 0.95),
    "seed": st.integers(0, 100),
    "epochs": st.integers(1, 20),
    "steps_per_epoch": st.integers(1, 20),
    "batch_size": st.integers(1, 20),
    "patch_size": st.integers(2, 32).map(lambda n: 4 * n),
    "precision": st.sampled_from(["float32", "mixed_bfloat16", "mixed_float16", "auto"]),
}
NEAR = st.sampled_from([0, 1, -1, 0.0, 1.0, 8, 66, 2**60, True, None, "x", "1e-3", float("inf")])


def _mostly(good: st.SearchStrategy[Any], other: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``good`` 80% of the time. (st.one_of flattens nested one_ofs, so repeating
    ``good`` in it would not weight it: a wide ``other`` would swamp it.)"""
    return st.integers(0, 9).flatmap(lambda i: good if i < 8 else other)


def _param_block(name: str) -> st.SearchStrategy[Any]:
    good = st.one_of(
        st.builds(lambda v: {"value": v}, GOOD[name]),
        st.builds(lambda v: {"values": v}, st.lists(GOOD[name], min_size=1, max_size=3, unique=True)),
    )
    near = st.one_of(GOOD[name], NEAR)
    bad = st.one_of(
        st.builds(lambda v: {"value": v}, near),
        st.builds(lambda v: {"values": v}, st.lists(near, min_size=1, max_size=4, unique_by=repr)),
        st.fixed_dictionaries(
            {"distribution": st.sampled_from(["uniform", "int_uniform", "log_uniform_values", "q_uniform", "normal"]),
             "min": near, "max": near},
            optional={"q": st.sampled_from([1, 4, 0.5, 0])},
        ),
        _block(("value", "values", "distribution", "min", "max", "q")),
    )
    return _mostly(good, bad)


# Spec-shaped documents with random leaves reach the deep checks that random trees rarely do.
SKELETONS = st.fixed_dictionaries(
    {
        "name": _mostly(st.just("fz"), LEAVES),
        "method": _mostly(st.sampled_from(["grid", "random", "bayes"]), LEAVES),
        "metric": _mostly(
            st.sampled_from([{"name": "val_psnr", "goal": "maximize"}, {"name": "val_mae", "goal": "minimize"}]),
            _block(("name", "goal")),
        ),
        "parameters": st.sampled_from(PARAMETER_NAMES).flatmap(
            lambda first: st.fixed_dictionaries(
                {first: _param_block(first)}, optional={n: _param_block(n) for n in PARAMETER_NAMES if n != first}
            )
        ),
    },
    optional={
        "run_cap": _mostly(st.integers(1, 50), LEAVES),
        "early_terminate": _mostly(
            st.builds(lambda i, e: {"type": "hyperband", "min_iter": i, "eta": e}, st.integers(0, 3), st.sampled_from([1, 2, 3.5])),
            _block(("type", "min_iter", "eta", "max_iter")),
        ),
        "sweeper": st.fixed_dictionaries({}, optional={
            "dataset": _mostly(st.just({"dir": "d", "name": "n"}), _block(("dir", "name"))),
            "resources": _mostly(
                st.just({"cpu": 1, "gpu": 0, "accelerator_type": None}), _block(("cpu", "gpu", "accelerator_type", "fallback"))
            ),
            "max_concurrent": _mostly(st.integers(0, 4), LEAVES),
            "max_failures": _mostly(st.integers(-1, 4), LEAVES),
        }),
    },
)
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _spec_or_spec_error(text: str | bytes) -> None:
    try:
        spec = loads(text)
    except SpecError as err:
        assert err.problems and all(p and "\n" not in p for p in err.problems)
        return
    assert isinstance(spec, SweepSpec)
    assert from_dict(spec.to_dict()) == spec
    assert wandb_violations(spec.wandb_config()) == []


@FUZZ
@given(TREES)
def test_fuzz_random_structures(tree: Any) -> None:
    _spec_or_spec_error(yaml.safe_dump(tree, allow_unicode=True))


@FUZZ
@given(SKELETONS)
def test_fuzz_spec_shaped_documents(doc: dict[str, Any]) -> None:
    _spec_or_spec_error(yaml.safe_dump(doc, allow_unicode=True))


@FUZZ
@given(st.one_of(st.binary(max_size=200), st.text(max_size=200)))
def test_fuzz_random_bytes_and_text(data: str | bytes) -> None:
    _spec_or_spec_error(data)
