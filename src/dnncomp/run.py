"""The end-to-end pipeline behind ``dnncomp run``: train -> compress -> export -> evaluate.

Everything a run makes lives in ``runs/<dataset>/<model>/``, described by
``manifest.json``. Each stage records the inputs it was computed from and the
sha256 of what it wrote; a rerun skips a stage whose recorded inputs match and
whose outputs are still on disk unchanged, so a killed run resumes where it
stopped. Every artifact is written to a temporary name and renamed into place.

Device split: with ``eval_only=True`` this module never imports TensorFlow (the
model registry's specs, the data loaders and the LiteRT evaluator don't), so a
Jetson can evaluate what a workstation made.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import shlex
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .errors import RunError, RunLockedError, StorageError
from .fileio import TEMP_GLOB, atomic_write_json, sha256_file
from .results import KERAS_BASELINE, measured_on_record, now_iso

MANIFEST_SCHEMA = "dnncomp.manifest/1"
STUDY_TECHNIQUES = ["float", "qat", "prune", "cluster"]
KERAS_TIMING_IMAGES = 200


def is_jetson() -> bool:
    """The study detected its device the same way."""
    return Path("/etc/nv_tegra_release").exists()


@dataclass
class RunConfig:
    """What one ``dnncomp run`` makes, and how: the argument of :func:`run_pipeline`.

    ``dataset``: mnist, cifar10, gtsrb or ``folder:PATH``. ``model``: a family, a registered
    member or the user's Keras file (None: the dataset's default); a run records the resolved
    spec's name here. ``techniques``: recipe names (None: the study's float,qat,prune,cluster).
    ``epochs``/``batch_size``/``patience``: None takes the model's training schedule.
    ``first_n``: also score the first N test images. ``threads``: LiteRT threads for latency.
    ``latency_min_count``/``latency_min_seconds``: each variant's latency is timed for at least
    this many calls and seconds (a quick look: 30 and 0.1; the study-comparable default: 200 and 2).
    ``eval_only``: None means on for an NVIDIA Jetson. ``recipe_params``: recipe -> {key: value}
    overrides. ``val_split`` and ``preprocessing`` choose the target
    (:func:`dnncomp.run_target.resolve_target`); the stages they change record them.
    """

    dataset: str
    model: str | None = None
    techniques: list[str] | None = None
    out: Path = Path("runs")
    data_dir: Path | None = None
    epochs: int | None = None
    batch_size: int | None = None
    patience: int | None = None
    seed: int = 0
    first_n: int = 1000
    threads: int = 1
    # batch-1 latency: at least this many timed calls and this many seconds (bench's LatencyConfig defaults)
    latency_min_count: int = 200
    latency_min_seconds: float = 2.0
    eval_only: bool | None = None
    recipe_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    verbose: int = 1
    wait: bool = False  # for the run dir's lock held by another process
    results_out: Path | None = None  # where manifest and results go when the run dir is read-only
    skip_bad: bool = False  # skip unreadable images (the data fingerprint records what was loaded)
    val_split: str | None = None
    preprocessing: Any = None  # a dnncomp.preprocess.Preprocessing from --input-range/--mean/--std
    # Issue 15 (run --mcu): TFLite Micro arena, flash, ops and TFLM-vs-LiteRT agreement of each int8
    # variant on the first N test images (0: all); None: not measured.
    mcu_images: int | None = None

    @property
    def run_dir(self) -> Path:
        from .run_target import run_dir_name, safe_name

        return self.out / run_dir_name(self.dataset) / safe_name(self.model)  # folder:/a/b -> folder-b

    @property
    def state_dir(self) -> Path:
        """Where this run writes manifest.json and results.json: the run dir, or --results-out."""
        return self.results_out or self.run_dir


# How to run, not what: never part of the recorded config. val_split and preprocessing choose the
# target before the run; the baseline and recipe stages record what they changed.
_OPERATIONAL = ("verbose", "wait", "results_out", "skip_bad", "val_split", "preprocessing")


_STAGE_ENTRY = {
    "type": "object",
    "properties": {
        "inputs": {"type": "object"},
        "outputs": {"type": "object", "additionalProperties": {"type": "string"}},
        "record": {"type": "object"},
    },
}
# The structure every reader of a manifest relies on; anything else is reported, never half-used.
MANIFEST_JSON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["schema"],
    "properties": {
        "schema": {"type": "string"},
        "stages": {"type": "object", "additionalProperties": _STAGE_ENTRY},
        "measurements": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "properties": {
                    "environment": {"type": ["object", "null"]},
                    "stages": {"type": "object", "additionalProperties": _STAGE_ENTRY},
                },
            },
        },
        "config": {"type": ["object", "null"]},
        "data": {"type": ["object", "null"]},
        "environment": {"type": ["object", "null"]},
    },
}


class Manifest:
    """manifest.json: config, versions, per-stage inputs, wall times and output hashes.

    Evaluation stages belong to the machine that measured them: their inputs hold a
    ``machine`` id, ``stages`` holds the latest measurement of each variant, and
    ``measurements[<machine id>]`` keeps every machine's own, so a run dir copied to a
    board and evaluated there keeps the workstation's records beside the board's.

    ``state_dir`` (default ``run_dir``) is where the manifest is written; a run dir on
    read-only media is read from ``run_dir`` and continued in ``state_dir``.
    Raises RunError for a manifest that is not JSON or not of the manifest's structure.
    """

    def __init__(self, run_dir: Path, state_dir: Path | None = None):
        self.run_dir = run_dir
        self.path = (state_dir or run_dir) / "manifest.json"
        self.data: dict[str, Any] = {"schema": MANIFEST_SCHEMA, "stages": {}}
        source = self.path if self.path.exists() or state_dir is None else run_dir / "manifest.json"
        if source.exists():
            self.data = self._load(source)

    @staticmethod
    def _load(path: Path) -> dict[str, Any]:
        import jsonschema

        move_away = "move it away to start the run afresh"
        try:
            loaded = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise RunError(f"{path}: unreadable manifest ({exc}); {move_away}") from exc
        error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(MANIFEST_JSON_SCHEMA).iter_errors(loaded))
        if error is not None:
            where = "/".join(str(p) for p in error.absolute_path) or "top level"
            raise RunError(f"{path}: unreadable manifest (at {where}: {error.message}); {move_away}")
        if loaded.get("schema") != MANIFEST_SCHEMA:
            raise RunError(f"{path}: schema {loaded.get('schema')!r} is not {MANIFEST_SCHEMA!r}; {move_away}")
        loaded.setdefault("stages", {})
        return upgrade_manifest(loaded)

    @property
    def stages(self) -> dict[str, dict[str, Any]]:
        return self.data["stages"]

    @property
    def measurements(self) -> dict[str, dict[str, Any]]:
        """machine id -> {"environment": ..., "stages": {stage: entry}}: every machine's evaluations."""
        return self.data.setdefault("measurements", {})

    def machine_entry(self, stage: str, machine: str) -> dict[str, Any] | None:
        """This machine's own entry for ``stage`` (None if it never measured it)."""
        entry = self.stages.get(stage)
        if entry and entry.get("inputs", {}).get("machine") == machine:
            return entry
        return self.measurements.get(machine, {}).get("stages", {}).get(stage)

    def is_done(self, stage: str, inputs: dict[str, Any]) -> bool:
        """A stage is done if it ran with the same inputs (on the same machine) and its outputs are intact."""
        machine = inputs.get("machine")
        entry = self.machine_entry(stage, machine) if machine is not None else self.stages.get(stage)
        if not entry or entry.get("inputs") != _jsonable(inputs):
            return False
        for name, digest in entry.get("outputs", {}).items():
            path = self.run_dir / name
            if not path.is_file() or sha256_file(path) != digest:
                return False
        self.stages[stage] = entry  # this machine's measurement is the current one again
        return True

    def record(self, stage: str, inputs: dict[str, Any], outputs: list[str], wall_s: float, **extra: Any) -> None:
        entry = {
            "inputs": _jsonable(inputs),
            "outputs": {name: sha256_file(self.run_dir / name) for name in outputs},
            "wall_s": round(wall_s, 3),
            "finished": now_iso(),
            **_jsonable(extra),
        }
        machine = inputs.get("machine")
        if machine is not None:
            previous = self.stages.get(stage)
            if previous and "record" in previous and previous.get("inputs", {}).get("machine") is None:
                # measured before records said where: kept, under a name that says so
                self.measurements.setdefault("unrecorded", {"environment": None, "stages": {}})["stages"].setdefault(
                    stage, previous
                )
            self.measurements.setdefault(machine, {"environment": None, "stages": {}})["stages"][stage] = entry
        self.stages[stage] = entry
        self.save()

    def note_machine(self, machine: str, environment: dict[str, Any]) -> None:
        """Remember the environment of a machine that measures in this run dir."""
        self.measurements.setdefault(machine, {"environment": None, "stages": {}})["environment"] = _jsonable(environment)

    def output_sha(self, stage: str, name: str) -> str | None:
        return self.stages.get(stage, {}).get("outputs", {}).get(name)

    def save(self) -> None:
        atomic_write_json(self.path, self.data)


def upgrade_manifest(manifest: dict[str, Any]) -> dict[str, Any]:
    """A manifest.json's content under today's names, changed in place and returned.

    Older dnncomp versions wrote the same settings under names since changed; read under the new ones,
    what they describe is still up to date and is not trained or measured again. Both the run
    (:class:`Manifest`) and the report read manifests through this.
    """
    _rename_training_recipe(manifest)
    _rename_first_n(manifest)
    return manifest


def _stage_maps(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """The current ``stages`` and every machine's own under ``measurements``."""
    return [
        manifest.get("stages") or {},
        *((m or {}).get("stages") or {} for m in (manifest.get("measurements") or {}).values()),
    ]


def _rename_training_recipe(manifest: dict[str, Any]) -> None:
    """Before the improved/tiny models' training "recipe" was renamed "schedule" (the word recipe means a
    compression recipe only), the baseline stage's settings held it under the old key."""
    for stages in _stage_maps(manifest):
        settings = ((stages.get("baseline") or {}).get("inputs") or {}).get("settings")
        if isinstance(settings, dict) and "recipe" in settings and "schedule" not in settings:
            settings["schedule"] = settings.pop("recipe")


def _rename_first_n(manifest: dict[str, Any]) -> None:
    """Before the first-N subset had one name (``--first-n``, ``first_n`` in results.json), the config and the
    evaluation stages' inputs called it ``limit``."""
    config = manifest.get("config")
    if isinstance(config, dict) and "limit" in config and "first_n" not in config:
        config["first_n"] = config.pop("limit")
    for stages in _stage_maps(manifest):
        for entry in stages.values():
            inputs = (entry or {}).get("inputs")
            if isinstance(inputs, dict) and "limit" in inputs and "first_n" not in inputs:
                inputs["first_n"] = inputs.pop("limit")


def _jsonable(obj: Any) -> Any:
    """Normalise to what survives a JSON round trip, so recorded and fresh inputs compare equal."""
    return json.loads(json.dumps(obj, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))


def _fingerprint(*arrays: np.ndarray) -> str:
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(str(array.shape).encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:16]


_current_stage: str | None = None


def set_current_stage(stage: str | None) -> None:
    """Remember which stage is running, so an interrupted run can say where it stopped."""
    global _current_stage
    _current_stage = stage


def current_stage() -> str | None:
    """The stage a run in this process is in (None outside a run)."""
    return _current_stage


LOCK_NAME = ".dnncomp.lock"
HOLDER_NAME = ".dnncomp.lock.json"


@contextlib.contextmanager
def run_dir_lock(
    directory: Path, *, wait: bool = False, say=lambda message: None, config: RunConfig | None = None
) -> Iterator[None]:
    """Hold an exclusive lock on ``directory`` (a run dir) for the body of the ``with``.

    The OS lock (``filelock``) dies with its process; beside it a small JSON file says who
    holds it (pid, host, since, command), so a second run can name the holder, and a holder
    file left by a killed process is recognised as stale. Temporary files of an interrupted
    writer are removed once the lock is ours. Raises RunLockedError when another process holds
    the lock and ``wait`` is false; with ``wait`` it blocks until the holder finishes.
    """
    from filelock import FileLock, Timeout

    lock = FileLock(directory / LOCK_NAME)
    holder_path = directory / HOLDER_NAME
    try:
        try:
            lock.acquire(timeout=0)
        except Timeout:
            holder = _describe_holder(holder_path)
            if not wait:
                raise RunLockedError(f"{directory}: in use by {holder}; wait for it to finish, or pass --wait") from None
            say(f"waiting for {holder} to finish with {directory} ...")
            lock.acquire()
    except OSError as exc:
        raise _unwritable(directory, exc, config) from exc
    try:
        if holder_path.exists():  # we hold the lock, so whoever wrote this died holding it
            say(f"stale lock of {_describe_holder(holder_path)} (that process is gone): taking over")
        leftovers = [p for p in directory.glob(TEMP_GLOB) if p.is_file()]
        for path in leftovers:
            path.unlink()
        if leftovers:
            say(f"removed {len(leftovers)} temporary file(s) an interrupted run left behind")
        atomic_write_json(
            holder_path,
            {
                "pid": os.getpid(),
                "host": platform.node(),
                "since": now_iso(),
                "command": " ".join(shlex.quote(a) for a in ["dnncomp", *sys.argv[1:]]),
            },
        )
        yield
    finally:
        try:
            holder_path.unlink(missing_ok=True)
        finally:
            lock.release()


def _describe_holder(holder_path: Path) -> str:
    try:
        holder = json.loads(holder_path.read_text())
        return f"pid {holder['pid']} on {holder['host']} since {holder['since']} ({holder.get('command', '?')})"
    except (OSError, ValueError, KeyError, TypeError):
        return "another dnncomp process"


def _unwritable(directory: Path, exc: Exception, config: RunConfig | None) -> Exception:
    """One line for a run dir that cannot be written: on read-only media, eval-only can write elsewhere."""
    from .fileio import storage_error

    if isinstance(exc, OSError):
        exc = storage_error(directory, exc)
        if isinstance(exc, OSError):
            return exc
    hint = (
        "; pass --results-out DIR to write manifest and results elsewhere"
        if config is not None and config.eval_only and config.results_out is None
        else ""
    )
    return StorageError(f"{exc}{hint}")


@dataclass(frozen=True)
class StageResult:
    """What a stage's action made: the files it wrote (names in the run dir) and what to record beside them."""

    outputs: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Stage:
    """One step of a run, as data: executed by :func:`execute_stages`.

    ``name`` is its manifest key (``baseline``, ``compress:qat``, ``evaluate:float``).
    ``inputs`` is called when the stage's turn comes (it may hash what an earlier stage
    wrote); the stage is skipped when the manifest holds the same inputs and its recorded
    outputs are intact. ``action`` does the work and returns a :class:`StageResult`.
    ``running`` is its progress line; ``up_to_date`` the line when skipped (None: silent).
    """

    name: str
    inputs: Callable[[], dict[str, Any]]
    action: Callable[[], StageResult]
    running: str
    up_to_date: str | None = None
    kind: str | None = None  # what its time is like, for the ETA (default: the name before ":")


def execute_stages(stages: list[Stage], manifest: Manifest, progress) -> list[str]:
    """Run each stage whose inputs changed or whose outputs are gone; record it. Returns the names run.

    ``progress`` is a :class:`dnncomp.console.StageProgress`. The manifest is saved after every
    stage, so a run killed in stage k resumes at stage k. Exceptions of an action propagate
    with nothing recorded for that stage.
    """
    progress.plan(
        [s.name for s in stages],
        {name: entry["wall_s"] for name, entry in manifest.stages.items() if isinstance(entry.get("wall_s"), (int, float))},
        {s.name: s.kind for s in stages if s.kind},
    )
    ran = []
    for stage in stages:
        set_current_stage(stage.name)
        inputs = stage.inputs()
        if manifest.is_done(stage.name, inputs):
            progress.skipped(stage.name)
            if stage.up_to_date:
                progress.line(stage.up_to_date)
            continue
        progress.running(stage.name, stage.running)
        start = time.perf_counter()
        result = stage.action()
        wall_s = time.perf_counter() - start
        manifest.record(stage.name, inputs, outputs=list(result.outputs), wall_s=wall_s, **result.extra)
        progress.done(stage.name, wall_s)
        ran.append(stage.name)
    return ran


# ---- the work itself, injected into the Pipeline (tests pass fakes) -----------------------------


def _load_data(dataset: str, *, data_dir: Path | None, image_size: tuple[int, int], skip_bad: bool):
    from .data import load_dataset

    return load_dataset(dataset, data_dir=data_dir, image_size=image_size, skip_bad=skip_bad)


def _train(spec, data, settings: dict[str, Any], run_dir: Path, verbose: int) -> tuple[list[Path], dict[str, Any]]:
    from .train import save_baseline, train_baseline

    model, history = train_baseline(spec, data.x_train, data.y_train, **settings, verbose=verbose)
    return save_baseline(model, run_dir), history


def _adopt(model_file: Path, run_dir: Path) -> list[Path]:
    from .run_target import adopt_baseline

    return adopt_baseline(model_file, run_dir)


def _compress(technique: str, params: dict[str, Any] | None, context: Callable[[], Any]) -> tuple[bytes, dict[str, Any]]:
    from .compress import apply_recipe

    result = apply_recipe(technique, context(), params)
    return result.tflite, result.info


def _evaluate_litert(artifact: Path, data, *, first_n: int, threads: int, latency_config) -> dict[str, Any]:
    from .bench import measure_latency
    from .evaluate import evaluate_accuracy, file_sizes

    return {
        "accuracy": evaluate_accuracy(artifact, data.x_test, data.y_test, first_n=first_n, threads=threads),
        "latency": measure_latency(artifact, data.x_test, config=latency_config),
        "size": file_sizes(artifact),
        **_anatomy_fields(artifact),
    }


def _evaluate_keras(baseline: Path, spec, data, *, first_n: int, preprocessing) -> dict[str, Any]:
    from .evaluate import accuracy_record
    from .train import keras_predict_latency, load_baseline, model_inputs

    model = load_baseline(baseline)
    x = model_inputs(spec, data.x_test, preprocessing)
    predictions = np.argmax(model.predict(x, batch_size=256, verbose=0), axis=1)
    return {
        "accuracy": accuracy_record(predictions, data.y_test, first_n=first_n),
        # The study averaged model.predict over its 1000 images; at ~70 ms a call, 200 calls give a
        # stable median and mean for a number that only shows framework overhead.
        "latency": keras_predict_latency(model, x[:KERAS_TIMING_IMAGES]),
    }


@dataclass(frozen=True)
class Workers:
    """What does the heavy work of a run; the Pipeline only decides what to run and records it.

    ``load_data(dataset, data_dir=, image_size=, skip_bad=)`` -> a :class:`dnncomp.data.Dataset`.
    ``train(spec, data, settings, run_dir, verbose)`` -> (files written, Keras history dict).
    ``adopt(model_file, run_dir)`` -> files written (a user's model as the baseline).
    ``compress(recipe, params, context)`` -> (.tflite bytes, info); ``context()`` builds the
    shared RecipeContext on first use. ``evaluate(artifact, data, first_n=, threads=,
    latency_config=)`` -> {accuracy, latency, size[, sparsity, anatomy]} of a .tflite with
    LiteRT. ``evaluate_keras(baseline.keras, spec, data, first_n=, preprocessing=)`` ->
    {accuracy, latency} of the study's Keras row.
    """

    load_data: Callable[..., Any] = _load_data
    train: Callable[..., tuple[list[Path], dict[str, Any]]] = _train
    adopt: Callable[[Path, Path], list[Path]] = _adopt
    compress: Callable[..., tuple[bytes, dict[str, Any]]] = _compress
    evaluate: Callable[..., dict[str, Any]] = _evaluate_litert
    evaluate_keras: Callable[..., dict[str, Any]] = _evaluate_keras


def run_pipeline(config: RunConfig | str, *, workers: Workers | None = None, **settings: Any) -> Path:
    """Train (or reuse) the baseline, apply each technique, evaluate everything. Returns the run dir.

    ``config`` is a :class:`RunConfig`, or the dataset name with the RunConfig's fields as
    keywords (``run_pipeline("mnist", model="tiny", techniques=["float", "ptq-int8"])``).
    Every setting is checked before the run dir is touched (RunError/RecipeError; DataError or
    ModelError for an unknown dataset or model, with the close match). The run dir is locked for
    the whole run: a second run into it raises RunLockedError naming the holder, or waits with
    ``wait=True``. ``results_out`` (eval-only) writes manifest and results.json there instead of
    the run dir, for a run dir on read-only media; the path returned is then ``results_out``.
    """
    from .run_target import resolve_target

    if "limit" in settings:  # first_n's old name, as `run --limit`
        settings["first_n"] = settings.pop("limit")
    if isinstance(config, str):
        config = RunConfig(config, **settings)
    elif settings:
        config = replace(config, **settings)
    techniques = list(config.techniques or STUDY_TECHNIQUES)
    _check_settings(
        epochs=config.epochs,
        batch_size=config.batch_size,
        patience=config.patience,
        first_n=config.first_n,
        threads=config.threads,
    )
    _check_recipe_params(config.recipe_params or {}, techniques)
    if not config.eval_only:
        from .compress import get_recipe

        for name in techniques:  # an unknown recipe fails now, not after an hour of training
            get_recipe(name).resolve_params((config.recipe_params or {}).get(name))
    if config.results_out is not None and not config.eval_only:
        raise RunError(
            "--results-out is for --eval-only (evaluating a run dir on read-only media); "
            "a full run writes its artifacts into the run dir: choose a writable --out"
        )
    # The model for this data (a family built for a folder's images and classes, a user's file) or a
    # one-line error naming the mistake, before anything is trained or written.
    target = resolve_target(
        config.dataset,
        config.model,
        val_split=config.val_split,
        data_dir=config.data_dir,
        skip_bad=config.skip_bad,
        preprocessing=config.preprocessing,
    )
    for note in target.notes:  # what was chosen for the user is said once, also under --quiet
        print(f"note: {note}", file=sys.stderr, flush=True)
    resolved = replace(
        config,
        model=target.spec.name,
        techniques=techniques,
        out=Path(config.out),
        data_dir=Path(config.data_dir) if config.data_dir else None,
        eval_only=is_jetson() if config.eval_only is None else config.eval_only,
        recipe_params=config.recipe_params or {},
        results_out=Path(config.results_out) if config.results_out else None,
    )
    return Pipeline(resolved, target, workers=workers).run()


def _check_settings(**settings: int | None) -> None:
    """The library's own range check (the CLI checks the same with Click): refused before anything is written."""
    minimum = {"epochs": 1, "batch_size": 1, "patience": 0, "first_n": 0, "threads": 1}
    for name, value in settings.items():
        if value is not None and value < minimum[name]:
            raise RunError(f"{name.replace('_', '-')} {value}: must be >= {minimum[name]}")


def _check_recipe_params(recipe_params: dict[str, dict[str, Any]], techniques: list[str]) -> None:
    """A --param for a recipe that does not run is a mistake (a typo, or a recipe left out): refuse it."""
    import difflib

    from .errors import RecipeError

    for prefix in recipe_params:
        if prefix in techniques:
            continue
        from .compress import list_recipes

        known = [r.name for r in list_recipes()]
        if prefix in known:
            raise RecipeError(
                f"--param {prefix}.*: recipe {prefix} is not in --techniques ({','.join(techniques)}); "
                "add it there or drop the --param"
            )
        close = difflib.get_close_matches(prefix, [*techniques, *known], n=1)
        hint = f"; did you mean {close[0]}?" if close else "; `dnncomp recipes` lists them"
        raise RecipeError(f"--param {prefix}.*: no recipe named {prefix!r}{hint}")


class Pipeline:
    """One run: builds its stages as data (:meth:`stages`) and runs them with :func:`execute_stages`.

    ``config`` is a resolved :class:`RunConfig` (model, techniques and eval_only set, as
    :func:`run_pipeline` makes it). ``target`` is the :class:`dnncomp.run_target.RunTarget`
    (None: the registered ``config.model``). ``workers`` does the work (default: TensorFlow
    training and recipes, LiteRT evaluation).
    """

    def __init__(self, config: RunConfig, target=None, *, workers: Workers | None = None):
        from .console import StageProgress
        from .models import get_model_spec

        self.config = config
        self.target = target  # a run_target.RunTarget: the spec made for this data, a user's model file
        self.workers = workers or Workers()
        self.spec = target.spec if target is not None else get_model_spec(config.model)
        # A user's model takes its own pixel mapping (recipes, Keras row, sidecars); None: pixel/255.
        self.preprocessing = target.preprocessing if target is not None else None
        self.image_size = target.image_size if target is not None else tuple(self.spec.image_size)
        self.run_dir = config.run_dir
        # Read only: a manifest of the wrong shape fails here, before anything is written.
        self.manifest = Manifest(self.run_dir, config.results_out)
        self.progress = StageProgress(config.verbose)
        self._recipe_context = None

    # -- orchestration ---------------------------------------------------------------

    def run(self) -> Path:
        """Run every stage under the run dir's lock; returns the run dir. Raises DnncompError subclasses."""
        cfg = self.config
        set_current_stage("loading data")
        data = self._load_data()  # reads only: a dataset that does not fit the model changes nothing
        state_dir = cfg.state_dir
        try:
            state_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _unwritable(state_dir, exc, cfg) from exc
        with run_dir_lock(state_dir, wait=cfg.wait, say=self.progress.line, config=cfg):
            return self._run_locked(data)  # the run dir, or --results-out where manifest and results went

    def _run_locked(self, data) -> Path:
        from .results import environment, machine_id

        cfg = self.config
        loaded_data = self.manifest.data.get("data")
        self.manifest = Manifest(self.run_dir, cfg.results_out)  # again: another run may have finished meanwhile
        self.machine = machine_id()
        env = environment()
        self.manifest.data.update(
            dataset=cfg.dataset,
            model=cfg.model,
            dnncomp_version=__version__,
            command=" ".join(shlex.quote(a) for a in ["dnncomp", *sys.argv[1:]]) if sys.argv else None,
            seed=cfg.seed,
            config=_jsonable({k: v for k, v in vars(cfg).items() if k not in _OPERATIONAL}),
            environment=env,
            data=loaded_data,
        )
        self.manifest.note_machine(self.machine, env)
        try:
            self.manifest.save()
        except StorageError as exc:
            raise _unwritable(cfg.state_dir, exc, cfg) from exc

        if cfg.eval_only:
            self.progress.line("eval-only: evaluating existing artifacts with LiteRT (no TensorFlow)")
        execute_stages(self.stages(data), self.manifest, self.progress)
        set_current_stage("results")
        results_path = self._write_results()
        set_current_stage(None)
        self.progress.line(f"results: {results_path}")
        return self.config.state_dir

    def stages(self, data) -> list[Stage]:
        """The run's stages in order: baseline, one per recipe, the Keras row, one evaluation per variant.

        Eval-only: the evaluations of the artifacts present (RunError if there are none).
        """
        stages = []
        if not self.config.eval_only:
            stages.append(self._baseline_stage(data))
            stages += [self._recipe_stage(technique, data) for technique in self.config.techniques]
            stages.append(self._keras_baseline_stage(data))
        stages += [self._evaluate_stage(technique, data) for technique in self._techniques_to_evaluate()]
        if self.config.mcu_images is not None:  # issue 15: run --mcu
            stages += [
                self._mcu_stage(technique, data) for technique in self._techniques_to_evaluate() if technique != KERAS_BASELINE
            ]
        return stages

    def _load_data(self):
        start = time.perf_counter()
        self.progress.line(f"loading {self.config.dataset} at {self.image_size[0]}x{self.image_size[1]}")
        data = self.workers.load_data(
            self.config.dataset, data_dir=self.config.data_dir, image_size=tuple(self.image_size), skip_bad=self.config.skip_bad
        )
        for line in data.meta.get("skipped", []):
            print(f"note: skipped unreadable image (--skip-bad): {line}", file=sys.stderr, flush=True)
        self.data_fingerprint = _fingerprint(data.x_train, data.y_train, data.x_test, data.y_test)
        self.constant_predictor_accuracy = constant_predictor_accuracy(data.y_test)
        self.manifest.data["data"] = {
            "fingerprint": self.data_fingerprint,
            "train": int(len(data.y_train)),
            "test": int(len(data.y_test)),
            "classes": data.num_classes,
            "source": str(data.meta.get("source", "")),
            "load_s": round(time.perf_counter() - start, 2),
        }
        if data.num_classes != self.spec.num_classes:
            raise RunError(
                f"model {self.spec.name} has {self.spec.num_classes} outputs but {self.config.dataset} has "
                f"{data.num_classes} classes; choose a model made for this dataset"
            )
        return data

    def _techniques_to_evaluate(self) -> list[str]:
        if not self.config.eval_only:
            return list(self.config.techniques)
        present = [t for t in self.config.techniques if (self.run_dir / f"{t}.tflite").is_file()]
        if not present:
            raise RunError(
                f"{self.run_dir}: no .tflite artifacts for {', '.join(self.config.techniques)}; "
                "run `dnncomp run` on a workstation first and copy the run directory here"
            )
        return present

    def _keras_verbose(self) -> int:
        """Keras progress bars in a terminal; one line per epoch in a log file."""
        if not self.config.verbose:
            return 0
        return 1 if sys.stdout.isatty() else 2

    # -- stages ----------------------------------------------------------------------

    def _baseline_stage(self, data) -> Stage:
        if self.target is not None and self.target.model_file is not None:
            return self._adopted_baseline_stage()
        from .train import training_settings

        settings = training_settings(
            self.spec,
            epochs=self.config.epochs,
            batch_size=self.config.batch_size,
            patience=self.config.patience,
            seed=self.config.seed,
        )

        def inputs() -> dict[str, Any]:
            return {"model": self.spec.name, "data": self.data_fingerprint, "settings": settings}

        def train() -> StageResult:
            written, history = self.workers.train(self.spec, data, settings, self.run_dir, self._keras_verbose())
            atomic_write_json(self.run_dir / "history.json", history)
            return StageResult(
                outputs=[p.name for p in written] + ["history.json"],
                extra={
                    "epochs_run": len(history.get("loss", [])),
                    "best_val_accuracy": max(history.get("val_accuracy", [float("nan")])),
                },
            )

        return Stage(
            "baseline",
            inputs,
            train,
            running=(
                f"baseline: training {self.spec.name} (up to {settings['epochs']} epochs, batch {settings['batch_size']}, "
                f"seed {settings['seed']})"
            ),
            up_to_date="baseline: up to date, reusing baseline.keras",
        )

    def _adopted_baseline_stage(self) -> Stage:
        """The user's own model is the baseline, as it is: saved into the run dir in dnncomp's formats, not trained."""
        source = self.target.model_file

        def adopt() -> StageResult:
            return StageResult(outputs=[p.name for p in self.workers.adopt(source, self.run_dir)])

        return Stage(
            "baseline",
            lambda: {"model_file": str(source), "sha256": _file_or_dir_sha(source)},
            adopt,
            running=f"baseline: your model {source} (not trained)",
            up_to_date="baseline: up to date, reusing baseline.keras",
        )

    def _recipe_inputs(self, technique: str) -> dict[str, Any]:
        from .compress import get_recipe

        recipe = get_recipe(technique)
        return {
            "recipe": technique,
            "params": recipe.resolve_params(self.config.recipe_params.get(technique)),
            "baseline": self.manifest.output_sha("baseline", "baseline.keras"),
            "seed": self.config.seed,
            # a user's model: fine-tuning and calibration data follow its pixel mapping (absent for dnncomp's own)
            **({"preprocessing": self.preprocessing.to_dict()} if self.preprocessing is not None else {}),
        }

    def _write_sidecar(self, artifact: Path) -> None:
        """The pixel mapping beside the .tflite, so evaluation anywhere (a board too) feeds what the model takes."""
        from .preprocess import Preprocessing, write_sidecar

        preprocessing = self.preprocessing or Preprocessing(source="dnncomp training (pixel / 255)")
        write_sidecar(
            artifact,
            preprocessing,
            model=self.spec.name,
            input_shape=list(self.spec.input_shape),
            num_classes=self.spec.num_classes,
        )

    def _recipe_context_for(self, data):
        """The RecipeContext all recipes share, so the training set is preprocessed once for all of them."""
        if self._recipe_context is None:
            from .compress import RecipeContext

            self._recipe_context = RecipeContext(
                baseline_path=self.run_dir / "baseline.keras",
                spec=self.spec,
                x_train=data.x_train,
                y_train=data.y_train,
                seed=self.config.seed,
                verbose=self._keras_verbose(),
                preprocessing=self.preprocessing,
                contract=getattr(self.target, "contract", None),
            )
        return self._recipe_context

    def _recipe_stage(self, technique: str, data) -> Stage:
        from .fileio import atomic_write_bytes

        artifact = self.run_dir / f"{technique}.tflite"

        def compress() -> StageResult:
            tflite, info = self.workers.compress(
                technique, self.config.recipe_params.get(technique), lambda: self._recipe_context_for(data)
            )
            atomic_write_bytes(artifact, tflite)
            self._write_sidecar(artifact)
            return StageResult(outputs=[artifact.name], extra={"info": info})

        return Stage(
            f"compress:{technique}",
            lambda: self._recipe_inputs(technique),
            compress,
            running=f"{technique}: compressing from the saved baseline",
            up_to_date=f"{technique}: up to date",
        )

    def _keras_baseline_stage(self, data) -> Stage:
        """The study's baseline row: Keras accuracy and model.predict on one image. Not comparable with LiteRT."""

        def inputs() -> dict[str, Any]:
            return {
                "baseline": self.manifest.output_sha("baseline", "baseline.keras"),
                "data": self.data_fingerprint,
                "first_n": self.config.first_n,
                **self._measured_on("tf-keras"),
            }

        def evaluate() -> StageResult:
            from .evaluate import file_sizes

            measured = self.workers.evaluate_keras(
                self.run_dir / "baseline.keras", self.spec, data, first_n=self.config.first_n, preprocessing=self.preprocessing
            )
            record = {
                "name": KERAS_BASELINE,
                "artifact": "baseline.h5",
                "runtime": "keras",
                "sha256": self.manifest.output_sha("baseline", "baseline.h5"),
                "accuracy": measured["accuracy"],
                "latency": measured["latency"],
                "size": file_sizes(self.run_dir / "baseline.h5"),
                "sparsity": None,
                "measured_on": self._measured_on_record(inputs()),
            }
            return StageResult(extra={"record": record})

        return Stage(
            f"evaluate:{KERAS_BASELINE}",
            inputs,
            evaluate,
            running="baseline-keras: accuracy and the study's model.predict timing",
            kind="keras-evaluate",
        )  # Keras' 200 model.predict calls: nothing like a LiteRT evaluation's time

    def _evaluate_stage(self, technique: str, data) -> Stage:
        from .bench import LatencyConfig

        artifact = self.run_dir / f"{technique}.tflite"
        latency_config = LatencyConfig(
            threads=self.config.threads, min_count=self.config.latency_min_count, min_seconds=self.config.latency_min_seconds
        )

        def inputs() -> dict[str, Any]:
            return {
                "artifact": sha256_file(artifact),
                "data": self.data_fingerprint,
                "first_n": self.config.first_n,
                "latency": _jsonable(vars(latency_config)),
                **({"preprocessing": self.preprocessing.to_dict()} if self.preprocessing is not None else {}),
                **self._measured_on("ai-edge-litert"),
            }

        def evaluate() -> StageResult:
            given = inputs()
            measured = self.workers.evaluate(
                artifact, data, first_n=self.config.first_n, threads=self.config.threads, latency_config=latency_config
            )
            record: dict[str, Any] = {
                "name": technique,
                "artifact": artifact.name,
                "runtime": "litert",
                "sha256": given["artifact"],
                "accuracy": measured["accuracy"],
                "latency": measured["latency"],
                "size": measured["size"],
                "measured_on": self._measured_on_record(given),
            }
            record.update({k: v for k, v in measured.items() if k not in record})
            recipe_stage = self.manifest.stages.get(f"compress:{technique}", {})
            if recipe_stage:
                record["recipe"] = {
                    "name": technique,
                    "params": recipe_stage["inputs"].get("params"),
                    "info": recipe_stage.get("info"),
                }
                if "anatomy" in record:
                    from .compress.summary import compression_check  # no TensorFlow: the check reads the artifact's anatomy

                    record["compression_check"] = compression_check(recipe_stage.get("info") or {}, record["anatomy"])
            return StageResult(extra={"record": record})

        return Stage(
            f"evaluate:{technique}",
            inputs,
            evaluate,
            running=(f"{technique}: accuracy on {len(data.y_test)} test images, then latency at {self.config.threads} thread(s)"),
            up_to_date=f"{technique}: evaluation up to date",
        )

    def _mcu_stage(self, technique: str, data) -> Stage:
        """Issue 15 (``mcu_images`` set): TFLite Micro's arena, flash, op list and top-1 agreement with LiteRT."""
        from .micro import mcu_stage_record, require_tflm, tflm_version

        require_tflm("dnncomp run --mcu")
        artifact = self.run_dir / f"{technique}.tflite"
        images = self.config.mcu_images or len(data.y_test)

        def inputs() -> dict[str, Any]:
            return {
                "artifact": sha256_file(artifact),
                "data": self.data_fingerprint,
                "mcu_images": self.config.mcu_images,
                "machine": self.machine,
                "runtime": f"tflite-micro {tflm_version()}",
            }

        def measure() -> StageResult:
            record = mcu_stage_record(artifact, data.x_test, images=self.config.mcu_images, dataset=self.config.dataset)
            return StageResult(extra={"record": record})

        return Stage(
            f"mcu:{technique}",
            inputs,
            measure,
            running=f"{technique}: TFLite Micro arena search, then TFLM against LiteRT on {images} test images",
            up_to_date=f"{technique}: TFLite Micro measurement up to date",
        )

    def _measured_on(self, runtime_package: str) -> dict[str, Any]:
        """An evaluation's machine and runtime are among its inputs: another machine or runtime re-measures."""
        from importlib import metadata

        try:
            version = metadata.version(runtime_package)
        except metadata.PackageNotFoundError:
            version = None
        if runtime_package == "ai-edge-litert":  # the LiteRT runtime that loads here: ai-edge-litert, else tflite-runtime
            from .litert_backend import runtime_label

            return {"machine": self.machine, "runtime": runtime_label()}
        return {"machine": self.machine, "runtime": f"{runtime_package} {version}"}

    def _measured_on_record(self, inputs: dict[str, Any]) -> dict[str, Any]:
        env = self.manifest.measurements.get(self.machine, {}).get("environment") or {}
        return measured_on_record(env, inputs["machine"], inputs["runtime"])

    # -- results ---------------------------------------------------------------------

    def _is_current(self, name: str, entry: dict[str, Any]) -> bool:
        """Was this evaluation of a variant made from the current baseline, of the artifact now on disk?"""
        baseline = self.manifest.output_sha("baseline", "baseline.keras")
        if name == KERAS_BASELINE:
            return entry["inputs"].get("baseline") == baseline
        artifact = self.run_dir / f"{name}.tflite"
        recipe = self.manifest.stages.get(f"compress:{name}")
        if recipe is not None and recipe["inputs"].get("baseline") != baseline:
            return False
        return artifact.is_file() and sha256_file(artifact) == entry["inputs"].get("artifact")

    def _write_results(self) -> Path:
        from .results import results_document

        # A run directory accumulates variants: this run's recipes first, then those evaluated by
        # earlier invocations, as long as they were made from the current baseline. ``variants`` are
        # this machine's measurements; ``measurements`` holds every machine's, each beside the others.
        requested = [KERAS_BASELINE, *self.config.techniques]
        by_machine: dict[str, dict[str, Any]] = {}
        for machine, held in self.manifest.measurements.items():
            stages = held.get("stages") or {}
            earlier = [stage.split(":", 1)[1] for stage in stages if stage.startswith("evaluate:")]
            records = [
                _with_mcu(stages[f"evaluate:{name}"], stages.get(f"mcu:{name}"))
                for name in dict.fromkeys(requested + earlier)
                if "record" in stages.get(f"evaluate:{name}", {}) and self._is_current(name, stages[f"evaluate:{name}"])
            ]
            if records or machine == self.machine:
                by_machine[machine] = {"environment": held.get("environment"), "variants": records}
        document = results_document(
            by_machine[self.machine]["variants"],
            dataset=self.config.dataset,
            model=self.config.model,
            seed=self.config.seed,
            machine_id=self.machine,
            measurements=by_machine,
            **_baseline_and_best(by_machine[self.machine]["variants"], self.constant_predictor_accuracy),
        )
        return atomic_write_json(self.config.state_dir / "results.json", document)


BEST_WITHIN_POINTS = 1.0
# A float model must beat always answering the test set's most frequent class by this much
# (accuracy, 0..1) before a compressed variant is compared with it.
ABOVE_CONSTANT_MARGIN = 0.05


def constant_predictor_accuracy(labels: np.ndarray) -> float | None:
    """Accuracy (0..1) of always answering the most frequent label: what a model that learned nothing scores."""
    labels = np.asarray(labels).reshape(-1)
    return float(np.bincount(labels).max() / len(labels)) if len(labels) else None


def baseline_check(variants: list[dict[str, Any]], constant_accuracy: float | None) -> dict[str, Any] | None:
    """Whether the float variant learned anything: its test accuracy against the constant predictor's.

    Returns ``{float_accuracy, constant_predictor_accuracy, holds, message}`` or None without a
    float variant. A baseline that does not beat the constant predictor by
    ``ABOVE_CONSTANT_MARGIN`` makes every comparison with it meaningless (a compressed variant
    "above float"), so no best variant is named for it.
    """
    reference, _ = _float_and_compressed(variants)
    accuracy = None if reference is None else _test_accuracy(reference)
    if accuracy is None or constant_accuracy is None:
        return None
    holds = accuracy >= constant_accuracy + ABOVE_CONSTANT_MARGIN
    message = (
        None
        if holds
        else (
            f"the baseline scores {100 * accuracy:.2f} %, no better than always answering the most frequent class "
            f"({100 * constant_accuracy:.2f} %): it has not learned yet; train longer (--epochs) before comparing compressed variants"
        )
    )
    return {"float_accuracy": accuracy, "constant_predictor_accuracy": constant_accuracy, "holds": holds, "message": message}


def _baseline_and_best(variants: list[dict[str, Any]], constant_accuracy: float | None) -> dict[str, Any]:
    check = baseline_check(variants, constant_accuracy)
    usable = check is None or check["holds"]
    return {"baseline_check": check, "best_variant": best_variant(variants) if usable else None}


def _test_accuracy(variant: dict[str, Any]) -> float | None:
    """A variant's LiteRT accuracy on the run's whole test split (``accuracy.full``, 0..1), or None."""
    return (variant.get("accuracy") or {}).get("full")


def _float_and_compressed(variants: list[dict[str, Any]]) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The ``float`` variant (None without one or without its test accuracy) and the compressed variants
    that have a test accuracy (neither float nor the Keras baseline): what a variant is compared against."""
    reference = next((v for v in variants if v.get("name") == "float"), None)
    if reference is not None and _test_accuracy(reference) is None:
        reference = None
    compressed = [v for v in variants if v.get("name") not in ("float", KERAS_BASELINE) and _test_accuracy(v) is not None]
    return reference, compressed


def best_variant(variants: list[dict[str, Any]], *, within_points: float = BEST_WITHIN_POINTS) -> dict[str, Any] | None:
    """The compressed variant with the smallest gzip size whose accuracy is within ``within_points`` of float's.

    Accuracy is the LiteRT test-set accuracy of the run (``accuracy.full``, the whole test
    split: runs evaluate no validation split per variant); float is the ``float`` variant.
    Returns ``{name, gzip_bytes, gzip_ratio_vs_float, accuracy, accuracy_change_points, rule}``,
    or None without a float variant or when no compressed variant qualifies.
    """

    def gzip_bytes(variant):
        return (variant.get("size") or {}).get("gzip_bytes")

    reference, compressed = _float_and_compressed(variants)
    if reference is None or not gzip_bytes(reference):
        return None
    rule = f"smallest gzip size with LiteRT test accuracy within {within_points:g} point(s) of float's"
    candidates = [
        v for v in compressed if gzip_bytes(v) and (_test_accuracy(v) - _test_accuracy(reference)) * 100 >= -within_points
    ]
    if not candidates:
        return None
    best = min(candidates, key=lambda v: (gzip_bytes(v), -_test_accuracy(v)))
    return {
        "name": best["name"],
        "gzip_bytes": gzip_bytes(best),
        "gzip_ratio_vs_float": round(gzip_bytes(reference) / gzip_bytes(best), 2),
        "accuracy": _test_accuracy(best),
        "accuracy_change_points": round((_test_accuracy(best) - _test_accuracy(reference)) * 100, 2),
        "rule": rule,
    }


# A compressed variant this far below float (points of LiteRT test accuracy) is worth a warning.
LARGE_DROP_POINTS = 5.0


def large_accuracy_drops(variants: list[dict[str, Any]], *, points: float = LARGE_DROP_POINTS) -> str | None:
    """One warning line naming every compressed variant whose accuracy is more than ``points`` below float's, or None.

    Accuracy is the LiteRT accuracy on the run's test split (``accuracy.full``; runs evaluate no
    validation split per variant), compared with the ``float`` variant's on the same images.
    """

    reference, compressed = _float_and_compressed(variants)
    if reference is None:
        return None
    low = [(v["name"], _test_accuracy(v), 100 * (_test_accuracy(reference) - _test_accuracy(v))) for v in compressed]
    low = [row for row in low if row[2] > points]
    if not low:
        return None
    count = (reference.get("accuracy") or {}).get("full_count")
    listed = "; ".join(f"{name} {100 * acc:.2f} % ({drop:.1f} points below)" for name, acc, drop in low)
    return (
        f"{len(low)} variant(s) lost more than {points:g} points against float's {100 * _test_accuracy(reference):.2f} %"
        + (f" (LiteRT, {count:,} test images)" if count else "")
        + f": {listed}; a gentler setting (`dnncomp recipes NAME`: lower sparsity, more clusters), "
        "more fine-tuning epochs or --param NAME.finetune=recover may recover it"
    )


def _with_mcu(evaluated: dict[str, Any], mcu: dict[str, Any] | None) -> dict[str, Any]:
    """A variant's evaluation record, with its TFLite Micro measurement (``mcu``) if one was made of the same artifact."""
    record = evaluated["record"]
    if not mcu or "record" not in mcu or mcu["inputs"].get("artifact") != evaluated["inputs"].get("artifact"):
        return record
    return {**record, "mcu": mcu["record"]}


def _file_or_dir_sha(path: Path) -> str:
    """sha256 of a model file, or of a SavedModel directory's files (names and contents)."""
    if path.is_file():
        return sha256_file(path)
    digest = hashlib.sha256()
    for child in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(str(child.relative_to(path)).encode())
        digest.update(sha256_file(child).encode())
    return digest.hexdigest()


def _anatomy_fields(artifact: Path) -> dict[str, Any]:
    from .anatomy import inspect_model

    anatomy = inspect_model(artifact)
    return {"sparsity": anatomy.get("sparsity"), "anatomy": anatomy}


def load_results(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / "results.json"
    if not path.is_file():
        raise RunError(f"{path}: not found; run `dnncomp run` first")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise RunError(f"{path}: not valid JSON ({exc})") from exc


from ._callable import make_callable  # noqa: E402

make_callable(__name__, "dnncomp.api:run")  # dnncomp.run(...) is the public function (dnncomp.api)
