"""Reading a search space: YAML text or a parsed document -> a validated :class:`SweepSpec`.

The document is checked piece by piece so that every problem is reported in one
:class:`SpecError`: its structure here (keys, shapes, blocks), its field values by
:func:`sweeper.spec.sweep.spec_problems`, once.
"""

from __future__ import annotations

import copy
import dataclasses
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from model.errors import suggest
from model.params import PARAMETER_NAMES, check_param, is_int
from sweeper.spec import wandb_schema
from sweeper.spec.checks import SpecError, mapping, show, unknown_keys
from sweeper.spec.overrides import apply_overrides
from sweeper.spec.params import EXAMPLES, PARAM_KEYS, Param, grid_size, values_problems
from sweeper.spec.race import Race
from sweeper.spec.sweep import MAX_GRID, DatasetConfig, Hyperband, Resources, SweepSpec, spec_problems

__all__ = ["from_dict", "load", "loads"]

_TOP_KEYS = ("early_terminate", "method", "metric", "name", "parameters", "run_cap", "sweeper")
# W&B sweep keys that make sense only to W&B's own agent; named so the message can say why.
_WANDB_ONLY_KEYS = (
    "apiVersion", "command", "controller", "description", "entity", "image_uri", "job",
    "kind", "metrics", "program", "project", "scheduler",
)
_SWEEPER_KEYS = ("dataset", "max_concurrent", "max_failures", "race", "resources")
_METRIC_KEYS = ("goal", "name")
_MAX_FILE_BYTES = 10 * 1024 * 1024  # a search space is a page of text; refuse anything absurd


def load(path: str | Path, overrides: Sequence[str] = (), *, allow_huge: bool = False) -> SweepSpec:
    """Read and validate a search-space YAML file.

    Args:
        path: the file. Its stem is the sweep name when the file has no ``name:``.
        overrides: ``--set`` items, ``"dotted.key=value"`` (value read as YAML) or the shorthand
            ``"epochs=2"`` for ``parameters.epochs.value`` (a list value sets ``values``).
        allow_huge: accept more than :data:`~sweeper.spec.MAX_GRID` trials (the CLI's ``--yes``).

    Raises:
        SpecError: every problem found, one line each (exit status 2).
    """
    source = str(path)
    try:
        with open(path, "rb") as handle:
            data = handle.read(_MAX_FILE_BYTES + 1)
    except OSError as err:
        raise SpecError([f"cannot read the spec file: {err.strerror or err}; check the path"], source) from None
    if len(data) > _MAX_FILE_BYTES:
        limit = _MAX_FILE_BYTES // 2**20
        raise SpecError([f"file is larger than {limit} MB; a search space is a page of YAML"], source)
    return _load_text(data, source, overrides, allow_huge, default_name=Path(path).stem)


def loads(
    text: str | bytes, source: str = "<string>", overrides: Sequence[str] = (), *, allow_huge: bool = False
) -> SweepSpec:
    """Validate a search space given as YAML text; like :func:`load` but ``name:`` is required.

    Raises:
        SpecError: every problem found, each line prefixed by ``source``.
    """
    return _load_text(text, source, overrides, allow_huge, default_name=None)


def from_dict(
    document: Mapping[str, Any], source: str = "<dict>", overrides: Sequence[str] = (), *, allow_huge: bool = False,
    wandb_schema_check: bool = True,
) -> SweepSpec:
    """Validate an already-parsed document (e.g. ``SweepSpec.to_dict()``); never mutates it.

    Args:
        wandb_schema_check: Also check the document against W&B's sweep schema. Reading back a
            spec the sweeper wrote (``<sweep>/spec.yaml``) need not: it passed at ``sweeper run``,
            and the check takes over a second (it imports ``sweeps`` and its dependencies).

    Raises:
        SpecError: every problem found.
    """
    return _from_document(document, source, overrides, allow_huge, default_name=None,
                          wandb_schema_check=wandb_schema_check)


# ---------------------------------------------------------------------------------------------
# YAML


def _load_text(
    text: str | bytes, source: str, overrides: Sequence[str], allow_huge: bool, default_name: str | None
) -> SweepSpec:
    """Parse ``text`` with ``yaml.safe_load`` only, then validate the document."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise SpecError([_yaml_problem(err)], source) from None
    except RecursionError:
        raise SpecError(["the YAML is nested too deeply"], source) from None
    except Exception as err:  # noqa: BLE001 - PyYAML raises ValueError etc. on hostile input (dates, huge ints)
        raise SpecError([f"cannot read the YAML: {type(err).__name__}: {err}"], source) from None
    if document is None:
        raise SpecError(["the file is empty; a spec needs name, method, metric and parameters"], source)
    return _from_document(document, source, overrides, allow_huge, default_name)


def _yaml_problem(err: yaml.YAMLError) -> str:
    """One line for a YAML error: where it is, and what; tags that build objects are named."""
    if isinstance(err, yaml.reader.ReaderError):
        return f"byte {err.position}: not readable as YAML text: {err.reason}"
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "YAML"
    problem = getattr(err, "problem", None) or str(err)
    tag = re.search(r"constructor for the tag '([^']*)'", problem)
    if tag:
        shown = tag.group(1).replace("tag:yaml.org,2002:", "!!")
        why = "tags that build Python objects are never run" if "python/" in shown else "only plain YAML is read"
        return f"{where}: refused YAML tag {shown!r}: {why}; only yaml.safe_load is used"
    context = getattr(err, "context", None)
    return f"{where}: YAML syntax error: {problem}" + (f" ({context})" if context else "")


# ---------------------------------------------------------------------------------------------
# Document -> spec


def _from_document(
    document: Any, source: str, overrides: Sequence[str], allow_huge: bool, default_name: str | None,
    wandb_schema_check: bool = True,
) -> SweepSpec:
    """Apply ``overrides`` to a copy of ``document``, build the spec, then check W&B's schema."""
    if not isinstance(document, dict):
        expected = "expected a mapping with name, method, metric and parameters"
        raise SpecError([f"the document is {show(document)}, {expected}"], source)
    try:
        # Overrides go to a copy: the caller's document is never changed.
        doc = copy.deepcopy(document)
        problems = apply_overrides(doc, overrides)
        spec, more = _build(doc, allow_huge, default_name)
    except RecursionError:
        raise SpecError(["the document is nested too deeply"], source) from None
    problems += more
    if spec is not None and not problems and wandb_schema_check:
        # Through the module, so tests can replace wandb_schema.wandb_checker.
        problems += wandb_schema.schema_problems({k: v for k, v in doc.items() if k != "sweeper"})
    if problems or spec is None:
        raise SpecError(problems or ["the spec is incomplete"], source)
    return spec


def _build(doc: dict[Any, Any], allow_huge: bool, default_name: str | None) -> tuple[SweepSpec | None, list[str]]:
    """Check the document piece by piece, collecting every problem; build the spec if none.

    Each rule runs once. The structure (keys, shapes, blocks) is checked here. The field
    values are checked by constructing :class:`SweepSpec`, whose ``__post_init__`` runs
    :func:`spec_problems`; when the structure is already broken no spec can be built, so
    :func:`spec_problems` is called here instead, on the fields that could be read.
    """
    problems, fields = _read_fields(doc, default_name)
    # Loader-only rule: a direct SweepSpec(...) assumes allow_huge.
    size_problems = [] if allow_huge else _size_problems(fields)
    if problems:
        return None, problems + spec_problems(fields) + size_problems
    try:
        spec = SweepSpec(**fields)
    except SpecError as err:
        return None, [*err.problems, *size_problems]
    return (None if size_problems else spec), size_problems


def _read_fields(doc: dict[Any, Any], default_name: str | None) -> tuple[list[str], dict[str, Any]]:
    """The :class:`SweepSpec` fields ``doc`` gives, and the problems with its structure.

    Returns:
        ``(problems, fields)``: ``fields`` holds only what could be read (a block that failed
        is left out); the values of the top-level fields are not checked here.
    """
    problems: list[str] = []
    for key in doc:
        if key in _WANDB_ONLY_KEYS:
            problems.append(f"{key}: a W&B agent key sweeper does not use (it runs and tracks trials itself); remove it")
        elif key not in _TOP_KEYS:
            hint = suggest(str(key), _TOP_KEYS)
            problems.append(f"{key}: unknown top-level key {show(key)}{hint}; valid: {', '.join(_TOP_KEYS)}")
    for key, example in (("method", "method: grid"), ("metric", "metric: {name: val_psnr, goal: maximize}"),
                         ("parameters", "parameters: {epochs: {value: 3}}")):
        if key not in doc:
            problems.append(f"{key}: missing; add e.g. {example}")
    # SweepSpec fields the document gives (checked even when null), keyed by field name.
    fields: dict[str, Any] = {key: doc[key] for key in ("name", "method", "run_cap") if key in doc}
    if "name" not in fields:
        if default_name is None:
            problems.append("name: missing; add e.g. name: optim_loss (it names the results folder)")
        else:
            fields["name"] = default_name
    if "run_cap" in fields and fields["run_cap"] is None:
        # SweepSpec reads None as "not given"; in a file it is a mistake, and still "given".
        problems.append("run_cap: is empty (null); give a whole number >= 1 or remove it")

    metric = mapping("metric", doc["metric"], "{name: val_psnr, goal: maximize}", problems) if "metric" in doc else None
    if metric is not None:
        problems += unknown_keys("metric", metric, _METRIC_KEYS)
        if "name" not in metric:
            problems.append("metric.name: missing; add e.g. name: val_psnr")
        else:
            fields["metric"], fields["goal"] = metric["name"], metric.get("goal")

    params = _build_params(doc["parameters"], problems) if "parameters" in doc else []
    if params:
        # Left out when empty: the problem is already reported, and the relating rules
        # still run on no parameters, as they always have.
        fields["parameters"] = tuple(params)

    if "early_terminate" in doc:
        block = doc["early_terminate"]
        example = "{type: hyperband, min_iter: 1, eta: 3}"
        if block is None:
            problems.append(f"early_terminate: is empty (null); remove it or give {example}")
        elif (block := mapping("early_terminate", block, example, problems)) is not None:
            for key in ("type", "min_iter"):
                if key not in block:
                    problems.append(f"early_terminate.{key}: missing; e.g. {example}")
            if (hyperband := _build_block(Hyperband, block, problems, required=("type", "min_iter"))) is not None:
                fields["early_terminate"] = hyperband

    sweeper = mapping("sweeper", doc.get("sweeper"), "{dataset: {dir: data, name: synthetic}}", problems)
    if sweeper is not None:
        problems += unknown_keys("sweeper", sweeper, _SWEEPER_KEYS)
        for key, cls, example in (("dataset", DatasetConfig, "{dir: data, name: synthetic}"),
                                  ("resources", Resources, "{cpu: 1, gpu: 1}")):
            block = mapping(f"sweeper.{key}", sweeper.get(key), example, problems)
            if block is not None and (built := _build_block(cls, block, problems)) is not None:
                fields[key] = built
        fields.update({key: sweeper[key] for key in ("max_concurrent", "max_failures") if key in sweeper})
        if "race" in sweeper:
            example = "{seeds: {first: 3, max: 10}, alpha: 0.05, test: friedman}"
            if sweeper["race"] is None:
                # Not a default race: `race:` left empty is more likely a slip than a wish.
                problems.append(f"sweeper.race: is empty (null); give {example}, or remove it "
                                "(--set '~sweeper.race') for a plain grid")
            elif (block := mapping("sweeper.race", sweeper["race"], example, problems)) is not None:
                kwargs, shape = Race.from_block(block)
                problems += shape
                try:
                    fields["race"] = Race(**kwargs)
                except SpecError as err:
                    problems += err.problems
    return problems, fields


def _size_problems(fields: Mapping[str, Any]) -> list[str]:
    """The trial-count guard: more than :data:`MAX_GRID` trials needs ``allow_huge``."""
    method, run_cap = fields.get("method"), fields.get("run_cap")
    if method == "grid" and (size := grid_size(fields.get("parameters", ()))) > MAX_GRID:
        return [
            f"parameters: the grid has {size:,} trials, more than {MAX_GRID:,}; "
            "shorten the values lists, or confirm with --yes (allow_huge=True)"
        ]
    if method in ("random", "bayes") and is_int(run_cap) and run_cap > MAX_GRID:
        return [f"run_cap: {run_cap:,} trials is more than {MAX_GRID:,}; lower it, or confirm with --yes (allow_huge=True)"]
    return []


def _build_params(block: Any, problems: list[str]) -> list[Param]:
    """Every valid :class:`Param` of ``parameters:``; problems with the others are collected."""
    params_block = mapping("parameters", block, "{optimizer: {values: [adam, rmsprop]}}", problems)
    if params_block is None:
        return []
    if not params_block:
        problems.append("parameters: is empty; list at least one, e.g. {epochs: {value: 3}}")
    params: list[Param] = []
    for name, raw in params_block.items():
        path = f"parameters.{name}"
        if name not in PARAMETER_NAMES:
            problems.append(f"{path}: {check_param(name, None)}")
            continue
        if not isinstance(raw, dict):
            kind = "values" if isinstance(raw, list) else "value"
            problems.append(
                f"{path}: expected a mapping like {{{kind}: ...}}, got {show(raw)}; write {name}: {{{kind}: ...}}"
            )
            continue
        problems += unknown_keys(path, raw, PARAM_KEYS)
        kwargs = {k: raw[k] for k in PARAM_KEYS if k in raw}
        if "value" in kwargs and kwargs["value"] is None:
            problems.append(f"{path}.value: is empty (null); give a value, e.g. {EXAMPLES[name]!r}")
            continue
        if "values" in kwargs and not isinstance(kwargs["values"], list):
            problems += values_problems(path, name, kwargs["values"])
            continue
        # W&B's explicit spellings of the default kinds.
        if kwargs.get("distribution") == "categorical" and "values" in kwargs:
            del kwargs["distribution"]
        elif kwargs.get("distribution") == "constant" and "value" in kwargs:
            del kwargs["distribution"]
        elif not {"distribution", "value", "values"} & kwargs.keys() and {"min", "max"} & kwargs.keys():
            # W&B infers the distribution from the bounds' types; so do we.
            whole_bounds = is_int(kwargs.get("min")) and is_int(kwargs.get("max"))
            kwargs["distribution"] = "int_uniform" if whole_bounds else "uniform"
        if "values" in kwargs:
            kwargs["values"] = tuple(kwargs["values"])
        try:
            params.append(Param(name, **kwargs))
        except SpecError as err:
            problems += err.problems
    return params


def _build_block(cls: type, block: dict[Any, Any], problems: list[str], required: Sequence[str] = ()) -> Any:
    """Build a block dataclass from a mapping: unknown keys and field problems are collected.

    Returns:
        The block, or ``None`` when a required key is missing or a value is bad.
    """
    valid = tuple(f.name for f in dataclasses.fields(cls))
    problems += unknown_keys(cls.PATH.rstrip("."), block, valid)
    if any(key not in block for key in required):
        return None
    try:
        return cls(**{k: v for k, v in block.items() if k in valid})
    except SpecError as err:
        problems += err.problems
        return None
