"""Command-line interface (Click). Thin: parse arguments, call the library, print.

Every DnncompError becomes one line on stderr and exit code 2, never a traceback.
Library modules are imported inside the commands so that ``dnncomp --help`` is
instant and the device install never pulls in TensorFlow.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from . import __version__
from .errors import DnncompError

DATA_DIR_HELP = "Directory holding the dataset files (default: $DNNCOMP_DATA_DIR, else the per-user cache)."
TRAINED_RANGE_HELP = (
    "The real value of pixels 0 and 255 the model was trained with: 0..1 (pixel/255, the default), "
    "-1..1 or 0..255. Refused for a model with its own Rescaling/Normalization layer (it decides)."
)
SKIP_BAD_HELP = (
    "Skip image files that cannot be read instead of stopping. Files that are not images "
    "(.DS_Store, ._* AppleDouble, Thumbs.db, README.txt, hidden files) are always skipped and counted."
)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="dnncomp")
def app():
    """dnncomp: train, compress (quantize, prune, cluster), convert to LiteRT, and measure
    accuracy, latency and size side by side."""


# ---- datasets ---------------------------------------------------------------------


_WIDE_KEY = "dnncomp.wide"
# Not an argument of the commands: the table printers ask for it (_wide()), so adding it to a command is one line.
_wide_option = click.option(
    "--wide",
    is_flag=True,
    expose_value=False,
    callback=lambda ctx, _param, value: ctx.meta.__setitem__(_WIDE_KEY, value),
    help="Show every table column even past the terminal's width (default: the columns that fit; the rest are named).",
)


def _wide() -> bool:
    context = click.get_current_context(silent=True)
    return bool(context and context.meta.get(_WIDE_KEY))


@app.command("datasets")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None, help=DATA_DIR_HELP)
@click.option(
    "--verify",
    is_flag=True,
    help="Check image counts, shapes, label ranges and per-class counts against the published "
    "numbers; exit 2 with one error line if a check fails or a dataset is missing.",
)
@click.option("--skip-bad", is_flag=True, help=SKIP_BAD_HELP + " They are listed at the end.")
@click.option("--download", is_flag=True, help="Download the datasets that are not found into the per-user cache.")
@click.option(
    "--only",
    "names",
    default=None,
    metavar="NAMES",
    help="Comma-separated datasets to show (default: mnist,cifar10,gtsrb); folder:PATH works too.",
)
@_wide_option
def datasets_command(data_dir, verify, skip_bad, download, names):
    """Where each dataset was found, images per split, classes and image shape.

    Looks in --data-dir, then $DNNCOMP_DATA_DIR, then the per-user cache; a dataset that is
    in none of them is shown with how to get it (or fetched, with --download). For image
    folders: what was skipped and why, by kind, and how many images were turned upright by
    their EXIF orientation; --verify checks that every file was read and every class is in
    both splits.
    """
    from rich.console import Console

    from .data import DATASETS
    from .data.inventory import print_survey, survey

    err = Console(stderr=True)
    statuses = survey(
        _csv_list(names) or DATASETS,
        data_dir=data_dir,
        verify=verify,
        skip_bad=skip_bad,
        download=download,
        announce=lambda name: err.print(f"loading {name} ...", style="dim", highlight=False),
    )
    print_survey(statuses, verify=verify, wide=_wide())
    errors = [s for s in statuses if s.state == "error"]
    if errors:
        raise errors[0].error
    if verify:
        from .errors import DataError

        failed = [
            f"{s.name} ({s.state})" if s.state != "ok" else f"{s.name} ({', '.join(c.name for c in s.failed_checks)})"
            for s in statuses
            if s.state != "ok" or s.failed_checks
        ]
        if failed:
            raise DataError(f"verify failed: {'; '.join(failed)}")
        click.echo(f"verify: all {sum(len(s.checks) for s in statuses)} checks pass", err=True)


# ---- run / evaluate ------------------------------------------------------------------


def _csv_list(value: str | None) -> list[str] | None:
    return [item.strip() for item in value.split(",") if item.strip()] if value else None


def _split_param(item: str) -> tuple[str | None, str, str]:
    """``prune.final_sparsity=0.9`` -> ("prune", "final_sparsity", "0.9"); ``k=v`` -> (None, "k", "v")."""
    key, sep, value = item.partition("=")
    recipe, dot, name = key.strip().rpartition(".")
    if not sep or not name:
        return None, "", value
    return (recipe.strip() if dot else None), name.strip(), value.strip()


def _parse_recipe_params(values: tuple[str, ...]) -> dict[str, dict[str, str]]:
    """``--param prune.final_sparsity=0.9`` -> {"prune": {"final_sparsity": "0.9"}}."""
    from .errors import RecipeError

    params: dict[str, dict[str, str]] = {}
    for item in values:
        recipe, name, value = _split_param(item)
        if not recipe or not name:
            raise RecipeError(f"--param {item!r}: expected RECIPE.KEY=VALUE, e.g. prune.final_sparsity=0.9")
        params.setdefault(recipe, {})[name] = value
    return params


def _remote_options(command):
    """--on/--remote-python/--accept-new-host-key: run the device-side command on a board over SSH (dnncomp.remote)."""
    for decorator in reversed(
        (
            click.option(
                "--on",
                "on",
                default=None,
                metavar="TARGET",
                help="Run it on a device over SSH: ssh://[user@]host[:port] or a Host from ~/.ssh/config (needs "
                "`pip install 'dnncomp[remote]'`; the device needs dnncomp's device install: `dnncomp device check`).",
            ),
            click.option(
                "--remote-python",
                default=None,
                metavar="PATH",
                help="With --on: the device's Python (default: the venv `dnncomp device setup` made, else python3).",
            ),
            click.option(
                "--accept-new-host-key",
                is_flag=True,
                help="With --on: trust and record a device's host key not yet in ~/.ssh/known_hosts (a changed key is always refused).",
            ),
        )
    ):
        command = decorator(command)
    return command


def _device(on: str, remote_python: str | None, accept_new_host_key: bool):
    from .remote import Device

    return Device(
        on,
        remote_python=remote_python,
        accept_new_host_key=accept_new_host_key,
        say=click.echo,
        say_err=lambda line: click.echo(line, err=True),
    )


def _passthrough(**options) -> list[str]:
    """Options as the device's dnncomp takes them: None/False left out, True as a bare flag."""
    args: list[str] = []
    for name, value in options.items():
        if value is None or value is False:
            continue
        args += [f"--{name.replace('_', '-')}"] + ([] if value is True else [str(value)])
    return args


def _pixel_range_options(range_help: str, prefix: str = ""):
    """--input-range/--mean/--std (dnncomp.preprocess.preprocessing_from_options): the real values pixels become."""

    def decorate(command):
        for decorator in reversed(
            (
                click.option("--input-range", default=None, metavar="LO..HI", help=prefix + range_help),
                click.option(
                    "--mean", default=None, metavar="M[,M,M]", help=prefix + "Per-channel mean subtracted after --input-range."
                ),
                click.option(
                    "--std", default=None, metavar="S[,S,S]", help=prefix + "Per-channel std divided by after the mean."
                ),
            )
        ):
            command = decorator(command)
        return command

    return decorate


def _input_options(command):
    """--input-range/--mean/--std/--output of evaluate and bench: how images become the model's input."""
    command = click.option(
        "--output",
        "output",
        default=None,
        metavar="NAME|INDEX",
        help="The output holding the class scores, for a model with several (default: the one whose size "
        "matches the dataset's classes).",
    )(command)
    return _pixel_range_options(
        "Real value of pixels 0..255 the model takes: 0..1, -1..1, 0..255 or any LO..HI. "
        "Default: the sidecar beside the .tflite, else inferred from the model (and said)."
    )(command)


def _latency_timing_options(command):
    """--min-count/--min-seconds: how long each batch-1 latency is timed (bench.LatencyConfig's defaults)."""
    command = click.option(
        "--min-seconds", type=click.FloatRange(min=0), default=2.0, show_default=True, help="... and at least this many seconds."
    )(command)
    return click.option(
        "--min-count", type=click.IntRange(min=1), default=200, show_default=True, help="Timed runs: at least this many calls ..."
    )(command)


def _first_n_option(what: str):
    """--first-n N (also --limit, its old name): the first N test images, ``first_n`` in results.json. ``what``: the
    help's first sentence."""
    return click.option(
        "--first-n",
        "--limit",
        "first_n",
        type=click.IntRange(min=0),
        default=1000,
        show_default=True,
        metavar="N",
        help=f"{what} Called first_n in results.json; --limit is its old name.",
    )


def _fit_option(command):
    """--fit (dnncomp.preprocess.Fit): how images of another size than the model's input reach it."""
    return click.option(
        "--fit",
        type=click.Choice(["resize", "pad", "crop"]),
        default=None,
        help="Images of another size than the model's input: resize (Pillow), pad (centred on the background, "
        "the LeNet convention for 28x28 digits on 32x32) or crop (the centre). Default: the sidecar's, else pad "
        "for smaller grey images and resize otherwise (said). Stored in the .tflite's sidecar.",
    )(command)


@app.command("run")
@click.argument("dataset")
@click.option(
    "--model",
    "model",
    default=None,
    help="A family (tiny, improved, study: built for the data's image size, channels and classes), a "
    "registered model (tiny-mnist...), or your own .keras/.h5 file (used as the baseline, not trained). "
    "Default: study-<DATASET>; tiny for folder:PATH.",
)
@click.option(
    "--val-split",
    default=None,
    metavar="F",
    help="Validation fraction held out of the training images, stratified by class and seeded (default: the "
    "model's, 0.1 or the study's 0.2; the study's models on their own datasets keep the study's split).",
)
@_pixel_range_options(TRAINED_RANGE_HELP, prefix="With --model FILE: ")
@_fit_option
@click.option(
    "--techniques",
    "--recipes",
    "techniques",
    default=None,
    help="Comma-separated recipes to apply. Default: float,qat,prune,cluster (the study's three plus float).",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("runs"),
    show_default=True,
    help="Runs root; the run goes to OUT/DATASET/MODEL.",
)
@click.option("--data-dir", type=click.Path(path_type=Path), default=None, help=DATA_DIR_HELP)
@click.option("--skip-bad", is_flag=True, help=SKIP_BAD_HELP)
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Maximum baseline epochs (study: 50, early stopping).")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Baseline batch size (study: 32).")
@click.option(
    "--patience", type=click.IntRange(min=0), default=None, help="Early-stopping patience on validation accuracy (study: 5)."
)
@click.option("--seed", type=click.IntRange(0, 2**32 - 1), default=0, show_default=True)
@_first_n_option("Also report accuracy on the first N test images (the study used 1000).")
@click.option(
    "--threads", type=click.IntRange(min=1), default=1, show_default=True, help="LiteRT interpreter threads for latency."
)
@_latency_timing_options
@click.option(
    "--eval-only/--no-eval-only",
    default=None,
    help="Only evaluate existing .tflite artifacts (no TensorFlow needed). Default: on for NVIDIA Jetson.",
)
@click.option("--param", "params", multiple=True, metavar="RECIPE.KEY=VALUE", help="Override a recipe parameter; repeatable.")
@click.option("--wait", is_flag=True, help="If another dnncomp run holds the run directory, wait for it instead of refusing.")
@click.option(
    "--results-out",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="With --eval-only: write manifest.json and results.json here, e.g. for a run dir on read-only media.",
)
@click.option("--quiet", is_flag=True, help="No progress output.")
@click.option(
    "--unsafe", is_flag=True, help="Load Lambda layers from --model's file: their Python code runs. Only for files you trust."
)
@click.option(
    "--mcu",
    is_flag=True,
    help="Also measure each int8 variant with TFLite Micro (pip install 'dnncomp[mcu]'): tensor arena (searched), "
    "flash, op list, TFLM-vs-LiteRT top-1 agreement; in results.json as `mcu`.",
)
@click.option(
    "--mcu-images",
    type=click.IntRange(min=0),
    default=1000,
    show_default=True,
    help="With --mcu: compare TFLM with LiteRT on the first N test images (0: all).",
)
@_wide_option
@_remote_options
def run_command(
    dataset,
    model,
    val_split,
    input_range,
    mean,
    std,
    fit,
    techniques,
    out,
    data_dir,
    skip_bad,
    epochs,
    batch_size,
    patience,
    seed,
    first_n,
    threads,
    min_count,
    min_seconds,
    eval_only,
    params,
    wait,
    results_out,
    quiet,
    unsafe,
    mcu,
    mcu_images,
    on,
    remote_python,
    accept_new_host_key,
):
    """Train the baseline, compress it with each technique, convert to LiteRT and evaluate.

    Writes runs/DATASET/MODEL/: manifest.json, baseline.keras/.h5, <recipe>.tflite, results.json.
    A rerun skips what is already done; an interrupted run resumes. Results belong to the machine
    that measured them: --eval-only on another machine re-measures and keeps both (results.json
    `measurements`; $DNNCOMP_MACHINE_ID names the machine).
    """
    from .model_io import unsafe_loading
    from .preprocess import preprocessing_from_options
    from .run import load_results, run_pipeline

    if on and not eval_only:
        raise click.UsageError("--on needs --eval-only: train and compress here, then evaluate on the device")
    if on and results_out is not None:
        raise click.UsageError("--on keeps the device's results in the run dir; leave out --results-out")
    if mcu:
        if on:
            raise click.UsageError("--mcu runs TFLite Micro on this machine; leave out --on")
        from .micro import require_tflm

        require_tflm("--mcu")  # before an hour of training, not after
    with unsafe_loading(unsafe):  # every load in the run: the user's file, then the baseline adopted from it
        run_dir = run_pipeline(
            dataset,
            model=model,
            techniques=_csv_list(techniques),
            out=out,
            data_dir=data_dir,
            epochs=epochs,
            batch_size=batch_size,
            patience=patience,
            seed=seed,
            first_n=first_n,
            threads=threads,
            latency_min_count=min_count,
            latency_min_seconds=min_seconds,
            eval_only=eval_only,
            recipe_params=_parse_recipe_params(params),
            verbose=0 if quiet else 1,
            val_split=val_split,
            preprocessing=preprocessing_from_options(input_range, mean, std, fit),
            wait=wait,
            results_out=results_out,
            skip_bad=skip_bad,
            mcu_images=mcu_images if mcu else None,
        )
    if on:  # the device's records join the manifest's; the host run then writes them into results.json
        from .remote import evaluate_run_on_device, print_side_by_side

        with _device(on, remote_python, accept_new_host_key) as device:
            evaluate_run_on_device(
                device,
                run_dir,
                dataset,
                first_n=first_n,
                threads=threads,
                data_dir=data_dir,
                skip_bad=skip_bad,
                wait=wait,
                min_count=min_count,
                min_seconds=min_seconds,
            )
        run_dir = run_pipeline(
            dataset,
            model=model,
            techniques=_csv_list(techniques),
            out=out,
            data_dir=data_dir,
            seed=seed,
            first_n=first_n,
            threads=threads,
            latency_min_count=min_count,
            latency_min_seconds=min_seconds,
            eval_only=True,
            verbose=0,
            wait=wait,
            skip_bad=skip_bad,
            val_split=val_split,
            preprocessing=preprocessing_from_options(input_range, mean, std, fit),
        )
    from .tables import print_results

    results = load_results(run_dir)
    print_results(results, wide=_wide())
    check = results.get("baseline_check") or {}
    if check.get("message"):
        click.echo(f"warning: {check['message']}", err=True)
    else:  # a float that has learned: say once which recipes cost a lot of it
        from .run import large_accuracy_drops

        drops = large_accuracy_drops(results.get("variants", []))
        if drops:
            click.echo(f"warning: {drops}", err=True)
    best = results.get("best_variant")
    if best:  # issue 13: the variant a user would ship
        click.echo(
            f"best compressed variant: {best['name']} ({best['gzip_ratio_vs_float']}x smaller than float after gzip, "
            f"{best['accuracy_change_points']:+.2f} points; {best['rule']})"
        )
    if on:
        print_side_by_side(results)
    if mcu:  # issue 15: what a firmware engineer needs, per variant
        from .micro import mcu_summary_line

        for variant in results.get("variants", []):
            if "mcu" in variant:
                click.echo("TFLite Micro " + mcu_summary_line(variant["name"], variant["mcu"]))
    others = [m for m in (results.get("measurements") or {}) if m != results.get("machine_id")]
    if others:
        click.echo(f"also measured on {len(others)} other machine(s): {', '.join(others)} (results.json `measurements`)")
    click.echo(f"run directory: {run_dir}" if results_out is None else f"results: {run_dir / 'results.json'}")


def _print_io(paths, anatomies: list[dict]) -> None:
    """inspect: each model's inputs and outputs (dtype, shape, batch, layout, quantization and the real range it covers)."""
    from .evaluate import open_interpreter
    from .measure import rich_console
    from .signature import describe_tensor, io_details

    console = rich_console()
    for path, anatomy in zip(paths, anatomies):
        io = io_details(open_interpreter(path))
        anatomy["io"] = io
        console.print(f"[bold]{path}[/bold] inputs and outputs")
        for side in ("inputs", "outputs"):
            for record in io[side]:
                console.print(f"  {side[:-1]} {describe_tensor(record)}", markup=False)


def _say_data_notes(data, model_paths) -> None:
    """Say once, before the numbers, what reading the images did (files skipped as not images, EXIF
    orientation applied, bit depths scaled...) and the grey/colour conversion each model needs."""
    from .evaluate import open_interpreter
    from .preprocess import channel_conversion_note, input_layout

    notes = list(data.meta.get("notes", []))
    skipped = data.meta.get("skipped") or []
    if skipped:
        more = f"; and {len(skipped) - 1} more" if len(skipped) > 1 else ""
        notes.append(f"skipped {len(skipped)} unreadable image file(s) (--skip-bad): {skipped[0]}{more}")
    for path in model_paths:
        try:
            shape = [int(d) for d in open_interpreter(path).get_input_details()[0]["shape"][1:]]
            channels = input_layout(shape, str(path), data.x_test.shape[1:]).channels
        except (DnncompError, IndexError, ValueError):
            continue  # evaluation itself says what is wrong with the model
        notes.append(channel_conversion_note(data.x_test.shape[-1], channels))
    for note in dict.fromkeys(n for n in notes if n):
        click.echo(f"note: {note}")


@app.command("evaluate")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--dataset", required=True, help="mnist, cifar10, gtsrb (or folder:<path>). Loaded at the model's input size.")
@click.option("--skip-bad", is_flag=True, help=SKIP_BAD_HELP)
@click.option("--data-dir", type=click.Path(path_type=Path), default=None, help=DATA_DIR_HELP)
@_first_n_option("Also report accuracy on the first N test images (the study used 1000).")
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True, help="LiteRT interpreter threads.")
@click.option("--latency/--no-latency", default=True, show_default=True, help="Also time batch-1 inference.")
@_latency_timing_options
@click.option(
    "--json",
    "json_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Write the results record (dnncomp.results/1) here.",
)
@_input_options
@_fit_option
@_wide_option
@_remote_options
def evaluate_command(
    model,
    dataset,
    data_dir,
    skip_bad,
    first_n,
    threads,
    latency,
    min_count,
    min_seconds,
    json_path,
    input_range,
    mean,
    std,
    output,
    fit,
    on,
    remote_python,
    accept_new_host_key,
):
    """Accuracy (full test set and first N), batch-1 latency and size of any single-input LiteRT classifier.

    Input layout (NHWC, channel-first, HxW, flat), batch, dtype and quantization are read from
    the model, so foreign models work as they are. The pixel range it takes comes from
    --input-range/--mean/--std, else the sidecar dnncomp writes beside each .tflite, else the
    model (its input quantization, or a rescaling layer inside); the first line says which.
    Needs no TensorFlow.
    """
    from . import api
    from .fileio import atomic_write_json
    from .measure import measurement_inputs, print_evaluation

    (path,), _, data = measurement_inputs(
        [model], dataset, data_dir=data_dir, skip_bad=skip_bad, fit=fit, input_range=input_range, mean=mean, std=std
    )
    _say_data_notes(data, [path])
    if on:  # the device prints its own evaluation as it runs
        from .remote import measure_on_device

        with _device(on, remote_python, accept_new_host_key) as device:
            document = measure_on_device(
                device,
                "evaluate",
                [path],
                data,
                _passthrough(
                    first_n=first_n,
                    threads=threads,
                    no_latency=not latency,
                    min_count=min_count,
                    min_seconds=min_seconds,
                    input_range=input_range,
                    mean=mean,
                    std=std,
                    output=output,
                ),
                dataset,
            )
    else:
        document = api.evaluate(
            path,
            dataset,
            data=data,
            first_n=first_n,
            threads=threads,
            latency=latency,
            min_count=min_count,
            min_seconds=min_seconds,
            input_range=input_range,
            mean=mean,
            std=std,
            output=output,
            say=click.echo,
        )
        print_evaluation(document, wide=_wide())
    if json_path:
        atomic_write_json(json_path, document)
        click.echo(f"wrote {json_path}")


# ---- bench ---------------------------------------------------------------------------


def _int_list(value: str, what: str) -> list[int]:
    try:
        items = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got {value!r}", param_hint=what) from None
    if not items or min(items) < 1:
        raise click.BadParameter(f"expected integers >= 1, got {value!r}", param_hint=what)
    return items


@app.command("bench")
@click.argument("models", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--dataset", required=True, help="Test images to feed (real, cycled) and to score accuracy on.")
@click.option("--skip-bad", is_flag=True, help=SKIP_BAD_HELP)
@click.option("--data-dir", type=click.Path(path_type=Path), default=None, help=DATA_DIR_HELP)
@click.option("--threads", "threads_list", default="1", show_default=True, help="Thread counts to sweep, e.g. 1,2,4.")
@click.option("--batch", "batch_list", default="1", show_default=True, help="Batch sizes, e.g. 1,8,32 (throughput in images/s).")
@click.option(
    "--xnnpack",
    "xnnpack_mode",
    type=click.Choice(["on", "off", "both"]),
    default="on",
    show_default=True,
    help="LiteRT's default XNNPACK delegate.",
)
@click.option("--no-xnnpack", is_flag=True, help="Same as --xnnpack off.")
@_latency_timing_options
@click.option(
    "--max-seconds",
    type=click.FloatRange(min=0, min_open=True),
    default=60.0,
    show_default=True,
    help="Stop timing a model after this many seconds.",
)
@click.option(
    "--warmup-count", type=click.IntRange(min=0), default=20, show_default=True, help="Warm-up: at least this many calls ..."
)
@click.option(
    "--warmup-seconds",
    type=click.FloatRange(min=0),
    default=None,
    help="... and at least this many seconds.  [default: 0.5, or --min-seconds when shorter]",
)
@click.option(
    "--samples", type=click.IntRange(min=1), default=256, show_default=True, help="Distinct real test images cycled through."
)
@_first_n_option("Also report accuracy on the first N test images.")
@click.option("--accuracy/--no-accuracy", default=True, show_default=True, help="Score accuracy (a separate pass before timing).")
@click.option("--memory/--no-memory", default=True, show_default=True, help="Peak RSS per model, each in a fresh process.")
@click.option("--anatomy", is_flag=True, help="Also print each model's anatomy (as `dnncomp inspect`).")
@click.option(
    "--json",
    "json_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Write the results record (dnncomp.results/1).",
)
@click.option(
    "--csv",
    "csv_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Write one CSV row per model and configuration.",
)
@click.option("--md", "md_path", type=click.Path(path_type=Path, dir_okay=False), default=None, help="Write a Markdown table.")
@click.option("--quiet", is_flag=True, help="No progress output.")
@_input_options
@_fit_option
@_wide_option
@_remote_options
def bench_command(
    models,
    dataset,
    data_dir,
    skip_bad,
    threads_list,
    batch_list,
    xnnpack_mode,
    no_xnnpack,
    min_count,
    min_seconds,
    max_seconds,
    warmup_count,
    warmup_seconds,
    samples,
    first_n,
    accuracy,
    memory,
    anatomy,
    json_path,
    csv_path,
    md_path,
    quiet,
    input_range,
    mean,
    std,
    output,
    fit,
    on,
    remote_python,
    accept_new_host_key,
):
    """Latency, throughput, memory and accuracy of LiteRT models, side by side.

    Timed rounds of the models are interleaved (A B C A B C ...) and ratios are
    against the first model. Modelled on LiteRT's benchmark_model: init, first
    inference, warm-up, then count/min/max/mean/std/p50/p90/p95/p99. Needs no TensorFlow.
    """
    from . import api
    from .fileio import atomic_write_json, atomic_write_text
    from .measure import measurement_inputs, print_bench
    from .results import csv_text, flat_rows, markdown_table

    paths, _, data = measurement_inputs(
        models, dataset, data_dir=data_dir, skip_bad=skip_bad, fit=fit, input_range=input_range, mean=mean, std=std
    )
    xnnpack = [False] if no_xnnpack or xnnpack_mode == "off" else ([True, False] if xnnpack_mode == "both" else [True])
    _say_data_notes(data, paths)
    if on:  # the device prints its own tables as it runs
        from .remote import measure_on_device

        _int_list(threads_list, "--threads"), _int_list(batch_list, "--batch")  # refused here, before connecting
        with _device(on, remote_python, accept_new_host_key) as device:
            document = measure_on_device(
                device,
                "bench",
                paths,
                data,
                _passthrough(
                    threads=threads_list,
                    batch=batch_list,
                    xnnpack="off" if no_xnnpack else xnnpack_mode,
                    min_count=min_count,
                    min_seconds=min_seconds,
                    max_seconds=max_seconds,
                    warmup_count=warmup_count,
                    warmup_seconds=warmup_seconds,
                    samples=samples,
                    first_n=first_n,
                    no_accuracy=not accuracy,
                    no_memory=not memory,
                    anatomy=anatomy,
                    quiet=quiet,
                    input_range=input_range,
                    mean=mean,
                    std=std,
                    output=output,
                ),
                dataset,
            )
    else:
        document = api.bench(
            paths,
            dataset,
            data=data,
            threads=_int_list(threads_list, "--threads"),
            batches=_int_list(batch_list, "--batch"),
            xnnpack=xnnpack,
            first_n=first_n,
            accuracy=accuracy,
            memory=memory,
            input_range=input_range,
            mean=mean,
            std=std,
            output=output,
            quiet=quiet,
            say=click.echo,
            min_count=min_count,
            min_seconds=min_seconds,
            max_seconds=max_seconds,
            warmup_min_count=warmup_count,
            warmup_min_seconds=warmup_seconds,
            samples=samples,
        )
        if anatomy:
            _print_anatomies(paths)
        print_bench(document, wide=_wide())
    rows = flat_rows(document)
    for path, text in ((json_path, None), (csv_path, csv_text(rows)), (md_path, markdown_table(rows))):
        if path is None:
            continue
        if text is None:
            atomic_write_json(path, document)
        else:
            atomic_write_text(path, text)
        click.echo(f"wrote {path}")


def _print_anatomies(paths, tensors: bool = False) -> list[dict]:
    from .anatomy import anatomy_lines, inspect_model
    from .console import Column, print_table
    from .measure import rich_console

    console = rich_console()
    anatomies = []
    for path in paths:
        anatomy = inspect_model(path)
        anatomies.append(anatomy)
        console.print(f"[bold]{path}[/bold]")
        for line in anatomy_lines(anatomy):
            console.print("  " + line)
        if tensors:
            print_table(
                [
                    Column("tensor", 0, "left"),
                    Column("role", 3, "left"),
                    Column("dtype", 1, "left"),
                    Column("shape", 2, "left"),
                    Column("zeros", 0),
                    Column("unique", 2),
                    Column("quantization", 4, "left"),
                ],
                [
                    (
                        w["name"].split(";")[0][:60],
                        w["role"],
                        w["dtype"],
                        "x".join(map(str, w["shape"])),
                        "–" if w["sparsity"] is None else f"{w['sparsity']:.3f}",
                        str(w["unique"] or "–"),
                        "–" if not (q := w["quantization"]) else ("per-channel" if q["per_channel"] else "per-tensor"),
                    )
                    for w in anatomy["weights"]
                ],
                title="weight tensors",
                wide=_wide(),
                out=console,
            )
            print_table(
                [
                    Column("#", 1),
                    Column("op", 0, "left"),
                    Column("computes in", 0, "left"),
                    Column("output shape", 2, "left"),
                    Column("MACs/image", 1),
                ],
                [
                    (
                        str(i),
                        op["op"],
                        op["dtype"],
                        "x".join(map(str, op["output_shape"] or [])),
                        f"{op['macs']:,}" if op["macs"] else "",
                    )
                    for i, op in enumerate(anatomy["op_list"])
                ],
                title="ops in execution order",
                wide=_wide(),
                out=console,
            )
    return anatomies


@app.command("inspect")
@click.argument("models", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--json", "json_path", type=click.Path(path_type=Path, dir_okay=False), default=None, help="Write the anatomies as JSON."
)
@click.option(
    "--target",
    type=click.Choice(["mcu"]),
    default=None,
    help="mcu: also measure with TFLite Micro: tensor arena (searched), flash, op resolver list, int8 I/O, missing ops.",
)
@click.option("--dataset", default=None, help="With --target mcu: compare TFLM with LiteRT on this dataset's test images.")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None, help=DATA_DIR_HELP)
@_first_n_option("With --dataset: the first N test images (0: all).")
@_wide_option
@_remote_options
def inspect_command(models, json_path, target, dataset, data_dir, first_n, on, remote_python, accept_new_host_key):
    """Anatomy of LiteRT models read from the flatbuffer: params, weight tensors (dtype, shape,
    zeros, unique values), ops and the dtype each computes in, MACs, sparse tensors, sizes.

    With --target mcu (needs `pip install 'dnncomp[mcu]'`), each model is also run by TFLite
    Micro: the smallest tensor arena that allocates and runs it, the flash it takes as a C array,
    the ops to register in a MicroMutableOpResolver, and, with --dataset, TFLM's top-1 agreement
    with LiteRT and the largest raw output difference on real test images.
    """
    from .fileio import atomic_write_json
    from .measure import check_model_paths

    paths = check_model_paths(models)
    if dataset and target != "mcu":
        raise click.UsageError("--dataset is used with --target mcu")
    if on:  # the device reads the flatbuffers with its own runtime and prints the anatomies
        if target:
            raise click.UsageError("--target mcu runs TFLite Micro on this machine; leave out --on")
        from .remote import inspect_on_device

        with _device(on, remote_python, accept_new_host_key) as device:
            anatomies = inspect_on_device(device, paths, [])
        if json_path:
            atomic_write_json(json_path, anatomies)
            click.echo(f"wrote {json_path}")
        return
    if target == "mcu":
        from .micro import require_tflm

        require_tflm("--target mcu")
    anatomies = _print_anatomies(paths, tensors=target != "mcu")
    _print_io(paths, anatomies)
    if target == "mcu":
        from .errors import ModelError
        from .measure import load_for_model, rich_console
        from .micro import micro_lines, micro_report

        console = rich_console()
        for path, anatomy in zip(paths, anatomies):
            images, not_comparable = None, None
            if dataset:
                try:
                    x_test = load_for_model(dataset, path, data_dir).x_test
                    images = x_test[:first_n] if first_n > 0 else x_test
                except ModelError as exc:  # two inputs, say: the arena and op list still stand
                    not_comparable = str(exc)
            anatomy["mcu"] = micro_report(path, x_uint8=images, dataset=dataset)
            if not_comparable:
                anatomy["mcu"]["equivalence"] = {"dataset": dataset, "images": 0, "skipped": not_comparable}
            console.print(f"[bold]{path}[/bold] on a microcontroller (TFLite Micro {anatomy['mcu']['tflm_version']})")
            for line in micro_lines(anatomy["mcu"]):
                console.print("  " + line, markup=False)
    if json_path:
        atomic_write_json(json_path, {str(p): a for p, a in zip(paths, anatomies)})
        click.echo(f"wrote {json_path}")


@app.command("export")
@click.argument("model", type=click.Path(path_type=Path))
@click.option(
    "--c-array",
    "c_array",
    type=click.Path(path_type=Path),
    required=True,
    help="Write OUT.h and OUT.cc: the model as an aligned C array, its op resolver list, arena size, I/O quantization.",
)
@click.option(
    "--arena-margin",
    type=click.FloatRange(min=0),
    default=10.0,
    show_default=True,
    help="Percent added to the measured TFLM arena in kTensorArenaBytes (optimized kernels' scratch buffers).",
)
def export_command(model, c_array, arena_margin):
    """A LiteRT model as C++ source for TensorFlow Lite Micro firmware (needs `pip install 'dnncomp[mcu]'`).

    The tensor arena is measured with TFLite Micro's interpreter (the smallest arena that
    allocates and runs one inference), and written with the stated margin.
    """
    from .c_array import write_c_array
    from .measure import check_model_paths
    from .micro import require_tflm

    (path,) = check_model_paths([model])
    require_tflm("export --c-array")
    header, source, report = write_c_array(path, c_array, margin_percent=arena_margin)
    click.echo(
        f"wrote {header} and {source}: {report['flash']['model_bytes']:,} model bytes, "
        f"arena {report['arena_bytes']:,} B measured (+{arena_margin:g} %), {len(report['resolver'])} ops to register"
    )


# ---- device: a board over SSH --------------------------------------------------------


@app.group("device")
def device_group():
    """A device over SSH (ssh://[user@]host[:port] or a Host from ~/.ssh/config): check what it has, install the
    device side. Then use `--on TARGET` with evaluate, bench, inspect and `run DATASET --eval-only`."""


@device_group.command("check")
@click.argument("target")
@click.option(
    "--remote-python",
    default=None,
    metavar="PATH",
    help="The device's Python (default: the venv `device setup` made, else python3).",
)
@click.option("--accept-new-host-key", is_flag=True, help="Trust and record a host key not yet in ~/.ssh/known_hosts.")
def device_check_command(target, remote_python, accept_new_host_key):
    """What the device has and lacks (Python >= 3.10, glibc >= 2.34 for ai-edge-litert on aarch64, dnncomp's
    device install, free disk, memory), and the exact commands to fix what it lacks. Exit 2 if anything is missing."""
    from rich.table import Table

    from .measure import rich_console
    from .remote import RemoteError, describe_device, device_checks

    with _device(target, remote_python, accept_new_host_key) as device:
        checks = device_checks(device)
        if device._identity:
            click.echo(f"{target}: {describe_device(device._identity)}")
    table = Table(title=f"{target}", title_justify="left")
    for header in ("check", "", "found", "fix"):
        table.add_column(header)
    for check in checks:
        table.add_row(check.name, "ok" if check.ok else "MISSING", check.found, check.fix)
    rich_console().print(table)
    missing = [c.name for c in checks if not c.ok]
    for fix in dict.fromkeys(c.fix for c in checks if not c.ok and c.fix):
        click.echo(f"to fix: {fix}")
    if missing:
        raise RemoteError(f"{target} lacks: {'; '.join(missing)} (the fix column says how)")
    click.echo(f"{target}: ready for --on")


@device_group.command("setup")
@click.argument("target")
@click.option(
    "--wheels",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    default=None,
    help="A directory of wheels to push and install from alone (a device without internet): "
    "`pip download --only-binary=:all: --platform manylinux_2_28_aarch64 --platform manylinux_2_27_aarch64 --platform manylinux2014_aarch64 --python-version 3.11 --implementation cp -d DIR numpy pillow ai-edge-litert click rich jsonschema filelock` (docs/DEVICE.md).",
)
@click.option("--remote-python", default=None, metavar="PATH", help="The device's Python that makes the venv (default: python3).")
@click.option("--accept-new-host-key", is_flag=True, help="Trust and record a host key not yet in ~/.ssh/known_hosts.")
def device_setup_command(target, wheels, remote_python, accept_new_host_key):
    """Install dnncomp's device side (numpy, Pillow, ai-edge-litert; no TensorFlow) into a venv on the device.

    dnncomp's own wheel is built here and pushed; its dependencies come from the registries the
    device reaches, or only from --wheels DIR. `--on` then uses that venv by default. An aarch64
    board with glibc < 2.34 gets dnncomp[device-legacy] (tflite-runtime, used where ai-edge-litert
    cannot load; its wheels: docs/DEVICE.md).
    """
    from .remote import Device, setup_device

    with Device(
        target,
        remote_python=remote_python or "python3",
        accept_new_host_key=accept_new_host_key,
        say=click.echo,
        say_err=lambda line: click.echo(line, err=True),
    ) as device:
        python = setup_device(device, wheels=wheels)
    click.echo(f"{target}: device side installed ({python}); try `dnncomp device check {target}`")


# ---- compress / recipes --------------------------------------------------------------


def _parse_key_values(values: tuple[str, ...], recipe: str) -> dict[str, str]:
    """``--param final_sparsity=0.9`` (or ``prune.final_sparsity=0.9``, as ``dnncomp run`` takes it)."""
    from .errors import RecipeError

    params: dict[str, str] = {}
    for item in values:
        prefix, name, value = _split_param(item)
        if not name or (prefix is not None and prefix != recipe):
            raise RecipeError(f"--param {item!r}: expected KEY=VALUE (or {recipe}.KEY=VALUE), e.g. final_sparsity=0.9")
        params[name] = value
    return params


@app.command("compress")
@click.argument("baseline", type=click.Path(path_type=Path))
@click.option(
    "--dataset", required=True, help="Training data for fine-tuning and calibration: mnist, cifar10, gtsrb, folder:<path>."
)
@click.option("--skip-bad", is_flag=True, help=SKIP_BAD_HELP)
@click.option("--recipe", required=True, help="Recipe name; `dnncomp recipes` lists them.")
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE", help="Override a recipe parameter; repeatable.")
@click.option(
    "--out", type=click.Path(path_type=Path, dir_okay=False), default=None, help="Output .tflite. Default: ./<RECIPE>.tflite."
)
@click.option("--data-dir", type=click.Path(path_type=Path), default=None, help=DATA_DIR_HELP)
@click.option(
    "--model",
    default=None,
    help="A registered architecture the file was trained as: its training defaults are used, and its image "
    "size and classes must match the file's. Default: the model of runs/<dataset>/<model>/, else none "
    "(input shape, classes and logits/softmax always come from the file).",
)
@_pixel_range_options(TRAINED_RANGE_HELP)
@_fit_option
@click.option(
    "--seed", type=click.IntRange(0, 2**32 - 1), default=0, show_default=True, help="Seeds training and the calibration sample."
)
@click.option(
    "--evaluate/--no-evaluate",
    "evaluate",
    default=True,
    show_default=True,
    help="Score the written .tflite on the dataset's test split (LiteRT, with its preprocessing sidecar).",
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Also write what the recipe did as JSON.",
)
@click.option("--quiet", is_flag=True, help="No training progress.")
@click.option(
    "--unsafe", is_flag=True, help="Load Lambda layers from the model file: their Python code runs. Only for files you trust."
)
def compress_command(
    baseline,
    dataset,
    recipe,
    params,
    out,
    data_dir,
    skip_bad,
    model,
    input_range,
    mean,
    std,
    fit,
    seed,
    evaluate,
    json_path,
    quiet,
    unsafe,
):
    """Compress a saved Keras model with one recipe and write the LiteRT flatbuffer.

    The model file decides: input shape and layout, channels, classes, logits or softmax
    (the fine-tuning loss) and its own Rescaling/Normalization are read from it; the pixel
    mapping goes into OUT's .preprocessing.json sidecar. The file is only read. Prints what
    the recipe changed and left alone, what the flatbuffer holds, and its test accuracy.
    """
    from . import api
    from .anatomy import anatomy_lines, inspect_model
    from .compress.summary import summary_lines
    from .fileio import atomic_write_json

    done = api.compress(
        baseline,
        recipe,
        dataset,
        out=out,
        params=_parse_key_values(params, recipe),
        data_dir=data_dir,
        registered_model=model,
        input_range=input_range,
        mean=mean,
        std=std,
        fit=fit,
        seed=seed,
        verbose=0 if quiet else 1,
        unsafe=unsafe,
        skip_bad=skip_bad,
        say=click.echo,
    )
    setup, info, out, sidecar = done["setup"], done["info"], done["tflite"], done["sidecar"]
    contract, preprocessing, data, notes = setup.contract, setup.preprocessing, setup.data, setup.notes
    spec, training_spec = setup.context.spec, setup.training_spec
    for line in summary_lines(info):
        click.echo(line)
    qat_info = info["qat"] if isinstance(info.get("qat"), dict) else info
    if qat_info.get("batch_norms_folded"):
        click.echo(
            "  batch norms folded into a Dense (dense+bn: the Dense before; bn>dense: the Dense after, through "
            "pooling/Flatten): " + ", ".join(qat_info["batch_norms_folded"])
        )
    click.echo(f"flatbuffer {out} ({spec.name}; preprocessing in {sidecar.name}):")
    for line in anatomy_lines(inspect_model(out, tensors=False)):
        click.echo("  " + line)
    accuracy = None
    if evaluate:
        from .measure import evaluate_model

        document = evaluate_model(out, data.x_test, data.y_test, dataset=dataset, num_classes=contract.num_classes, first_n=0)
        accuracy = document["variants"][0]["accuracy"]
        click.echo(f"accuracy of {out} on the {dataset} test split (LiteRT): {accuracy['full']:.2%} of {accuracy['full_count']}")
    if json_path:
        atomic_write_json(
            json_path,
            {
                "baseline": str(baseline),
                "dataset": dataset,
                "model": spec.name,
                "out": str(out),
                "info": info,
                "contract": contract.to_dict(),
                "preprocessing": preprocessing.to_dict(),
                "sidecar": str(sidecar),
                "training_defaults_from": training_spec.name if training_spec is not None else None,
                "notes": notes,
                "accuracy": accuracy,
            },
        )
        click.echo(f"wrote {json_path}")


@app.command("sensitivity")
@click.argument("baseline", type=click.Path(path_type=Path))
@click.option(
    "--dataset",
    required=True,
    help="The data the model was trained on: its validation split (held out of training, never the test set) is scored.",
)
@click.option(
    "--technique",
    type=click.Choice(["prune", "cluster", "int8"]),
    required=True,
    help="prune: one kernel magnitude-pruned; cluster: one kernel k-means clustered; int8: PTQ with one layer left float.",
)
@click.option(
    "--sparsity", type=click.FloatRange(0, 0.99), default=0.8, show_default=True, help="With prune: the layer's sparsity."
)
@click.option("--clusters", type=click.IntRange(2), default=8, show_default=True, help="With cluster: centroids per kernel.")
@click.option(
    "--validation",
    default=None,
    metavar="MODE:F",
    help="Validation split of the training data (default: the model's own, e.g. stratified:0.1).",
)
@click.option(
    "--max-images",
    type=click.IntRange(1),
    default=2000,
    show_default=True,
    help="At most this many validation images (a seeded sample).",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("."),
    show_default=True,
    help="Directory for sensitivity-<technique>.json and .png.",
)
@click.option("--data-dir", type=click.Path(path_type=Path), default=None, help=DATA_DIR_HELP)
@click.option(
    "--model",
    default=None,
    help="A registered architecture the file was trained as (its validation split and training defaults).",
)
@click.option("--input-range", default=None, metavar="LO..HI", help="Real value of pixels 0 and 255 the model was trained with.")
@click.option("--mean", default=None, metavar="M[,M,M]", help="Per-channel mean subtracted after --input-range.")
@click.option("--std", default=None, metavar="S[,S,S]", help="Per-channel std divided by after the mean.")
@_fit_option
@click.option(
    "--seed", type=click.IntRange(0, 2**32 - 1), default=0, show_default=True, help="Seeds the split sample and calibration."
)
@click.option(
    "--unsafe", is_flag=True, help="Load Lambda layers from the model file: their Python code runs. Only for files you trust."
)
@_wide_option
def sensitivity_command(
    baseline,
    dataset,
    technique,
    sparsity,
    clusters,
    validation,
    max_images,
    out,
    data_dir,
    model,
    input_range,
    mean,
    std,
    fit,
    seed,
    unsafe,
):
    """Per-layer sensitivity: the validation accuracy drop when only one layer is compressed (no fine-tuning).

    Prints a table (most sensitive first), writes OUT/sensitivity-<technique>.json and a plot
    (.png). Recipes take per_layer=auto to spend sparsity where it costs least.
    """
    from .compress.sensitivity import context_for, layer_sensitivity, plot, sensitivity_table, table_lines
    from .console import print_table
    from .fileio import atomic_write_json
    from .preprocess import preprocessing_from_options

    ctx, notes = context_for(
        baseline,
        dataset,
        data_dir=data_dir,
        model=model,
        seed=seed,
        unsafe=unsafe,
        preprocessing=preprocessing_from_options(input_range, mean, std),
        fit=fit,
    )
    for note in notes:
        click.echo(f"note: {note}")
    record = layer_sensitivity(
        ctx, technique=technique, sparsity=sparsity, clusters=clusters, validation=validation, max_images=max_images
    )
    lines = table_lines(record)
    for line in lines[:2]:  # what was measured, on which split
        click.echo(line)
    print_table(*sensitivity_table(record), wide=_wide())
    out.mkdir(parents=True, exist_ok=True)
    json_path = atomic_write_json(out / f"sensitivity-{technique}.json", record)
    click.echo(f"wrote {json_path} and {plot(record, out / f'sensitivity-{technique}.png')}")


@app.command("tune")
@click.argument("baseline", required=False, type=click.Path(path_type=Path))
@click.option(
    "--dataset",
    default=None,
    help="Training data: fine-tuning, the validation split that selects, the test set read once at the end.",
)
@click.option(
    "--max-drop",
    type=float,
    default=1.0,
    show_default=True,
    help="Accuracy budget: points of validation accuracy below the float baseline, judged on the upper end of the drop's 95 % paired interval.",
)
@click.option(
    "--objective",
    type=click.Choice(["gzip", "file", "p50", "p95"]),
    default="gzip",
    show_default=True,
    help="What to minimise, measured on each produced .tflite (p50/p95: batch-1 LiteRT latency at --latency-threads).",
)
@click.option("--max-gzip", default=None, metavar="SIZE", help="Budget on the gzip size, e.g. 256KB (1000 B) or 250KiB.")
@click.option("--max-file", default=None, metavar="SIZE", help="Budget on the .tflite file size.")
@click.option(
    "--max-p95-ms", type=click.FloatRange(min=0, min_open=True), default=None, help="Budget on the batch-1 p95 latency (ms)."
)
@click.option(
    "--max-peak-memory",
    default=None,
    metavar="SIZE",
    help="Budget on the peak memory the interpreter adds (a fresh process per trial).",
)
@click.option(
    "--recipes",
    default=None,
    metavar="NAMES",
    help="Recipe families to search (default: every recipe but float; `dnncomp recipes`).",
)
@click.option(
    "--trials",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="Finished trials to run (complete, pruned or failed).",
)
@click.option(
    "--time-budget",
    default=None,
    metavar="DURATION",
    help="Stop starting trials after this much tune time (all sessions), e.g. 60m, 1h30m.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Trials in parallel on Ray actors (1: in this process, no Ray).",
)
@click.option(
    "--ray-address",
    default=None,
    metavar="ADDR",
    help="Run the trials on an existing Ray cluster (`ray start --head`), e.g. 10.0.0.5:6379.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Tune directory (tune.db, trials/, best.tflite). Default: tune/<dataset>-<baseline name>. Rerun to resume.",
)
@click.option(
    "--status",
    "status_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Show the progress of the tune in this directory (trials done/failed/running, best so far, budget used) and exit.",
)
@click.option(
    "--train-images",
    type=click.IntRange(min=1),
    default=None,
    help="Fine-tune on a seeded stratified sample of this many training images.",
)
@click.option(
    "--val-images",
    type=click.IntRange(min=1),
    default=None,
    help="Select on a seeded stratified sample of this many validation images.",
)
@click.option(
    "--validation",
    default=None,
    metavar="MODE:F",
    help="Validation split of the training data (default: the model's own, e.g. stratified:0.1).",
)
@click.option(
    "--prune-margin",
    type=click.FloatRange(min=0),
    default=2.0,
    show_default=True,
    help="Stop a trial after a fine-tuning epoch whose validation drop is surely (lower 95 % bound) above max-drop + this many points.",
)
@click.option(
    "--sampler",
    type=click.Choice(["tpe", "nsga2"]),
    default="tpe",
    show_default=True,
    help="Optuna's multi-objective sampler (both take the constraints).",
)
@click.option(
    "--refine/--no-refine",
    default=True,
    show_default=True,
    help="Alternate the sampler's trials with refinements: the best feasible trial with one compression knob "
    "(sparsity, cluster count) one step stronger, bisecting when the accuracy budget breaks.",
)
@click.option("--latency-threads", type=click.IntRange(min=1), default=1, show_default=True, help="LiteRT threads for p50/p95.")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None, help=DATA_DIR_HELP)
@click.option(
    "--model",
    default=None,
    help="A registered architecture the file was trained as (its validation split and training defaults).",
)
@_pixel_range_options(TRAINED_RANGE_HELP)
@click.option(
    "--seed",
    type=click.IntRange(0, 2**32 - 1),
    default=0,
    show_default=True,
    help="Seeds the split, the sampler and every trial.",
)
@click.option(
    "--unsafe", is_flag=True, help="Load Lambda layers from the model file: their Python code runs. Only for files you trust."
)
def tune_command(
    baseline,
    dataset,
    max_drop,
    objective,
    max_gzip,
    max_file,
    max_p95_ms,
    max_peak_memory,
    recipes,
    trials,
    time_budget,
    workers,
    ray_address,
    out,
    status_dir,
    train_images,
    val_images,
    validation,
    prune_margin,
    sampler,
    refine,
    latency_threads,
    data_dir,
    model,
    input_range,
    mean,
    std,
    seed,
    unsafe,
):
    """Search the recipe catalogue for the smallest (or fastest) variant within an accuracy budget (Optuna).

    Multi-objective (validation accuracy, the objective) with the budgets as constraints; the
    study lives in OUT/tune.db, so rerunning the same command resumes a killed tune. Prints one
    line per finished trial, then the Pareto set with its test accuracy (the test set is read
    once, at the end, for the Pareto set only) and copies the chosen variant to OUT/best.tflite.
    Exit code 3 when no trial meets the budgets (the best so far and what it fails are printed).
    """
    from .tune import TuneConfig, parse_duration, parse_size, run_tune, tune_status
    from .tune.report import budget_bar, outcome_lines, print_outcome, status_lines

    if status_dir is not None:
        for line in status_lines(tune_status(status_dir)):
            click.echo(line)
        return
    if baseline is None or dataset is None:
        raise click.UsageError("give BASELINE and --dataset (or --status DIR)")
    config = TuneConfig(
        baseline=str(baseline.resolve()),
        dataset=dataset,
        out=str(out or Path("tune") / f"{dataset.replace(':', '-').replace('/', '-')}-{baseline.stem}"),
        max_drop=max_drop,
        objective=objective,
        max_gzip=parse_size(max_gzip, "--max-gzip"),
        max_file=parse_size(max_file, "--max-file"),
        max_p95_ms=max_p95_ms,
        max_peak_memory=parse_size(max_peak_memory, "--max-peak-memory"),
        recipes=_csv_list(recipes) or [],
        trials=trials,
        time_budget_s=parse_duration(time_budget),
        workers=workers,
        ray_address=ray_address,
        seed=seed,
        validation=validation,
        train_images=train_images,
        val_images=val_images,
        prune_margin=prune_margin,
        latency_threads=latency_threads,
        data_dir=str(data_dir.resolve()) if data_dir else None,
        model=model,
        input_range=input_range,
        mean=mean,
        std=std,
        unsafe=unsafe,
        sampler=sampler,
        refine=refine,
    )
    outcome = run_tune(config, say=click.echo, progress=lambda *args: click.echo(budget_bar(*args)))
    print_outcome(outcome.summary)
    for line in outcome_lines(outcome.summary):
        click.echo(line)
    if outcome.exit_code:
        raise click.exceptions.Exit(outcome.exit_code)


@app.command("recipes")
@click.argument("names", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Print the registry as JSON.")
@_wide_option
def recipes_command(names, as_json):
    """Every compression recipe (or the NAMES given): what it does, its parameters and their defaults.

    Use one with `dnncomp compress BASELINE --recipe NAME --param KEY=VALUE` or
    `dnncomp run DATASET --techniques NAME,... --param NAME.KEY=VALUE`.
    """
    import json

    from .compress import get_recipe, list_recipes

    described = [recipe.describe() for recipe in ([get_recipe(n) for n in names] if names else list_recipes())]
    if as_json:
        click.echo(json.dumps(described, indent=2))
        return
    if names:  # one recipe at a time, with what each parameter means
        for recipe in described:
            click.echo(f"{recipe['name']}: {recipe['description']}")
            for key, p in recipe["params"].items():
                allowed = f"one of {', '.join(map(str, p['choices']))}" if "choices" in p else p["type"]
                click.echo(
                    f"  {key}={p['default']}  ({allowed})  {p['help']}" + (f"  [tune: {p['search']}]" if "search" in p else "")
                )
        return
    from .console import Column, print_table

    rows = [
        (
            recipe["name"],
            recipe["description"],
            "\n".join(
                f"{key}={p['default']}" + (f" ({'|'.join(map(str, p['choices']))})" if "choices" in p else f" ({p['type']})")
                for key, p in recipe["params"].items()
            )
            or "none",
        )
        for recipe in described
    ]
    columns = [
        Column("recipe", justify="left"),
        Column("what it does", justify="left", wrap=30),
        Column("parameters (default)", justify="left", wrap=24),
    ]
    print_table(
        columns, rows, wide=_wide(), show_lines=True, notes=["dnncomp recipes NAME: one recipe with what each parameter means"]
    )


# ---- report / reproduce --------------------------------------------------------------


@app.command("report")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Where report.md, report.html and the PNGs go. Default: the run dir for one run, else ./report.",
)
@click.option("--title", default=None, help="Report title. Default: the runs' datasets and models.")
@click.option("--no-figures", is_flag=True, help="Tables and text only: draw no plots (no matplotlib needed).")
def report_command(run_dirs, out, title, no_figures):
    """Write report.md, a self-contained report.html and PNG plots for one or more run directories.

    Tables (accuracy, latency, size, sparsity, compression ratios, the study's numbers beside ours),
    plots (accuracy vs size and latency with the Pareto front, sizes, latency, per-layer sparsity,
    training curves, accuracy against training time across runs) and provenance. Needs matplotlib and Jinja2:
    pip install 'dnncomp[report]' (--no-figures: Jinja2 only).
    """
    from .tune.report import is_tune_dir, write_tune_report

    if len(run_dirs) == 1 and is_tune_dir(run_dirs[0]):  # a `dnncomp tune` directory: its Pareto report
        paths = write_tune_report(run_dirs[0], out)
        click.echo(f"report: {paths['markdown']} ({len(paths['figures'])} plot)")
        return
    from .report import write_report

    out = out or (run_dirs[0] if len(run_dirs) == 1 else Path("report"))
    paths = write_report(list(run_dirs), out, title=title, figures=not no_figures)
    click.echo(f"report: {paths['markdown']}")
    click.echo(f"html:   {paths['html']}  ({len(paths['figures'])} plots embedded)")


@app.command("reproduce")
@click.option("--datasets", default="mnist,cifar10,gtsrb", show_default=True, help="Comma-separated study datasets.")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("docs/reproduction"),
    show_default=True,
    help="Where the combined report goes.",
)
@click.option(
    "--runs",
    "runs_root",
    type=click.Path(path_type=Path),
    default=Path("runs"),
    show_default=True,
    help="Runs root; each dataset's run goes to RUNS/DATASET/study-DATASET (a rerun resumes).",
)
@click.option("--data-dir", type=click.Path(path_type=Path), default=None, help=DATA_DIR_HELP)
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Maximum baseline epochs (study: 50, early stopping).")
@click.option(
    "--threads", type=click.IntRange(min=1), default=1, show_default=True, help="LiteRT interpreter threads for latency."
)
@click.option("--seed", type=click.IntRange(0, 2**32 - 1), default=0, show_default=True)
@click.option("--title", default=None, help="Report title.")
def reproduce_command(datasets, out, runs_root, data_dir, epochs, threads, seed, title):
    """Run the study's full protocol on its datasets and write one combined report.

    For each dataset: the study's model, baseline training, quantization-aware training, pruning
    and clustering, LiteRT conversion, accuracy on the full test set and the first 1000 images,
    latency; then the study's table and ours side by side, the differences explained.
    """
    from .reproduce import reproduce_study

    paths = reproduce_study(
        _csv_list(datasets),
        out=out,
        runs_root=runs_root,
        data_dir=data_dir,
        epochs=epochs,
        threads=threads,
        seed=seed,
        title=title,
    )
    for run_dir in paths["runs"]:
        click.echo(f"run directory: {run_dir}")
    click.echo(f"report: {paths['markdown']}")
    click.echo(f"html:   {paths['html']}")


class _Terminated(BaseException):
    """SIGTERM, raised where the program is, so every ``finally`` (temp files, the run dir's lock) runs."""


def _on_sigterm(signum, frame):
    raise _Terminated()


def _interrupted(code: int) -> int:
    from .run import current_stage

    stage = current_stage()
    where = f" at {stage}" if stage else ""
    click.echo(f"interrupted{where}; finished artifacts are kept: rerun the same command to resume", err=True)
    return code


def main(argv: list[str] | None = None) -> int:
    import signal

    previous = signal.getsignal(signal.SIGTERM)
    try:
        signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread (an embedding program): leave its handlers alone
        previous = None
    try:
        return _main(argv)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _main(argv: list[str] | None) -> int:
    try:
        code = app.main(args=argv, prog_name="dnncomp", standalone_mode=False)
    except DnncompError as exc:
        click.echo(f"error: {exc}", err=True)
        return 2
    except click.exceptions.Abort:  # click turns Ctrl-C into Abort
        return _interrupted(130)
    except KeyboardInterrupt:
        return _interrupted(130)
    except _Terminated:
        return _interrupted(143)
    except OSError as exc:  # a write outside dnncomp's own atomic writes (plots, Keras): still one line
        from .fileio import storage_error

        error = storage_error(exc.filename or "?", exc)
        if isinstance(error, OSError):
            raise
        click.echo(f"error: {error}", err=True)
        return 2
    except click.exceptions.ClickException as exc:  # usage errors: click's own one-liner
        exc.show()
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    # Outside standalone mode click returns a command's click.exceptions.Exit code (tune: 3 when no trial is feasible).
    return code if isinstance(code, int) and not isinstance(code, bool) else 0


if __name__ == "__main__":
    sys.exit(main())
