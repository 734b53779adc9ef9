"""The run's stage loop with fake workers: what runs, what is skipped, what a killed run redoes (milliseconds, no TF)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np
import pytest

from dnncomp.console import StageProgress
from dnncomp.errors import RunError
from dnncomp.run import Manifest, Pipeline, RunConfig, Stage, StageResult, Workers, execute_stages, run_pipeline


class Killed(Exception):
    """Stands for a SIGTERM in the middle of a stage."""


@dataclass
class FakeWork:
    """Workers that write small files and count what they were asked to do."""

    calls: list[str] = field(default_factory=list)
    kill_at: str | None = None
    seen_params: dict = field(default_factory=dict)

    def data(self, dataset, *, data_dir, image_size, skip_bad):
        rng = np.random.default_rng(0)
        return SimpleNamespace(
            x_train=rng.integers(0, 255, (40, 28, 28, 1), dtype=np.uint8),
            y_train=np.arange(40) % 10,
            x_test=rng.integers(0, 255, (20, 28, 28, 1), dtype=np.uint8),
            y_test=np.arange(20) % 10,
            num_classes=10,
            meta={},
        )

    def train(self, spec, data, settings, run_dir, verbose):
        self.calls.append("train")
        for name in ("baseline.keras", "baseline.h5"):
            (run_dir / name).write_bytes(f"{name} {settings['seed']}".encode())
        return [run_dir / "baseline.keras", run_dir / "baseline.h5"], {"loss": [1.0], "val_accuracy": [0.5]}

    def compress(self, technique, params, context):
        if self.kill_at == technique:
            raise Killed(technique)
        self.calls.append(f"compress:{technique}")
        self.seen_params[technique] = params
        return f"tflite of {technique} {params}".encode(), {"recipe": technique}

    def evaluate(self, artifact, data, *, first_n, threads, latency_config):
        self.calls.append(f"evaluate:{artifact.stem}")
        accuracy = {"full": 0.9, "full_count": len(data.y_test), "first_n": 0.9, "first_n_count": min(first_n, len(data.y_test))}
        return {
            "accuracy": accuracy,
            "latency": {"p50_ms": 1.0, "threads": threads},
            "size": {"file_bytes": artifact.stat().st_size, "gzip_bytes": artifact.stat().st_size},
        }

    def evaluate_keras(self, baseline, spec, data, *, first_n, preprocessing):
        self.calls.append("evaluate:baseline-keras")
        return {"accuracy": {"full": 0.9, "full_count": len(data.y_test)}, "latency": {"p50_ms": 70.0}}

    def workers(self) -> Workers:
        return Workers(
            load_data=self.data,
            train=self.train,
            compress=self.compress,
            evaluate=self.evaluate,
            evaluate_keras=self.evaluate_keras,
        )


def run(tmp_path, work: FakeWork, techniques=("float", "ptq-int8"), **settings) -> tuple[Pipeline, list[str]]:
    config = RunConfig(
        "mnist", model="study-mnist", techniques=list(techniques), out=tmp_path, eval_only=False, first_n=10, **settings
    )
    pipeline = Pipeline(config, workers=work.workers())
    lines = []
    pipeline.progress._say = lines.append
    pipeline.run()
    return pipeline, lines


def variants(tmp_path) -> list[str]:
    return [v["name"] for v in json.loads((tmp_path / "mnist" / "study-mnist" / "results.json").read_text())["variants"]]


def test_first_run_does_every_stage_once_in_order(tmp_path):
    work = FakeWork()
    pipeline, lines = run(tmp_path, work)
    assert work.calls == [
        "train",
        "compress:float",
        "compress:ptq-int8",
        "evaluate:baseline-keras",
        "evaluate:float",
        "evaluate:ptq-int8",
    ]
    assert list(pipeline.manifest.stages) == [
        "baseline",
        "compress:float",
        "compress:ptq-int8",
        "evaluate:baseline-keras",
        "evaluate:float",
        "evaluate:ptq-int8",
    ]
    assert variants(tmp_path) == ["baseline-keras", "float", "ptq-int8"]
    # overall progress: each stage says how many are done of how many, and an ETA once one is timed
    assert "(0 of 6 stages done)" in lines[1] and "baseline: training" in lines[1]
    assert any("(5 of 6 stages done, ETA" in line for line in lines)


def test_rerun_skips_everything_and_says_so(tmp_path):
    run(tmp_path, FakeWork())
    work = FakeWork()
    _, lines = run(tmp_path, work)
    assert work.calls == []
    assert any("baseline: up to date" in line for line in lines)
    assert any("float: evaluation up to date" in line for line in lines)


def test_damaged_artifact_and_changed_param_redo_only_their_recipe(tmp_path):
    run(tmp_path, FakeWork())
    run_dir = tmp_path / "mnist" / "study-mnist"
    (run_dir / "float.tflite").write_bytes(b"truncated")
    work = FakeWork()
    run(tmp_path, work)
    assert work.calls == ["compress:float"]  # the same bytes again: their evaluation still holds

    work = FakeWork()
    run(tmp_path, work, recipe_params={"ptq-int8": {"representative_samples": "50"}})
    assert work.calls == ["compress:ptq-int8", "evaluate:ptq-int8"]
    assert work.seen_params["ptq-int8"] == {"representative_samples": "50"}


def test_killed_run_resumes_at_the_stage_it_was_in(tmp_path):
    with pytest.raises(Killed):
        run(tmp_path, FakeWork(kill_at="ptq-int8"))
    stages = json.loads((tmp_path / "mnist" / "study-mnist" / "manifest.json").read_text())["stages"]
    assert list(stages) == ["baseline", "compress:float"]
    assert not (tmp_path / "mnist" / "study-mnist" / ".dnncomp.lock.json").exists()
    work = FakeWork()
    run(tmp_path, work)
    assert work.calls == ["compress:ptq-int8", "evaluate:baseline-keras", "evaluate:float", "evaluate:ptq-int8"]


def test_another_seed_retrains_and_recompresses(tmp_path):
    run(tmp_path, FakeWork())
    work = FakeWork()
    run(tmp_path, work, seed=1)
    assert work.calls[:3] == ["train", "compress:float", "compress:ptq-int8"]


def test_eval_only_evaluates_the_artifacts_present_and_trains_nothing(tmp_path, monkeypatch):
    with pytest.raises(RunError, match="no .tflite artifacts"):
        _eval_only(tmp_path, FakeWork())
    run(tmp_path, FakeWork(), techniques=("float",))
    monkeypatch.setenv("DNNCOMP_MACHINE_ID", "board")  # another machine measures again
    work = FakeWork()
    _eval_only(tmp_path, work)
    assert work.calls == ["evaluate:float"]
    work = FakeWork()
    _eval_only(tmp_path, work)
    assert work.calls == []
    # run_pipeline (dnncomp.run) still takes first_n's old name, limit: the same inputs, so nothing is re-measured
    work = FakeWork()
    settings = dict(model="study-mnist", techniques=["float", "ptq-int8"], out=tmp_path, eval_only=True, verbose=0)
    run_pipeline("mnist", workers=work.workers(), limit=10, **settings)
    assert work.calls == []


def _eval_only(tmp_path, work):
    config = RunConfig(
        "mnist", model="study-mnist", techniques=["float", "ptq-int8"], out=tmp_path, eval_only=True, first_n=10, verbose=0
    )
    return Pipeline(config, workers=work.workers()).run()


def test_execute_stages_computes_inputs_late_and_records_outputs(tmp_path):
    """A stage's inputs may hash what the stage before it wrote: they are computed when its turn comes."""
    manifest = Manifest(tmp_path)
    order = []

    def write() -> StageResult:
        (tmp_path / "a.bin").write_bytes(b"a")
        order.append("a")
        return StageResult(outputs=["a.bin"], extra={"info": {"n": 1}})

    stages = [
        Stage("make:a", lambda: {"k": 1}, write, running="a: writing"),
        Stage(
            "use:a",
            lambda: {"a": (tmp_path / "a.bin").read_bytes().decode()},
            lambda: order.append("b") or StageResult(),
            running="b: reading",
        ),
    ]
    lines = []
    assert execute_stages(stages, manifest, StageProgress(1, say=lines.append)) == ["make:a", "use:a"]
    assert manifest.stages["make:a"]["info"] == {"n": 1} and manifest.stages["use:a"]["inputs"] == {"a": "a"}
    assert execute_stages(stages, Manifest(tmp_path), StageProgress(1, say=lines.append)) == []
    assert order == ["a", "b"]


def test_progress_eta_from_earlier_wall_times_and_this_runs_stages():
    clock = iter([0.0, 1.0, 2.0, 3.0]).__next__
    lines = []
    progress = StageProgress(1, say=lines.append, clock=clock)
    progress.plan(["baseline", "compress:a", "compress:b", "evaluate:a"], {"baseline": 600.0, "compress:a": 60.0})
    assert progress.status("baseline") == "0 of 4 stages done, ETA > 11m 00s"  # compress:b and evaluate:a not yet known
    progress.done("baseline", 590.0)
    progress.done("compress:a", 50.0)
    assert progress.status("compress:b") == "2 of 4 stages done, ETA > 50s"  # compress:b like compress:a; evaluate unknown
    progress.skipped("compress:b")
    progress.done("evaluate:a", 5.0)
    assert progress.status("evaluate:a") == "4 of 4 stages done"
    quiet = []
    StageProgress(0, say=quiet.append).line("nothing")
    assert quiet == []


def test_a_manifest_from_before_the_schedule_rename_keeps_its_baseline(tmp_path):
    """Baselines recorded with the training settings' old key ("recipe", now "schedule") are not trained again."""
    config = RunConfig("mnist", model="tiny-mnist", techniques=["float"], out=tmp_path, eval_only=False, first_n=10, verbose=0)
    Pipeline(config, workers=FakeWork().workers()).run()
    path = tmp_path / "mnist" / "tiny-mnist" / "manifest.json"
    manifest = json.loads(path.read_text())
    settings = manifest["stages"]["baseline"]["inputs"]["settings"]
    assert settings["schedule"]["name"] == "sgd-nesterov-cosine"
    settings["recipe"] = settings.pop("schedule")  # as the previous version wrote it
    path.write_text(json.dumps(manifest))
    work = FakeWork()
    Pipeline(config, workers=work.workers()).run()
    assert work.calls == []


def test_eta_keeps_the_keras_row_apart_from_litert_evaluations():
    """Keras' model.predict row takes far longer than a LiteRT evaluation: its time must not set their ETA."""
    progress = StageProgress(1, say=lambda line: None)
    progress.plan(
        ["evaluate:baseline-keras", "evaluate:float", "evaluate:qat"], kinds={"evaluate:baseline-keras": "keras-evaluate"}
    )
    progress.done("evaluate:baseline-keras", 40.0)
    assert progress.status("evaluate:float") == "1 of 3 stages done"  # no LiteRT evaluation timed yet: no ETA
    progress.done("evaluate:float", 5.0)
    assert progress.status("evaluate:qat") == "2 of 3 stages done, ETA 5s"


def test_the_keras_row_is_its_own_kind_in_a_run(tmp_path):
    config = RunConfig("mnist", model="study-mnist", techniques=["float"], out=tmp_path, eval_only=False, first_n=10)
    pipeline = Pipeline(config, workers=FakeWork().workers())
    pipeline.progress._say = lambda line: None
    pipeline.run()
    assert pipeline.progress.kinds == {"evaluate:baseline-keras": "keras-evaluate"}
