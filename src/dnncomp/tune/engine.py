"""``dnncomp tune``: an Optuna study over the recipe catalogue, under deployment budgets.

Layout of a tune directory::

    tune.db                  the Optuna study (SQLite): a killed tune resumes from it
    tune-config.json         what is searched and the budgets (a resume must match it)
    float.tflite             the baseline as float LiteRT: the validation reference
    trials/NNNN/<recipe>.tflite (+ .preprocessing.json, trial.json)   one per finished trial
    tune.json                every trial, the Pareto set, the chosen one, its test accuracy
    best.tflite (+ best.preprocessing.json)                         the chosen variant

Selection uses a validation split held out of the training data (the model's own split,
seeded; recipes fine-tune on the rest). The test set is read once, at the end, for the
Pareto set only. Trials run in this process (``workers == 1``) or on Ray actors
(``workers > 1`` or ``ray_address``); every artifact is written by this process, atomically.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DnncompError, MissingDependencyError, RunError
from .stats import paired_drop

STUDY_NAME = "dnncomp-tune"
OBJECTIVES = ("gzip", "file", "p50", "p95")
OBJECTIVE_UNITS = {"gzip": "bytes", "file": "bytes", "p50": "ms", "p95": "ms"}
OBJECTIVE_METRIC = {"gzip": "gzip_bytes", "file": "file_bytes", "p50": "p50_ms", "p95": "p95_ms"}
# Constraint name -> (config field, metric); the drop is judged on its interval's upper end.
LIMITS = {
    "gzip": ("max_gzip", "gzip_bytes"),
    "file": ("max_file", "file_bytes"),
    "p95": ("max_p95_ms", "p95_ms"),
    "peak_memory": ("max_peak_memory", "peak_memory_bytes"),
}
# Fields a resumed tune must share with the one that started the directory.
IDENTITY = (
    "baseline",
    "dataset",
    "model",
    "objective",
    "max_drop",
    "max_gzip",
    "max_file",
    "max_p95_ms",
    "max_peak_memory",
    "recipes",
    "seed",
    "validation",
    "train_images",
    "val_images",
    "input_range",
    "mean",
    "std",
)
PRUNE_IMAGES = 1000  # validation images the per-epoch (Keras) check scores


class TuneError(RunError):
    """A tune directory or its options are inconsistent, or the tune cannot start."""


class TrialPruned(DnncompError):
    """Raised from a fine-tuning epoch when the trial cannot meet the accuracy budget any more."""


@dataclass
class TuneConfig:
    """Everything a tune needs; stored as tune-config.json. Sizes in bytes, times in seconds and ms."""

    baseline: str
    dataset: str
    out: str
    max_drop: float = 1.0
    objective: str = "gzip"
    max_gzip: int | None = None
    max_file: int | None = None
    max_p95_ms: float | None = None
    max_peak_memory: int | None = None
    recipes: list[str] = field(default_factory=list)  # empty: every recipe but float
    trials: int = 20
    time_budget_s: float | None = None
    workers: int = 1
    ray_address: str | None = None
    seed: int = 0
    validation: str | None = None  # None: the model's own split (stratified:0.1 for a user's file)
    train_images: int | None = None  # a seeded stratified sample of the fine-tuning images (speed)
    val_images: int | None = None
    prune_margin: float = 2.0  # points beyond max_drop at which a fine-tuning epoch prunes the trial
    latency_threads: int = 1
    data_dir: str | None = None
    model: str | None = None
    input_range: str | None = None
    mean: str | None = None
    std: str | None = None
    unsafe: bool = False
    sampler: str = "tpe"
    refine: bool = True  # alternate the sampler's trials with refinements of the best feasible one (tune/refine.py)

    def check(self) -> None:
        """Raises TuneError for an objective, budget or count that cannot work."""
        if self.objective not in OBJECTIVES:
            raise TuneError(f"--objective {self.objective!r}: choose from {', '.join(OBJECTIVES)}")
        if self.trials < 1 or self.workers < 1:
            raise TuneError("--trials and --workers must be >= 1")
        if self.sampler not in ("tpe", "nsga2"):
            raise TuneError(f"--sampler {self.sampler!r}: tpe or nsga2")
        for name in ("max_gzip", "max_file", "max_p95_ms", "max_peak_memory"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise TuneError(f"--{name.replace('_', '-')} must be positive, got {value}")

    def constraint_names(self) -> list[str]:
        """The study's constraints, in the order Optuna stores them: drop first, then each limit given."""
        return ["drop"] + [name for name, (attr, _) in LIMITS.items() if getattr(self, attr) is not None]

    def needs_latency(self) -> bool:
        return self.objective in ("p50", "p95") or self.max_p95_ms is not None


# ---- parsing budgets ---------------------------------------------------------------

_SIZE_UNITS = {"": 1, "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "kib": 1024, "mib": 1024**2, "gib": 1024**3}
_TIME_UNITS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600}


def parse_size(text: str | None, what: str) -> int | None:
    """``"256KB"`` -> 256000, ``"1.5MiB"`` -> 1572864, ``"4096"`` -> bytes; None stays None. TuneError otherwise."""
    if text is None:
        return None
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", str(text))
    if not match or match.group(2).lower() not in _SIZE_UNITS:
        raise TuneError(f"{what} {text!r}: expected a size such as 256KB, 1.5MB, 300KiB or a byte count")
    return int(round(float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()]))


def parse_duration(text: str | None, what: str = "--time-budget") -> float | None:
    """``"60m"``, ``"1h30m"``, ``"90s"``, ``"45"`` (seconds) -> seconds; None stays None. TuneError otherwise."""
    if text is None:
        return None
    text = str(text).strip().lower()
    if re.fullmatch(r"[0-9]*\.?[0-9]+", text):
        return float(text)
    parts = re.findall(r"([0-9]*\.?[0-9]+)\s*(h|min|m|sec|s)", text)
    if not parts or re.sub(r"[0-9.]+\s*(h|min|m|sec|s)", "", text).strip():
        raise TuneError(f"{what} {text!r}: expected a duration such as 60m, 1h30m or 900s")
    return float(sum(float(number) * _TIME_UNITS[unit] for number, unit in parts))


# ---- judging a trial ---------------------------------------------------------------


def judge(metrics: dict[str, Any], config: TuneConfig) -> dict[str, Any]:
    """Constraint values (<= 0: met) in :meth:`TuneConfig.constraint_names` order, the objective value and what fails.

    The drop constraint is the upper end of the drop's 95 % interval minus ``max_drop``:
    a variant is feasible when the data cannot tell its loss from one above the budget.
    """
    values = {"drop": float(metrics["drop"]["high_points"]) - float(config.max_drop)}
    for name, (attr, metric) in LIMITS.items():
        limit = getattr(config, attr)
        if limit is not None:
            measured = metrics.get(metric)
            values[name] = math.inf if measured is None else float(measured) - float(limit)
    constraints = [values[name] for name in config.constraint_names()]
    failing = [name for name in config.constraint_names() if values[name] > 0]
    return {
        "constraints": constraints,
        "feasible": not failing,
        "failing": failing,
        "objective": metrics.get(OBJECTIVE_METRIC[config.objective]),
    }


# ---- one trial: fine-tune, convert, score on the validation split ---------------------


def _tune_split(labels: np.ndarray, validation: str, seed: int, train_images: int | None, val_images: int | None):
    """(fine-tuning indices, validation indices): the model's held-out split, each optionally a seeded stratified sample."""
    from ..train import split_validation

    train, val = split_validation(len(labels), validation, seed=seed, labels=labels)
    if len(val) == 0:
        raise TuneError(f"validation split {validation!r} holds out no images; pass --validation stratified:0.1")
    return _stratified_sample(train, labels, train_images, seed), _stratified_sample(val, labels, val_images, seed + 1)


def _stratified_sample(index: np.ndarray, labels: np.ndarray, count: int | None, seed: int) -> np.ndarray:
    if count is None or count >= len(index):
        return index
    rng = np.random.default_rng(seed)
    picked = []
    classes = np.unique(labels[index])
    for label in classes:
        members = index[labels[index] == label]
        share = max(1, int(round(count * len(members) / len(index))))
        picked.append(rng.permutation(members)[:share])
    return np.sort(np.concatenate(picked))[: max(count, len(classes))]


class TrialRunner:
    """Loads the baseline's data once and runs trials: recipe, LiteRT conversion, validation scores, sizes, latency.

    Built by the driver (``workers == 1``) or inside each Ray actor. ``baseline_correct`` is
    the float baseline's per-image correctness on the validation split (from the driver), so
    every worker compares on the same reference.
    """

    def __init__(
        self, config: TuneConfig, baseline_correct: np.ndarray | None = None, *, threads: int | None = None, verbose: int = 0
    ):
        if threads:  # a Ray actor's share of the machine; before TensorFlow runs anything
            from ..keras_env import import_keras

            tf, _ = import_keras()
            tf.config.threading.set_intra_op_parallelism_threads(int(threads))
            tf.config.threading.set_inter_op_parallelism_threads(int(threads))
        from ..compress import RecipeContext
        from ..compress.sensitivity import context_for
        from ..preprocess import preprocessing_from_options

        self.config = config
        given = preprocessing_from_options(config.input_range, config.mean, config.std)
        full, self.notes = context_for(
            Path(config.baseline),
            config.dataset,
            data_dir=config.data_dir,
            model=config.model,
            preprocessing=given,
            seed=config.seed,
            unsafe=config.unsafe,
        )
        self.validation = config.validation or (full.spec.training or {}).get("validation") or "stratified:0.1"
        train, val = _tune_split(full.labels, self.validation, config.seed, config.train_images, config.val_images)
        self.ctx = RecipeContext(
            baseline_path=full.baseline_path,
            spec=full.spec,
            x_train=full.x_train[train],
            y_train=full.y_train[train],
            seed=config.seed,
            verbose=verbose,
            preprocessing=full.preprocessing,
            contract=full.contract,
            unsafe=config.unsafe,
        )
        self.x_val = full.x_train[val]
        self.y_val = full.labels[val]
        self.baseline_correct = baseline_correct

    @property
    def split(self) -> dict[str, Any]:
        return {
            "validation": self.validation,
            "fine_tuning_images": int(len(self.ctx.labels)),
            "validation_images": int(len(self.y_val)),
        }

    def sidecar_fields(self, recipe: str) -> dict[str, Any]:
        contract = self.ctx.contract
        return {
            "layout": contract.layout.kind,
            "input_shape": list(contract.input_shape),
            "image_shape": [contract.layout.height, contract.layout.width, contract.channels],
            "num_classes": contract.num_classes,
            "model": str(self.config.baseline),
            "recipe": recipe,
        }

    def write_artifact(self, path: Path, tflite: bytes, recipe: str) -> Path:
        """``tflite`` at ``path`` with its preprocessing sidecar, both written atomically."""
        from ..fileio import atomic_write_bytes
        from ..preprocess import write_sidecar

        atomic_write_bytes(path, tflite)
        write_sidecar(path, self.ctx.preprocessing, **self.sidecar_fields(recipe))
        return path

    def correct(self, path: Path) -> np.ndarray:
        """Per validation image: does the LiteRT model at ``path`` (with its sidecar) answer right."""
        from ..evaluate import predict_classes

        return predict_classes(path, self.x_val, num_classes=self.ctx.contract.num_classes) == self.y_val

    def float_baseline(self, path: Path) -> np.ndarray:
        """Convert the baseline to float LiteRT at ``path`` (unless there) and return its validation correctness."""
        from ..compress import apply_recipe

        if not path.is_file():
            self.write_artifact(path, apply_recipe("float", self.ctx).tflite, "float")
        self.baseline_correct = self.correct(path)
        return self.baseline_correct

    def run(self, number: int, recipe: str, params: dict[str, Any]) -> dict[str, Any]:
        """Run one trial; never raises for the trial's own failure: ``{"state": complete|pruned|failed, ...}``.

        A complete trial carries ``tflite`` (bytes: the driver writes the artifact) and
        ``metrics`` (validation accuracy, the paired drop, sizes, latency/memory when asked).
        """
        import tempfile

        from ..compress import apply_recipe

        start = time.perf_counter()
        check = self._epoch_check()
        self.ctx.fine_tune_callbacks = [check] if check is not None else []
        outcome: dict[str, Any] = {
            "number": number,
            "recipe": recipe,
            "params": params,
            "host": os.uname().nodename,
            "pid": os.getpid(),
        }
        try:
            result = apply_recipe(recipe, self.ctx, params)
            with tempfile.TemporaryDirectory(prefix="dnncomp-tune-") as tmp:
                path = self.write_artifact(Path(tmp) / f"{recipe}.tflite", result.tflite, recipe)
                metrics = self._measure(path)
        except TrialPruned as exc:
            return {**outcome, "state": "pruned", "reason": str(exc), "intermediate": _history(check), "wall_s": _since(start)}
        except Exception as exc:  # a recipe, converter or runtime failure is this trial's, never the study's
            return {
                **outcome,
                "state": "failed",
                "error": _one_line(exc),
                "intermediate": _history(check),
                "wall_s": _since(start),
            }
        finally:
            self.ctx.fine_tune_callbacks = []
            _clear_keras_session()
        metrics["fine_tune_s"] = (result.info.get("fine_tuning") or {}).get("wall_s")
        return {
            **outcome,
            "state": "complete",
            "tflite": result.tflite,
            "metrics": metrics,
            "info": result.info,
            "intermediate": _history(check),
            "wall_s": _since(start),
        }

    def _measure(self, path: Path) -> dict[str, Any]:
        from ..evaluate import file_sizes

        correct = self.correct(path)
        metrics: dict[str, Any] = {
            "val_accuracy": float(np.mean(correct)),
            "baseline_val_accuracy": float(np.mean(self.baseline_correct)),
            "drop": paired_drop(self.baseline_correct, correct),
            **file_sizes(path),
        }
        if self.config.needs_latency():
            from ..bench import LatencyConfig, measure_latency

            latency = measure_latency(
                path,
                self.x_val,
                LatencyConfig(
                    threads=self.config.latency_threads, min_count=100, min_seconds=1.0, samples=64, overhead_seconds=0.0
                ),
                num_classes=self.ctx.contract.num_classes,
            )
            metrics.update(p50_ms=latency["p50_ms"], p95_ms=latency["p95_ms"], latency_threads=self.config.latency_threads)
        if self.config.max_peak_memory is not None:
            from ..bench import measure_memory

            memory = measure_memory(
                path, self.x_val, threads=self.config.latency_threads, num_classes=self.ctx.contract.num_classes
            )
            metrics["peak_memory_bytes"] = memory["peak_added_bytes"]
        return metrics

    def _epoch_check(self):
        """A Keras callback: validation accuracy after every fine-tuning epoch; prunes a trial past the budget.

        The values go to the trial's ``intermediate`` attribute and the rule is ours: Optuna's
        ``Trial.report``/``should_prune`` raise NotImplementedError in a multi-objective study.
        """
        if self.baseline_correct is None:
            return None
        from ..keras_env import import_keras
        from ..train import model_inputs

        _, keras = import_keras()
        count = min(PRUNE_IMAGES, len(self.y_val))
        x = model_inputs(self.ctx.spec, self.x_val[:count], self.ctx.preprocessing)
        y = self.y_val[:count]
        reference = self.baseline_correct[:count]
        limit = float(self.config.max_drop) + float(self.config.prune_margin)

        class ValidationAccuracy(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.history: list[dict[str, Any]] = []
                self.stage = 0

            def on_train_begin(self, logs=None):
                self.stage += 1

            def on_epoch_end(self, epoch, logs=None):
                scores = self.model.predict(x, batch_size=256, verbose=0)
                drop = paired_drop(reference, np.argmax(scores, axis=-1) == y)
                self.history.append(
                    {
                        "stage": self.stage,
                        "epoch": epoch + 1,
                        "accuracy": round(float(np.mean(np.argmax(scores, axis=-1) == y)), 5),
                        "drop_points": drop["drop_points"],
                        "low_points": drop["low_points"],
                    }
                )
                last = epoch + 1 >= int((self.params or {}).get("epochs") or 0)
                # Judged at the end of a stage only: mid-stage the pruning schedule may not have finished, nor the recovery.
                if last and drop["low_points"] > limit:
                    raise TrialPruned(
                        f"fine-tuning stage {self.stage} epoch {epoch + 1}: validation drop at least {drop['low_points']:.2f} points "
                        f"(95 % interval, {count} images) > max-drop {self.config_text}"
                    )

        callback = ValidationAccuracy()
        callback.config_text = f"{self.config.max_drop:g} + prune margin {self.config.prune_margin:g}"
        return callback


def _history(check) -> list[dict[str, Any]]:
    return list(getattr(check, "history", []) or [])


def _since(start: float) -> float:
    return round(time.perf_counter() - start, 3)


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"[:300]


def _clear_keras_session() -> None:
    try:
        from ..keras_env import import_keras

        _, keras = import_keras()
        keras.backend.clear_session()
    except Exception:  # clearing is hygiene between trials; never a trial's failure
        pass


class RayTrialActor:
    """A Ray actor around a :class:`TrialRunner` (data loaded once per actor)."""

    def __init__(self, config: dict[str, Any], baseline_correct: np.ndarray, threads: int):
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        self.runner = TrialRunner(TuneConfig(**config), baseline_correct, threads=threads)

    def run(self, number: int, recipe: str, params: dict[str, Any]) -> dict[str, Any]:
        import ray

        return {**self.runner.run(number, recipe, params), "node": ray.get_runtime_context().get_node_id()}


# ---- the study ------------------------------------------------------------------------


def _optuna():
    try:
        import optuna
    except ImportError as exc:
        raise MissingDependencyError(
            "dnncomp tune needs Optuna (and Ray for --workers/--ray-address): pip install 'dnncomp[tune]'"
        ) from exc
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def storage_url(out: Path) -> str:
    return f"sqlite:///{(Path(out) / 'tune.db').resolve()}"


def _sampler(optuna, config: TuneConfig, done: int):
    # Reseeded by the trials already done, so a resumed study does not replay the first session's draws.
    seed = config.seed + 7919 * done
    if config.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(4, min(10, config.trials // 3)))


def open_study(config: TuneConfig, *, create: bool = True):
    """The Optuna study of ``config.out`` (created, or loaded when it exists)."""
    optuna = _optuna()
    done = 0
    if (Path(config.out) / "tune.db").exists():
        done = len(optuna.load_study(study_name=STUDY_NAME, storage=storage_url(config.out)).get_trials(deepcopy=False))
    elif not create:
        raise TuneError(f"{config.out}: no tune.db; start a tune with `dnncomp tune BASELINE --dataset D --out {config.out}`")
    return optuna.create_study(
        study_name=STUDY_NAME,
        storage=storage_url(config.out),
        directions=["maximize", "minimize"],
        sampler=_sampler(optuna, config, done),
        load_if_exists=True,
    )


def counted(frozen) -> bool:
    """Whether a trial counts against --trials: finished (complete, pruned or failed), not cut by a kill."""
    return frozen.state.name in ("COMPLETE", "PRUNED", "FAIL") and not frozen.user_attrs.get("interrupted")


def load_config(out: Path) -> TuneConfig:
    import json

    path = Path(out) / "tune-config.json"
    if not path.is_file():
        raise TuneError(
            f"{out}: not a tune directory (no tune-config.json); start one with `dnncomp tune BASELINE --dataset D --out {out}`"
        )
    try:
        return TuneConfig(**json.loads(path.read_text()))
    except (ValueError, TypeError) as exc:
        raise TuneError(f"{path}: unreadable ({exc}); start a new tune with another --out") from exc


def _check_resume(config: TuneConfig) -> TuneConfig | None:
    out = Path(config.out)
    if not (out / "tune-config.json").is_file():
        return None
    before = load_config(out)
    changed = [name for name in IDENTITY if getattr(before, name) != getattr(config, name)]
    if changed:
        details = ", ".join(f"{name} {getattr(before, name)!r} -> {getattr(config, name)!r}" for name in changed)
        raise TuneError(
            f"{out}: holds a tune with other settings ({details}); rerun with its settings to resume, or pass another --out"
        )
    return before


@dataclass
class TuneOutcome:
    """What a finished (or stopped) tune found; ``exit_code`` 0 (a feasible variant) or 3 (none)."""

    summary: dict[str, Any]
    exit_code: int
    lines: list[str] = field(default_factory=list)


def run_tune(config: TuneConfig, *, say: Callable[[str], None] = print, progress=None) -> TuneOutcome:
    """Run (or resume) the tune of ``config`` in ``config.out``; writes tune.json and best.tflite.

    ``say`` gets one line per finished trial and the notes; ``progress(done, total_trials,
    elapsed_s, budget_s)`` (optional) is called as trials finish. Raises TuneError for a
    directory holding another tune, MissingDependencyError without Optuna/Ray.
    """
    from ..fileio import atomic_write_json
    from ..run import run_dir_lock

    config.check()
    _optuna()  # a missing extra fails before any work
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    with run_dir_lock(out, say=say):
        previous = _check_resume(config)
        atomic_write_json(out / "tune-config.json", asdict(config))
        study = open_study(config)
        elapsed_before = float(study.user_attrs.get("elapsed_s", 0.0))
        _recover_interrupted(study, out, say)
        runner = TrialRunner(config)
        for note in runner.notes:
            say(f"note: {note}")
        baseline_correct = runner.float_baseline(out / "float.tflite")
        split = runner.split
        say(
            f"validation: {split['validation']} of the training data, {split['validation_images']} images (fine-tuning on "
            f"{split['fine_tuning_images']}); float baseline {100 * np.mean(baseline_correct):.2f} % on it (LiteRT). "
            f"Drop judged by its {paired_method()}"
        )
        if previous is not None:
            say(f"resuming {out}: {sum(counted(t) for t in study.get_trials(deepcopy=False))} trial(s) done")
        from .space import candidate_recipes, describe_space

        recipes = candidate_recipes(config.recipes or None)
        pool = _RayPool(config, baseline_correct) if (config.workers > 1 or config.ray_address) else None
        session_start = time.perf_counter()

        def elapsed() -> float:
            return elapsed_before + time.perf_counter() - session_start

        study.set_user_attr("space", describe_space(recipes))
        try:
            _search(study, config, recipes, runner, pool, out, say, progress, elapsed)
        finally:
            study.set_user_attr("elapsed_s", round(elapsed(), 1))
            if pool is not None:
                pool.close()
        return _finish(study, config, runner, out, say)


def paired_method() -> str:
    from .stats import METHOD

    return METHOD


def _recover_interrupted(study, out: Path, say) -> None:
    """Trials left RUNNING by a killed tune: recorded failed (interrupted, not counted) and queued again with their parameters."""
    from optuna.trial import TrialState

    for frozen in study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING)):
        if frozen.state == TrialState.WAITING:
            continue  # already queued again by the session before
        study._storage.set_trial_user_attr(frozen._trial_id, "interrupted", True)
        study._storage.set_trial_user_attr(frozen._trial_id, "error", "interrupted: the tune process stopped during this trial")
        study.tell(frozen.number, state=TrialState.FAIL)
        carried = {key: frozen.user_attrs[key] for key in ("refines", "knob", "knob_step") if key in frozen.user_attrs}
        study.enqueue_trial(frozen.params, user_attrs={"resumes": frozen.number, **carried}, skip_if_exists=False)
        shutil.rmtree(out / "trials" / f"{frozen.number:04d}", ignore_errors=True)  # whatever it wrote is not a result
        say(f"trial {frozen.number} was interrupted by the last stop: queued again with the same parameters")


def _search(study, config, recipes, runner, pool, out, say, progress, elapsed) -> None:
    from optuna.trial import TrialState

    from .space import suggest

    def done() -> int:
        return sum(counted(t) for t in study.get_trials(deepcopy=False))

    in_flight: dict[Any, Any] = {}  # ray ref -> optuna trial
    while True:
        budget_left = config.time_budget_s is None or elapsed() < config.time_budget_s
        slots = config.workers if pool is not None else 1
        while budget_left and len(in_flight) < slots and done() + len(in_flight) < config.trials:
            refinement = _next_refinement(study, config, recipes)
            if refinement is not None:
                study.enqueue_trial(refinement.optuna_params(), user_attrs=refinement.attrs(), skip_if_exists=False)
            trial = study.ask()
            if "refines" in trial.user_attrs:
                from .refine import step_text

                say(f"trial {trial.number:>3} {step_text(trial.user_attrs)}")
            try:
                recipe, params = suggest(trial, recipes)
            except DnncompError as exc:
                study.tell(trial, state=TrialState.FAIL)
                say(f"trial {trial.number}: {exc}")
                continue
            earlier = _same_trial(study, recipe, params)
            if earlier is not None:  # a recipe without searched parameters, drawn again: its result is known
                _reuse(study, trial, earlier, config, say)
                continue
            if pool is None:
                _record(study, trial, runner.run(trial.number, recipe, params), config, runner, out, say)
                study.set_user_attr("elapsed_s", round(elapsed(), 1))  # what --status reads while the tune runs
                if progress:
                    progress(done(), config.trials, elapsed(), config.time_budget_s)
                break
            in_flight[pool.submit(trial.number, recipe, params)] = trial
        if pool is None:
            if not (budget_left and done() < config.trials):
                break
            continue
        if not in_flight:
            break
        ref, outcome = pool.wait_one(in_flight)
        trial = in_flight.pop(ref)
        _record(study, trial, outcome, config, runner, out, say)
        study.set_user_attr("elapsed_s", round(elapsed(), 1))
        if progress:
            progress(done(), config.trials, elapsed(), config.time_budget_s)
    if config.time_budget_s is not None and elapsed() >= config.time_budget_s and done() < config.trials:
        say(f"time budget {config.time_budget_s / 60:.3g} min used: {done()} of {config.trials} trials ran")


def _next_refinement(study, config: TuneConfig, recipes):
    """A refinement to run next (None: the sampler's turn): refinements alternate with the sampler's trials."""
    if not config.refine:
        return None
    from optuna.trial import TrialState

    from .refine import refine_candidate

    trials = study.get_trials(deepcopy=False)
    if any(t.state == TrialState.WAITING for t in trials):
        return None  # a queued trial (a resumed one) runs first
    started = [t for t in trials if counted(t) or t.state == TrialState.RUNNING]
    if not started or "refines" in started[-1].user_attrs:
        return None
    return refine_candidate(trial_rows(study), recipes)


def _record(study, trial, outcome: dict[str, Any], config: TuneConfig, runner: TrialRunner, out: Path, say) -> None:
    """Write a finished trial's artifact and trial.json atomically, then tell the study; one line on ``say``."""
    from optuna.trial import TrialState

    from ..fileio import atomic_write_json

    number = trial.number
    state = outcome["state"]
    record = {key: value for key, value in outcome.items() if key != "tflite"}
    attrs: dict[str, Any] = {
        "wall_s": outcome.get("wall_s"),
        "intermediate": outcome.get("intermediate") or [],
        "host": outcome.get("host"),
        "node": outcome.get("node"),
    }
    if state == "complete":
        verdict = judge(outcome["metrics"], config)
        directory = out / "trials" / f"{number:04d}"
        artifact = runner.write_artifact(directory / f"{outcome['recipe']}.tflite", outcome["tflite"], outcome["recipe"])
        record.update(verdict=verdict, artifact=str(artifact.relative_to(out)))
        atomic_write_json(directory / "trial.json", record)
        attrs.update(
            metrics=outcome["metrics"],
            constraints=verdict["constraints"],
            failing=verdict["failing"],
            artifact=record["artifact"],
        )
        _set(trial, attrs, config)
        study.tell(trial, [outcome["metrics"]["val_accuracy"], float(verdict["objective"])])
        say(_trial_line(number, outcome, verdict, config))
        return
    attrs["error" if state == "failed" else "reason"] = outcome.get("error") or outcome.get("reason")
    # A pruned or failed trial violates the accuracy budget as far as the sampler is concerned.
    attrs["constraints"] = [1.0] * len(config.constraint_names())
    _set(trial, attrs, config)
    study.tell(trial, state=TrialState.PRUNED if state == "pruned" else TrialState.FAIL)
    say(
        f"trial {number:>3} {outcome['recipe']:<16} {state.upper()}: {attrs.get('error') or attrs.get('reason')} ({outcome.get('wall_s', 0):.0f} s)"
    )


def _same_trial(study, recipe: str, params: dict[str, Any]):
    """A complete trial with exactly this recipe and these parameters (None if there is none)."""
    from optuna.trial import TrialState

    from .space import params_from_optuna

    for frozen in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if (
            "recipe" in frozen.params
            and params_from_optuna(frozen.params) == (recipe, params)
            and "duplicate_of" not in frozen.user_attrs
        ):
            return frozen
    return None


def _reuse(study, trial, earlier, config: TuneConfig, say) -> None:
    attrs = {key: value for key, value in earlier.user_attrs.items() if key in ("metrics", "constraints", "failing", "artifact")}
    attrs.update(duplicate_of=earlier.number, wall_s=0.0, intermediate=[])
    _set(trial, attrs, config)
    study.tell(trial, list(earlier.values))
    say(
        f"trial {trial.number:>3} {earlier.params['recipe']:<16} same parameters as trial {earlier.number}: its result counts again, nothing rerun"
    )


def _set(trial, attrs: dict[str, Any], config: TuneConfig) -> None:
    """User attributes, and the constraints where Optuna's samplers read them (Trial.set_constraint, one per budget)."""
    for key, value in attrs.items():
        trial.set_user_attr(key, value)
    for name, value in zip(config.constraint_names(), attrs["constraints"]):
        trial.set_constraint(name, float(min(value, 1e12)))


def _trial_line(number: int, outcome: dict[str, Any], verdict: dict[str, Any], config: TuneConfig) -> str:
    metrics = outcome["metrics"]
    drop = metrics["drop"]
    objective = format_objective(verdict["objective"], config.objective)
    status = "feasible" if verdict["feasible"] else "fails " + ",".join(verdict["failing"])
    return (
        f"trial {number:>3} {outcome['recipe']:<16} val {100 * metrics['val_accuracy']:.2f} % drop {drop['drop_points']:+.2f} "
        f"[{drop['low_points']:+.2f}, {drop['high_points']:+.2f}] {config.objective} {objective}  {status} ({outcome['wall_s']:.0f} s)"
    )


def format_objective(value, objective: str) -> str:
    if value is None:
        return "n/a"
    if OBJECTIVE_UNITS[objective] == "bytes":
        return f"{value / 1000:.1f} KB"
    return f"{value:.3f} ms"


class _RayPool:
    """``workers`` Ray actors, each holding the data; a crashed actor's trial is failed and the actor replaced."""

    def __init__(self, config: TuneConfig, baseline_correct: np.ndarray):
        try:
            import ray
        except ImportError as exc:
            raise MissingDependencyError("--workers > 1 and --ray-address need Ray: pip install 'dnncomp[tune]'") from exc
        import logging

        self.ray = ray
        self.started = not ray.is_initialized()
        if self.started:
            env = {"env_vars": {"TF_CPP_MIN_LOG_LEVEL": "3", "TF_USE_LEGACY_KERAS": "1"}}
            kwargs: dict[str, Any] = {
                "include_dashboard": False,
                "logging_level": logging.ERROR,
                "log_to_driver": False,
                "runtime_env": env,
            }
            if config.ray_address:
                ray.init(address=config.ray_address, **kwargs)
            else:
                ray.init(num_cpus=config.workers, **kwargs)
        self.actor_class = ray.remote(num_cpus=1, max_restarts=0)(RayTrialActor)
        self.args = (asdict(config), baseline_correct, 1 if not config.ray_address else None)
        self.actors = [self.actor_class.remote(*self.args) for _ in range(config.workers)]
        self.idle = list(self.actors)
        self.busy: dict[Any, tuple[Any, dict[str, Any]]] = {}

    def submit(self, number: int, recipe: str, params: dict[str, Any]):
        actor = self.idle.pop()
        ref = actor.run.remote(number, recipe, params)
        self.busy[ref] = (actor, {"number": number, "recipe": recipe, "params": params})
        return ref

    def wait_one(self, in_flight: dict[Any, Any]):
        ready, _ = self.ray.wait(list(in_flight), num_returns=1)
        ref = ready[0]
        actor, what = self.busy.pop(ref)
        try:
            outcome = self.ray.get(ref)
            self.idle.append(actor)
        except self.ray.exceptions.RayActorError as exc:  # the worker process died (killed, out of memory, a crash)
            outcome = {**what, "state": "failed", "error": f"worker died: {_one_line(exc)}", "wall_s": 0.0}
            self.idle.append(self.actor_class.remote(*self.args))
        except self.ray.exceptions.RayError as exc:
            outcome = {**what, "state": "failed", "error": _one_line(exc), "wall_s": 0.0}
            self.idle.append(actor)
        return ref, outcome

    def close(self) -> None:
        for actor in self.actors + self.idle:
            try:
                self.ray.kill(actor)
            except Exception:  # already gone
                pass
        if self.started:
            self.ray.shutdown()


# ---- the end: Pareto set, test set once, best.tflite -------------------------------------


def trial_rows(study) -> list[dict[str, Any]]:
    """Every trial as a plain record: number, state, recipe, params, metrics, constraints, error."""
    from .space import params_from_optuna

    rows = []
    for frozen in study.get_trials(deepcopy=False):
        attrs = frozen.user_attrs
        recipe, params = params_from_optuna(frozen.params) if "recipe" in frozen.params else (None, {})
        rows.append(
            {
                "number": frozen.number,
                "state": "INTERRUPTED" if attrs.get("interrupted") else frozen.state.name,
                "recipe": recipe,
                "params": params,
                "values": list(frozen.values) if frozen.values else None,
                "metrics": attrs.get("metrics"),
                "failing": attrs.get("failing"),
                "constraints": attrs.get("constraints"),
                "artifact": attrs.get("artifact"),
                "error": attrs.get("error") or attrs.get("reason"),
                "intermediate": attrs.get("intermediate"),
                "resumes": attrs.get("resumes"),
                "duplicate_of": attrs.get("duplicate_of"),
                "refines": attrs.get("refines"),
                "knob": attrs.get("knob"),
                "node": attrs.get("node"),
                "wall_s": attrs.get("wall_s"),
                "started": frozen.datetime_start.isoformat() if frozen.datetime_start else None,
                "finished": frozen.datetime_complete.isoformat() if frozen.datetime_complete else None,
            }
        )
    return rows


def pareto(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The feasible complete trials no other feasible one beats on both validation accuracy and the objective."""
    feasible = [r for r in rows if r["state"] == "COMPLETE" and not r["failing"] and r.get("duplicate_of") is None]
    front = []
    for row in feasible:
        accuracy, objective = row["values"]
        dominated = any(
            o["values"][0] >= accuracy
            and o["values"][1] <= objective
            and (o["values"][0] > accuracy or o["values"][1] < objective)
            for o in feasible
        )
        if not dominated:
            front.append(row)
    return sorted(front, key=lambda r: (r["values"][1], -r["values"][0], r["number"]))


def binding_budget(rows: list[dict[str, Any]], chosen: dict[str, Any] | None) -> dict[str, Any]:
    """Which budget keeps the objective from going lower: what the complete trials better than the chosen one fail."""
    complete = [r for r in rows if r["state"] == "COMPLETE" and r["values"]]
    better = [r for r in complete if r["failing"] and (chosen is None or r["values"][1] < chosen["values"][1])]
    counts: dict[str, int] = {}
    for row in better:
        for name in row["failing"]:
            counts[name] = counts.get(name, 0) + 1
    if not counts:
        return {"budget": None, "trials": 0, "text": "none: no complete trial with a lower objective failed a budget"}
    name = max(counts, key=lambda k: (counts[k], k == "drop"))
    return {
        "budget": name,
        "trials": counts[name],
        "counts": counts,
        "text": f"{name}: {counts[name]} of {len(better)} trial(s) with a lower objective than the chosen one fail it",
    }


def _finish(study, config: TuneConfig, runner: TrialRunner, out: Path, say) -> TuneOutcome:
    from ..evaluate import evaluate_accuracy, file_sizes
    from ..fileio import atomic_write_json
    from ..measure import load_for_model
    from ..preprocess import sidecar_path

    rows = trial_rows(study)
    front = pareto(rows)
    chosen = front[0] if front else None
    float_sizes = file_sizes(out / "float.tflite")
    for row in rows:  # how much smaller than the float baseline, in the units of the objective
        metrics = row.get("metrics") or {}
        if metrics.get("gzip_bytes"):
            metrics["gzip_ratio_vs_float"] = round(float_sizes["gzip_bytes"] / metrics["gzip_bytes"], 2)
            metrics["file_ratio_vs_float"] = round(float_sizes["file_bytes"] / metrics["file_bytes"], 2)
    summary: dict[str, Any] = {
        "schema": "dnncomp.tune/1",
        "config": asdict(config),
        "split": runner.split,
        "drop_method": paired_method(),
        "space": study.user_attrs.get("space"),
        "baseline_val_accuracy": float(np.mean(runner.baseline_correct)),
        "baseline_sizes": float_sizes,
        "counts": _counts(rows),
        "elapsed_s": study.user_attrs.get("elapsed_s"),
        "trials": rows,
        "pareto": [r["number"] for r in front],
        "binding": binding_budget(rows, chosen),
    }
    if front:
        # The test set, once: the float baseline and the Pareto set only; selection never saw it.
        test = load_for_model(config.dataset, out / "float.tflite", Path(config.data_dir) if config.data_dir else None)
        num_classes = runner.ctx.contract.num_classes
        baseline_test = evaluate_accuracy(out / "float.tflite", test.x_test, test.y_test, first_n=None, num_classes=num_classes)[
            "full"
        ]
        summary["test"] = {
            "images": int(len(test.y_test)),
            "baseline_accuracy": baseline_test,
            "note": f"the test set was read once, after the search, for the float baseline and the {len(front)} Pareto variant(s) only; "
            "selection used the validation split",
            "pareto": {},
        }
        for row in front:
            accuracy = evaluate_accuracy(out / row["artifact"], test.x_test, test.y_test, first_n=None, num_classes=num_classes)[
                "full"
            ]
            summary["test"]["pareto"][str(row["number"])] = {
                "accuracy": accuracy,
                "change_points": round(100 * (accuracy - baseline_test), 3),
            }
        best = out / "best.tflite"
        shutil.copyfile(out / chosen["artifact"], str(best) + ".tmp")
        os.replace(str(best) + ".tmp", best)
        source_sidecar = sidecar_path(out / chosen["artifact"])
        if source_sidecar.is_file():
            shutil.copyfile(source_sidecar, str(sidecar_path(best)) + ".tmp")
            os.replace(str(sidecar_path(best)) + ".tmp", sidecar_path(best))
        summary["chosen"] = {
            "trial": chosen["number"],
            "recipe": chosen["recipe"],
            "params": chosen["params"],
            "artifact": chosen["artifact"],
            "copied_to": "best.tflite",
            "rule": f"smallest {config.objective} among the feasible trials (validation)",
        }
        exit_code = 0
    else:
        summary["infeasible"] = _best_so_far(rows, config)
        exit_code = 3
    atomic_write_json(out / "tune.json", summary)
    return TuneOutcome(summary=summary, exit_code=exit_code)


def _counts(rows: list[dict[str, Any]]) -> dict[str, int]:
    counts = {"COMPLETE": 0, "PRUNED": 0, "FAIL": 0, "RUNNING": 0, "WAITING": 0, "INTERRUPTED": 0}
    for row in rows:
        counts[row["state"]] = counts.get(row["state"], 0) + 1
    counts["feasible"] = sum(1 for r in rows if r["state"] == "COMPLETE" and not r["failing"])
    return counts


def _best_so_far(rows: list[dict[str, Any]], config: TuneConfig) -> dict[str, Any]:
    """No feasible trial: the complete one closest to the budgets (fewest failed constraints, then the least excess)."""
    complete = [r for r in rows if r["state"] == "COMPLETE" and r["constraints"]]
    if not complete:
        return {"trial": None, "failing": ["no trial completed"], "text": "no trial completed: see the errors of each trial"}
    names = config.constraint_names()

    def excess(row):
        limits = [config.max_drop if n == "drop" else getattr(config, LIMITS[n][0]) for n in names]
        relative = [
            max(0.0, c) / max(abs(limit), 1e-9) if n != "drop" else max(0.0, c)
            for c, n, limit in zip(row["constraints"], names, limits)
        ]
        return (len(row["failing"]), sum(relative))

    best = min(complete, key=excess)
    over = {n: round(c, 4) for n, c in zip(names, best["constraints"]) if c > 0}
    return {
        "trial": best["number"],
        "recipe": best["recipe"],
        "artifact": best["artifact"],
        "failing": best["failing"],
        "excess": over,
        "text": f"trial {best['number']} ({best['recipe']}) comes closest; it fails "
        + ", ".join(f"{n} by {v:g}" for n, v in over.items()),
    }


# ---- status ----------------------------------------------------------------------------


def tune_status(out: Path) -> dict[str, Any]:
    """Progress of the tune in ``out`` from its study: counts by state, best so far, budget used. TuneError if none."""
    config = load_config(out)
    study = open_study(config, create=False)
    rows = trial_rows(study)
    front = pareto(rows)
    done = sum(1 for r in rows if r["state"] in ("COMPLETE", "PRUNED", "FAIL"))
    return {
        "out": str(out),
        "config": asdict(config),
        "counts": _counts(rows),
        "done": done,
        "elapsed_s": float(study.user_attrs.get("elapsed_s", 0.0)),
        "best": front[0] if front else None,
        "pareto": [r["number"] for r in front],
        "infeasible": None if front else _best_so_far(rows, config),
        "locked_by": _holder(out),
    }


def _holder(out: Path) -> str | None:
    """Who holds the tune directory now (a running tune), or None."""
    from filelock import FileLock, Timeout

    from ..run import HOLDER_NAME, LOCK_NAME, _describe_holder

    if not (Path(out) / LOCK_NAME).exists():
        return None
    lock = FileLock(Path(out) / LOCK_NAME)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return _describe_holder(Path(out) / HOLDER_NAME)
    lock.release()
    return None
