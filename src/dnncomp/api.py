"""dnncomp's public API: what the CLI's run, evaluate, bench and compress do, as functions.

Reached from the top level: ``dnncomp.run(...)``, ``dnncomp.evaluate(...)``, ``dnncomp.bench(...)``,
``dnncomp.compress(...)``, ``dnncomp.write_report(...)``. ``import dnncomp`` imports none of
this: each name is resolved on first use (PEP 562), and only ``run`` and ``compress`` import
TensorFlow (when they train or compress). ``evaluate`` and ``bench`` run on the device install.

Every function raises :class:`dnncomp.errors.DnncompError` subclasses with a one-line message
(DataError, ModelError, RecipeError, RunError, RunLockedError, StorageError,
MissingDependencyError); the CLI prints the same messages.

Numbers: accuracy is a fraction 0..1 of the test split's images (``full``) and of its first N
(``first_n``, with a Wilson 95 % interval); latency is wall time per ``interpreter.invoke()``
call with set_tensor/get_tensor, in milliseconds, measured here by LiteRT (ai-edge-litert) on
real test images; sizes are bytes of the file and of its gzip/zip. The study's published
numbers that results carry beside ours (``dnncomp.study``) are from Ruiz et al.'s tables,
measured on a Jetson Nano 2GB.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


def run(config: Any, **fields: Any) -> Path:
    """Train (or reuse) the baseline, compress it with each recipe, convert to LiteRT, evaluate all.

    ``config``: a :class:`dnncomp.run.RunConfig`, or the dataset name (``"mnist"``, ``"cifar10"``,
    ``"gtsrb"``, ``"folder:PATH"``) with RunConfig's fields as keywords, e.g.
    ``dnncomp.run("mnist", model="tiny", techniques=["float", "ptq-int8"], epochs=1, first_n=1000)``.
    Writes ``out/<dataset>/<model>/`` (manifest.json, baseline.keras/.h5, <recipe>.tflite with a
    .preprocessing.json sidecar, results.json) and returns that directory; a rerun skips what is
    done, a killed run resumes. Read the numbers with ``dnncomp.run.load_results(path)``.
    Needs TensorFlow unless ``eval_only=True``. Raises RunError, RecipeError, DataError,
    ModelError, RunLockedError (another process holds the run dir), StorageError.
    """
    from .run import run_pipeline

    return run_pipeline(config, **fields)


def evaluate(
    model: str | Path,
    dataset: str,
    *,
    data_dir: str | Path | None = None,
    first_n: int = 1000,
    threads: int = 1,
    latency: bool = True,
    min_count: int = 200,
    min_seconds: float = 2.0,
    input_range: str | None = None,
    mean: str | None = None,
    std: str | None = None,
    output: str | None = None,
    fit: str | None = None,
    skip_bad: bool = False,
    say: Callable[[str], None] | None = None,
    data: Any = None,
    limit: int | None = None,
) -> dict[str, Any]:
    """Accuracy, batch-1 latency and size of one single-input LiteRT classifier on a dataset's test split.

    ``model``: a .tflite file; its input layout (NHWC, NCHW, HxW, flat), dtype and quantization
    are read from it. ``dataset``: mnist, cifar10, gtsrb or folder:PATH, loaded at the model's
    input size. ``first_n``: also score the first N test images (``limit``: its old name, still
    taken). ``threads``: LiteRT threads. ``latency``: time at least ``min_count`` calls and ``min_seconds`` seconds (after warm-up).
    ``input_range`` ("0..1", "-1..1", "0..255"), ``mean``/``std`` ("0.5" or "0.5,0.5,0.5"): the
    pixel mapping, else the sidecar beside the model, else what the model says. ``output``: the
    class-score output (name or index) of a model with several. ``fit``: resize, pad or crop
    images of another size. ``say`` receives notes (default: none are printed). ``data``: the
    dataset already loaded at the model's input size (a :class:`dnncomp.data.Dataset`; what
    ``dnncomp evaluate`` passes), else it is loaded here. Returns a results document (schema ``dnncomp.results/1``: ``variants[0]`` holds
    ``accuracy`` {full, full_count, first_n, first_n_count, first_n_ci95}, ``latency``
    {p50_ms, p90_ms, p99_ms, mean_ms, std_ms, count, ...}, ``size`` {file_bytes, gzip_bytes,
    zip_bytes}, ``anatomy``). No TensorFlow. Raises ModelError, DataError.
    """
    from .bench import LatencyConfig
    from .measure import evaluate_model, measurement_inputs

    first_n = first_n if limit is None else limit
    (path,), given, data = measurement_inputs(
        [model], dataset, data_dir=data_dir, skip_bad=skip_bad, fit=fit, input_range=input_range, mean=mean, std=std, data=data
    )
    return evaluate_model(
        path,
        data.x_test,
        data.y_test,
        dataset=dataset,
        num_classes=data.num_classes,
        first_n=first_n,
        threads=threads,
        latency=LatencyConfig(threads=threads, min_count=min_count, min_seconds=min_seconds) if latency else None,
        output=output,
        preprocessing=given,
        say=say or (lambda line: None),
    )


def bench(
    models: Sequence[str | Path],
    dataset: str,
    *,
    data_dir: str | Path | None = None,
    threads: Sequence[int] = (1,),
    batches: Sequence[int] = (1,),
    xnnpack: Sequence[bool] = (True,),
    first_n: int = 1000,
    accuracy: bool = True,
    memory: bool = True,
    input_range: str | None = None,
    mean: str | None = None,
    std: str | None = None,
    output: str | None = None,
    fit: str | None = None,
    skip_bad: bool = False,
    quiet: bool = True,
    say: Callable[[str], None] | None = None,
    data: Any = None,
    **latency: Any,
) -> dict[str, Any]:
    """Latency, throughput, memory and accuracy of LiteRT models side by side, as ``dnncomp bench``.

    ``models``: .tflite files (ratios are against the first). Timed rounds of the models are
    interleaved (A B C A B C ...) for every combination of ``threads``, ``batches`` (images per
    call) and ``xnnpack`` (LiteRT's default delegate on/off). ``latency``: fields of
    :class:`dnncomp.bench.LatencyConfig` (min_count, min_seconds, max_seconds, warmup_min_count,
    warmup_min_seconds, samples). ``memory``: peak RSS the interpreter adds, in a fresh process
    per model. Other arguments (``data`` and ``limit`` too) as :func:`evaluate`. Returns a results document
    (``dnncomp.results/1``) with one variant per model and its ``latency_runs``; milliseconds,
    bytes, images/s. No TensorFlow. Raises ModelError, DataError.
    """
    from .bench import LatencyConfig
    from .measure import bench_models, measurement_inputs

    first_n = latency.pop("limit", first_n)  # first_n's old name
    paths, given, data = measurement_inputs(
        models, dataset, data_dir=data_dir, skip_bad=skip_bad, fit=fit, input_range=input_range, mean=mean, std=std, data=data
    )
    return bench_models(
        paths,
        data.x_test,
        data.y_test,
        dataset=dataset,
        num_classes=data.num_classes,
        threads=list(threads),
        xnnpack=list(xnnpack),
        batches=list(batches),
        base_config=LatencyConfig(**latency),
        accuracy_first_n=first_n,
        accuracy=accuracy,
        memory=memory,
        quiet=quiet,
        output=output,
        preprocessing=given,
        say=say or (lambda line: None),
    )


def compress(
    model: str | Path,
    recipe: str,
    dataset: str,
    *,
    out: str | Path | None = None,
    params: dict[str, Any] | None = None,
    data_dir: str | Path | None = None,
    registered_model: str | None = None,
    input_range: str | None = None,
    mean: str | None = None,
    std: str | None = None,
    fit: str | None = None,
    seed: int = 0,
    verbose: int = 0,
    unsafe: bool = False,
    skip_bad: bool = False,
    say: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Compress a Keras model file with one recipe and write the LiteRT flatbuffer, as ``dnncomp compress``.

    ``model``: a .keras/.h5 file (Keras 2 or 3) or a SavedModel directory; it is only read, and
    decides input shape, channels, classes and logits/softmax. ``recipe``: a name from
    ``dnncomp recipes`` (e.g. "ptq-int8", "qat", "prune", "cluster", "pcqat"); ``params`` its
    overrides (``{"final_sparsity": 0.8}``). ``dataset``: fine-tuning and calibration images.
    ``registered_model``: the registered architecture whose training defaults apply (the CLI's
    --model). ``out``: the .tflite (default ./<recipe>.tflite); its .preprocessing.json sidecar is
    written beside it. ``unsafe``: allow Lambda layers (their code runs). ``say`` receives, before
    the recipe runs, what was read from the file (``model: ...``) and each note (default: nothing is
    printed). Returns ``{"tflite": Path, "sidecar": Path, "info": what the recipe did, "notes": [...],
    "setup": the CompressionSetup (contract, preprocessing, data, training defaults' spec)}``.
    Needs TensorFlow and TFMOT. Raises ModelError, DataError, RecipeError, MissingDependencyError.
    """
    from .compress import apply_recipe, get_recipe
    from .contract import prepare_compression
    from .fileio import atomic_write_bytes
    from .preprocess import preprocessing_from_options, write_sidecar

    get_recipe(recipe).resolve_params(params)  # a typo fails before the data is loaded
    setup = prepare_compression(
        model,
        dataset,
        model=registered_model,
        preprocessing=preprocessing_from_options(input_range, mean, std),
        fit=fit,
        data_dir=data_dir,
        skip_bad=skip_bad,
        seed=seed,
        unsafe=unsafe,
        verbose=verbose,
    )
    if say is not None:  # said before the recipe's fine-tuning, which may take minutes
        say(f"model: {setup.contract.describe()}")
        for note in setup.notes:
            say(f"note: {note}")
    result = apply_recipe(recipe, setup.context, params)
    path = Path(out) if out else Path(f"{recipe}.tflite")
    atomic_write_bytes(path, result.tflite)
    contract = setup.contract
    sidecar = write_sidecar(
        path,
        setup.preprocessing,
        layout=contract.layout.kind,
        input_shape=list(contract.input_shape),
        image_shape=[contract.layout.height, contract.layout.width, contract.channels],
        num_classes=contract.num_classes,
        class_names=[str(c) for c in (getattr(setup.data, "class_names", None) or [])] or None,
        model=str(model),
        recipe=recipe,
    )
    return {"tflite": path, "sidecar": sidecar, "info": result.info, "notes": setup.notes, "setup": setup}


def write_report(run_dirs: Sequence[str | Path], out_dir: str | Path, title: str | None = None, **options: Any) -> dict[str, Any]:
    """report.md, report.html and figures comparing run directories, as ``dnncomp report``.

    ``run_dirs``: directories ``dnncomp run`` wrote (each with results.json). ``options``: those of
    :func:`dnncomp.report.write_report` (e.g. ``figures=False``: every section, no figures drawn).
    Returns the paths written. Figures need matplotlib (the full extra). Raises DnncompError
    subclasses for a run dir without results.
    """
    from .report import write_report as _write_report

    return _write_report(run_dirs, out_dir, title, **options)
