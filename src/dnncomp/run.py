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

import hashlib
import json
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .errors import RunError
from .fileio import atomic_write_json, sha256_file
from .results import now_iso

MANIFEST_SCHEMA = "dnncomp.manifest/1"
STUDY_TECHNIQUES = ["float", "qat", "prune", "cluster"]
KERAS_BASELINE = "baseline-keras"  # the study's way of timing the baseline: Keras model.predict, one image
KERAS_TIMING_IMAGES = 200


def is_jetson() -> bool:
    """The study detected its device the same way."""
    return Path("/etc/nv_tegra_release").exists()


@dataclass
class RunConfig:
    dataset: str
    model: str
    techniques: list[str]
    out: Path
    data_dir: Path | None = None
    epochs: int | None = None
    batch_size: int | None = None
    patience: int | None = None
    seed: int = 0
    limit: int = 1000
    threads: int = 1
    eval_only: bool = False
    recipe_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    verbose: int = 1

    @property
    def run_dir(self) -> Path:
        from .run_target import run_dir_name, safe_name

        return self.out / run_dir_name(self.dataset) / safe_name(self.model)  # folder:/a/b -> folder-b


class Manifest:
    """manifest.json: config, versions, per-stage inputs, wall times and output hashes."""

    def __init__(self, run_dir: Path):
        self.path = run_dir / "manifest.json"
        self.run_dir = run_dir
        self.data: dict[str, Any] = {"schema": MANIFEST_SCHEMA, "stages": {}}
        if self.path.exists():
            try:
                loaded = json.loads(self.path.read_text())
            except (OSError, json.JSONDecodeError) as exc:
                raise RunError(f"{self.path}: unreadable manifest ({exc}); move it away to start the run afresh") from exc
            if loaded.get("schema") != MANIFEST_SCHEMA:
                raise RunError(f"{self.path}: schema {loaded.get('schema')!r} is not {MANIFEST_SCHEMA!r}")
            self.data = loaded
            self.data.setdefault("stages", {})

    @property
    def stages(self) -> dict[str, dict[str, Any]]:
        return self.data["stages"]

    def is_done(self, stage: str, inputs: dict[str, Any]) -> bool:
        """A stage is done if it ran with the same inputs and its outputs are intact."""
        entry = self.stages.get(stage)
        if not entry or entry.get("inputs") != _jsonable(inputs):
            return False
        for name, digest in entry.get("outputs", {}).items():
            path = self.run_dir / name
            if not path.is_file() or sha256_file(path) != digest:
                return False
        return True

    def record(self, stage: str, inputs: dict[str, Any], outputs: list[str], wall_s: float, **extra: Any) -> None:
        self.stages[stage] = {
            "inputs": _jsonable(inputs),
            "outputs": {name: sha256_file(self.run_dir / name) for name in outputs},
            "wall_s": round(wall_s, 3),
            "finished": now_iso(),
            **_jsonable(extra),
        }
        self.save()

    def output_sha(self, stage: str, name: str) -> str | None:
        return self.stages.get(stage, {}).get("outputs", {}).get(name)

    def save(self) -> None:
        atomic_write_json(self.path, self.data)


def _jsonable(obj: Any) -> Any:
    """Normalise to what survives a JSON round trip, so recorded and fresh inputs compare equal."""
    return json.loads(json.dumps(obj, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))


def _fingerprint(*arrays: np.ndarray) -> str:
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(str(array.shape).encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:16]


class _Console:
    """Stage-level progress on stderr; the results table goes to stdout."""

    def __init__(self, verbose: int):
        self.verbose = verbose
        self.started = time.perf_counter()

    def stage(self, message: str) -> None:
        if self.verbose:
            elapsed = time.perf_counter() - self.started
            print(f"[{elapsed:7.1f}s] {message}", file=sys.stderr, flush=True)


def run_pipeline(
    dataset: str,
    *,
    model: str | None = None,
    techniques: list[str] | None = None,
    out: Path = Path("runs"),
    data_dir: Path | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    patience: int | None = None,
    seed: int = 0,
    limit: int = 1000,
    threads: int = 1,
    eval_only: bool | None = None,
    recipe_params: dict[str, dict[str, Any]] | None = None,
    verbose: int = 1,
    val_split: str | None = None,
) -> Path:
    """Train (or reuse) the baseline, apply each technique, evaluate everything. Returns the run dir."""
    from .run_target import resolve_target

    if not eval_only:
        from .compress import get_recipe

        for name in techniques or STUDY_TECHNIQUES:  # an unknown recipe fails now, not after an hour of training
            get_recipe(name).resolve_params((recipe_params or {}).get(name))
    # The model for this data (a family built for a folder's images and classes, a user's file) or a
    # one-line error naming the mistake, before anything is trained or written.
    target = resolve_target(dataset, model, val_split=val_split, data_dir=data_dir)
    for note in target.notes:  # what was chosen for the user is said once, also under --quiet
        print(f"note: {note}", file=sys.stderr, flush=True)
    config = RunConfig(
        dataset=dataset,
        model=target.spec.name,
        techniques=list(techniques or STUDY_TECHNIQUES),
        out=Path(out),
        data_dir=Path(data_dir) if data_dir else None,
        epochs=epochs,
        batch_size=batch_size,
        patience=patience,
        seed=seed,
        limit=limit,
        threads=threads,
        eval_only=is_jetson() if eval_only is None else eval_only,
        recipe_params=recipe_params or {},
        verbose=verbose,
    )
    return Pipeline(config, target).run()


class Pipeline:
    def __init__(self, config: RunConfig, target=None):
        from .models import get_model_spec

        self.config = config
        self.target = target  # a run_target.RunTarget: the spec made for this data, a user's model file
        self.spec = target.spec if target is not None else get_model_spec(config.model)
        self.run_dir = config.run_dir
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.manifest = Manifest(self.run_dir)
        self.console = _Console(config.verbose)
        self._recipe_context = None

    # -- orchestration ---------------------------------------------------------------

    def run(self) -> Path:
        from .results import environment

        cfg = self.config
        self.manifest.data.update(
            dataset=cfg.dataset,
            model=cfg.model,
            dnncomp_version=__version__,
            command=" ".join(shlex.quote(a) for a in ["dnncomp", *sys.argv[1:]]) if sys.argv else None,
            seed=cfg.seed,
            config=_jsonable({k: v for k, v in vars(cfg).items() if k != "verbose"}),
            environment=environment(),
        )
        self.manifest.save()

        data = self._load_data()
        if cfg.eval_only:
            self.console.stage("eval-only: evaluating existing artifacts with LiteRT (no TensorFlow)")
        else:
            self._baseline_stage(data)
            for technique in cfg.techniques:
                self._recipe_stage(technique, data)
            self._keras_baseline_stage(data)
        for technique in self._techniques_to_evaluate():
            self._evaluate_stage(technique, data)
        results_path = self._write_results()
        self.console.stage(f"results: {results_path}")
        return self.run_dir

    def _load_data(self):
        from .data import load_dataset

        start = time.perf_counter()
        self.console.stage(f"loading {self.config.dataset} at {self.spec.image_size[0]}x{self.spec.image_size[1]}")
        data = load_dataset(self.config.dataset, data_dir=self.config.data_dir, image_size=tuple(self.spec.image_size))
        self.data_fingerprint = _fingerprint(data.x_train, data.y_train, data.x_test, data.y_test)
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
            return list(self.config.techniques) + [KERAS_BASELINE]
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

    def _baseline_inputs(self) -> dict[str, Any]:
        from .train import training_settings

        return {
            "model": self.spec.name,
            "data": self.data_fingerprint,
            "settings": training_settings(
                self.spec,
                epochs=self.config.epochs,
                batch_size=self.config.batch_size,
                patience=self.config.patience,
                seed=self.config.seed,
            ),
        }

    def _baseline_stage(self, data) -> None:
        if self.target is not None and self.target.model_file is not None:
            return self._adopted_baseline_stage()
        inputs = self._baseline_inputs()
        if self.manifest.is_done("baseline", inputs):
            self.console.stage("baseline: up to date, reusing baseline.keras")
            return
        from .train import save_baseline, train_baseline

        settings = inputs["settings"]
        self.console.stage(
            f"baseline: training {self.spec.name} (up to {settings['epochs']} epochs, batch {settings['batch_size']}, "
            f"seed {settings['seed']})"
        )
        start = time.perf_counter()
        model, history = train_baseline(self.spec, data.x_train, data.y_train, **settings, verbose=self._keras_verbose())
        written = save_baseline(model, self.run_dir)
        atomic_write_json(self.run_dir / "history.json", history)
        self.manifest.record(
            "baseline",
            inputs,
            outputs=[p.name for p in written] + ["history.json"],
            wall_s=time.perf_counter() - start,
            epochs_run=len(history.get("loss", [])),
            best_val_accuracy=max(history.get("val_accuracy", [float("nan")])),
        )

    def _adopted_baseline_stage(self) -> None:
        """The user's own model is the baseline, as it is: saved into the run dir in dnncomp's formats, not trained."""
        from .run_target import adopt_baseline

        source = self.target.model_file
        inputs = {"model_file": str(source), "sha256": _file_or_dir_sha(source)}
        if self.manifest.is_done("baseline", inputs):
            self.console.stage("baseline: up to date, reusing baseline.keras")
            return
        self.console.stage(f"baseline: your model {source} (not trained)")
        start = time.perf_counter()
        written = adopt_baseline(source, self.run_dir)
        self.manifest.record("baseline", inputs, outputs=[p.name for p in written], wall_s=time.perf_counter() - start)

    def _recipe_inputs(self, technique: str) -> dict[str, Any]:
        from .compress import get_recipe

        recipe = get_recipe(technique)
        return {
            "recipe": technique,
            "params": recipe.resolve_params(self.config.recipe_params.get(technique)),
            "baseline": self.manifest.output_sha("baseline", "baseline.keras"),
            "seed": self.config.seed,
        }

    def _recipe_stage(self, technique: str, data) -> None:
        stage = f"compress:{technique}"
        inputs = self._recipe_inputs(technique)
        if self.manifest.is_done(stage, inputs):
            self.console.stage(f"{technique}: up to date")
            return
        from .compress import RecipeContext, apply_recipe
        from .fileio import atomic_write_bytes

        self.console.stage(f"{technique}: compressing from the saved baseline")
        start = time.perf_counter()
        if self._recipe_context is None:  # shared, so the training set is preprocessed once for all recipes
            self._recipe_context = RecipeContext(
                baseline_path=self.run_dir / "baseline.keras",
                spec=self.spec,
                x_train=data.x_train,
                y_train=data.y_train,
                seed=self.config.seed,
                verbose=self._keras_verbose(),
            )
        result = apply_recipe(technique, self._recipe_context, self.config.recipe_params.get(technique))
        atomic_write_bytes(self.run_dir / f"{technique}.tflite", result.tflite)
        self.manifest.record(stage, inputs, outputs=[f"{technique}.tflite"], wall_s=time.perf_counter() - start, info=result.info)

    def _keras_baseline_stage(self, data) -> None:
        """The study's baseline row: Keras accuracy and model.predict on one image. Not comparable with LiteRT."""
        stage = f"evaluate:{KERAS_BASELINE}"
        inputs = {
            "baseline": self.manifest.output_sha("baseline", "baseline.keras"),
            "data": self.data_fingerprint,
            "limit": self.config.limit,
        }
        if self.manifest.is_done(stage, inputs):
            return
        from .evaluate import accuracy_record, file_sizes
        from .preprocess import fit_to_input_shape, to_float_input
        from .train import keras_predict_latency, load_baseline

        self.console.stage("baseline-keras: accuracy and the study's model.predict timing")
        start = time.perf_counter()
        model = load_baseline(self.run_dir / "baseline.keras")
        x = to_float_input(fit_to_input_shape(data.x_test, self.spec.input_shape))
        predictions = np.argmax(model.predict(x, batch_size=256, verbose=0), axis=1)
        record = {
            "name": KERAS_BASELINE,
            "artifact": "baseline.h5",
            "runtime": "keras",
            "sha256": self.manifest.output_sha("baseline", "baseline.h5"),
            "accuracy": accuracy_record(predictions, data.y_test, first_n=self.config.limit),
            # The study averaged model.predict over its 1000 images; at ~70 ms a call, 200 calls give a
            # stable median and mean for a number that only shows framework overhead.
            "latency": keras_predict_latency(model, x[:KERAS_TIMING_IMAGES]),
            "size": file_sizes(self.run_dir / "baseline.h5"),
            "sparsity": None,
        }
        self.manifest.record(stage, inputs, outputs=[], wall_s=time.perf_counter() - start, record=record)

    def _evaluate_stage(self, technique: str, data) -> None:
        if technique == KERAS_BASELINE:
            return  # evaluated in its own stage, which needs TensorFlow
        from .bench import LatencyConfig, measure_latency
        from .evaluate import evaluate_accuracy, file_sizes

        artifact = self.run_dir / f"{technique}.tflite"
        latency_config = LatencyConfig(threads=self.config.threads)
        stage = f"evaluate:{technique}"
        inputs = {
            "artifact": sha256_file(artifact),
            "data": self.data_fingerprint,
            "limit": self.config.limit,
            "latency": _jsonable(vars(latency_config)),
        }
        if self.manifest.is_done(stage, inputs):
            self.console.stage(f"{technique}: evaluation up to date")
            return
        self.console.stage(f"{technique}: accuracy on {len(data.y_test)} test images, then latency at {self.config.threads} thread(s)")
        start = time.perf_counter()
        record: dict[str, Any] = {
            "name": technique,
            "artifact": artifact.name,
            "runtime": "litert",
            "sha256": inputs["artifact"],
            "accuracy": evaluate_accuracy(artifact, data.x_test, data.y_test, first_n=self.config.limit, threads=self.config.threads),
            "latency": measure_latency(artifact, data.x_test, config=latency_config),
            "size": file_sizes(artifact),
        }
        record.update(_anatomy_fields(artifact))
        recipe_stage = self.manifest.stages.get(f"compress:{technique}", {})
        if recipe_stage:
            record["recipe"] = {"name": technique, "params": recipe_stage["inputs"].get("params"), "info": recipe_stage.get("info")}
        self.manifest.record(stage, inputs, outputs=[], wall_s=time.perf_counter() - start, record=record)

    # -- results ---------------------------------------------------------------------

    def _is_current(self, name: str) -> bool:
        """Was this variant's artifact made from the current baseline, and is it still on disk unchanged?"""
        stages = self.manifest.stages
        baseline = self.manifest.output_sha("baseline", "baseline.keras")
        if name == KERAS_BASELINE:
            return stages[f"evaluate:{name}"]["inputs"].get("baseline") == baseline
        artifact = self.run_dir / f"{name}.tflite"
        recipe = stages.get(f"compress:{name}")
        if recipe is not None and recipe["inputs"].get("baseline") != baseline:
            return False
        return artifact.is_file() and sha256_file(artifact) == stages[f"evaluate:{name}"]["inputs"].get("artifact")

    def _write_results(self) -> Path:
        from .results import results_document

        # A run directory accumulates variants: this run's recipes first, then those evaluated by
        # earlier invocations, as long as they were made from the current baseline.
        requested = [KERAS_BASELINE, *self.config.techniques]
        earlier = [stage.split(":", 1)[1] for stage in self.manifest.stages if stage.startswith("evaluate:")]
        records = [
            self.manifest.stages[f"evaluate:{name}"]["record"]
            for name in dict.fromkeys(requested + earlier)
            if f"evaluate:{name}" in self.manifest.stages and self._is_current(name)
        ]
        document = results_document(records, dataset=self.config.dataset, model=self.config.model, seed=self.config.seed)
        return atomic_write_json(self.run_dir / "results.json", document)


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

