"""Load time of each dataset: first load (empty dnncomp cache) and second load (cached).

    python benchmarks/data_load.py                       # data in .data/ (../shared/datasets/prepare .data)
    python benchmarks/data_load.py --data-dir DIR --repeat 3

Each first load runs with a fresh, empty DNNCOMP_CACHE_DIR; the second load of the
same dataset reuses it. MNIST and CIFAR-10 are whole-array formats with nothing to
cache, so their second load is the same work (with the OS page cache warm, as it
is for every row: "cold" means dnncomp's cache, not the disk's). GTSRB is decoded
image by image, in parallel, then cached as .npz. The script also times the GTSRB
decode alone with each executor (serial, threads, processes). It prints Markdown
for docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import numpy as np  # noqa: E402
import PIL  # noqa: E402

from dnncomp import __version__  # noqa: E402
from dnncomp.data import load_dataset  # noqa: E402
from dnncomp.data.images import decode_images, default_workers  # noqa: E402
from dnncomp.results import markdown_grid  # noqa: E402

CASES = (("mnist", None), ("cifar10", None), ("gtsrb", None), ("gtsrb", (30, 30)))


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def timed_load(name, data_dir, image_size):
    start = time.perf_counter()
    ds = load_dataset(name, data_dir=data_dir, image_size=image_size, download=False, progress=False)
    return time.perf_counter() - start, ds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("DNNCOMP_TEST_DATA", ROOT / ".data")))
    parser.add_argument("--repeat", type=int, default=1, help="Repeat each measurement; the table shows the best.")
    parser.add_argument("--no-executors", action="store_true", help="Skip the GTSRB decode-executor comparison.")
    args = parser.parse_args(argv)

    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    rows = []
    for name, size in CASES:
        first, second, ds = [], [], None
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory(prefix="dnncomp-bench-cache-") as cache:
                os.environ["DNNCOMP_CACHE_DIR"] = cache
                t, ds = timed_load(name, args.data_dir, size)
                first.append(t)
                t, again = timed_load(name, args.data_dir, size)
                second.append(t)
        shape = "x".join(map(str, ds.x_train.shape[1:]))
        cached = "yes" if again.meta.get("from_cache") else "nothing to cache"
        rows.append([name, shape, f"{len(ds.y_train):,} + {len(ds.y_test):,}", f"{min(first):.2f}", f"{min(second):.2f}", cached])
        print(f"{name} {shape}: first {min(first):.2f} s, second {min(second):.2f} s", file=sys.stderr)

    command = "python benchmarks/data_load.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = os.cpu_count()
    print(f"Command: `{command.strip()}` (data: {args.data_dir}, best of {args.repeat})\n")
    print(
        f"Machine: {cpu_model()}, {os.cpu_count()} CPUs ({affinity} usable, {default_workers()} decode workers), "
        f"{platform.system()} {platform.release()}; Python {platform.python_version()}, numpy {np.__version__}, "
        f"Pillow {PIL.__version__}, dnncomp {__version__}; {time.strftime('%Y-%m-%d %H:%M')}; "
        f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after the loads\n"
    )
    print(
        markdown_grid(
            ["dataset", "image", "train + test", "first load s (empty cache)", "second load s", "second load from cache"],
            rows,
            align="llllll",
        )
    )

    if not args.no_executors:
        gtsrb = args.data_dir / "GTSRB"
        paths = sorted((gtsrb / "Final_Training" / "Images").glob("*/*.ppm")) + sorted(
            (gtsrb / "Final_Test" / "Images").glob("*.ppm")
        )
        print(
            f"\nGTSRB decode alone ({len(paths):,} images, resized to 30x30), by executor; rounds interleaved "
            f"(serial, thread, process, serial, ...), {args.repeat} each:\n"
        )
        executors = ("serial", "thread", "process")
        times = {executor: [] for executor in executors}
        for _ in range(args.repeat):
            for executor in executors:
                start = time.perf_counter()
                decode_images(paths, (30, 30), executor=executor, progress=False)
                times[executor].append(time.perf_counter() - start)
        cells = []
        for executor in executors:
            best, median = min(times[executor]), float(np.median(times[executor]))
            cells.append([executor, f"{best:.2f}", f"{median:.2f}", f"{len(paths) / best:,.0f}"])
        print(markdown_grid(["executor", "best s", "median s", "images/s (best)"], cells, align="llll"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
