#!/usr/bin/env bash
# dnncomp's device side on aarch64, proven under user-mode emulation (no board needed):
#   1. an arm64 Debian bookworm userland (debootstrap's first stage: packages unpacked, none of their
#      scripts run, so no binfmt_misc registration is needed on the host);
#   2. the device install from PyPI's aarch64 wheels (numpy, Pillow, ai-edge-litert, click, rich,
#      jsonschema, filelock; no TensorFlow) plus dnncomp's own wheel, unpacked for cp311 aarch64;
#   3. `dnncomp evaluate` run by the arm64 Python under qemu-aarch64-static on the three reference
#      models (and on every .tflite of the run dirs given as arguments), and the same on this machine:
#      the accuracy digits must be identical, else exit 1.
# Latency under emulation is not a device figure; one short measurement per model only shows which
# kernels ran (XNNPACK applied to how many ops).
#
# Usage (as root, from the project root; needs apt-get install debootstrap qemu-user-static):
#   bash benchmarks/device_aarch64.sh [RUN_DIR ...]
# Env: ARM64_ROOT (default /tmp/dnncomp-arm64), DATA_DIR (default .data), PYTHON (default .venv/bin/python).
# Not part of CI: it downloads ~150 MB and takes minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=${ARM64_ROOT:-/tmp/dnncomp-arm64}
DATA_DIR=${DATA_DIR:-.data}
PYTHON=${PYTHON:-.venv/bin/python}
REFERENCE=../shared/reference-models
USERLAND=$ROOT/root
SITE=$USERLAND/opt/dnncomp-site
OUT=$ROOT/results
PLATFORMS=(--platform manylinux_2_36_aarch64 --platform manylinux_2_28_aarch64 --platform manylinux_2_27_aarch64
           --platform manylinux2014_aarch64)

command -v debootstrap >/dev/null && command -v qemu-aarch64-static >/dev/null || {
  echo "device_aarch64: needs debootstrap and qemu-user-static (apt-get install -y debootstrap qemu-user-static)" >&2; exit 2; }

# 1. the arm64 userland: first stage only, then the downloaded packages (Python 3.11, libstdc++ of GCC 12)
#    unpacked as they are
if [ ! -x "$USERLAND/usr/bin/python3.11" ]; then
  mkdir -p "$ROOT"
  debootstrap --foreign --arch=arm64 --variant=minbase --include=python3.11,libstdc++6 bookworm "$USERLAND" >"$ROOT/debootstrap.log"
  for deb in "$USERLAND"/var/cache/apt/archives/*.deb; do dpkg-deb -x "$deb" "$USERLAND"; done
fi
# qemu-user shows an aarch64 process this machine's x86 /proc/cpuinfo, on which LiteRT 2.3's CPU
# detection crashes (SIGSEGV in Interpreter()); with -L, a file under the userland is read first,
# so give it what a 2-core Cortex-A72 (Raspberry Pi 4) shows.
mkdir -p "$USERLAND/proc"
for i in 0 1; do
  printf 'processor\t: %s\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\nCPU revision\t: 3\n\n' "$i"
done >"$USERLAND/proc/cpuinfo"

# 2. the device install, from aarch64 wheels (pip on this machine only downloads and unpacks them)
rm -rf "$ROOT/wheels" "$SITE" && mkdir -p "$ROOT/wheels"
"$PYTHON" -m pip download --quiet --only-binary=:all: "${PLATFORMS[@]}" --python-version 3.11 --implementation cp \
  -c constraints.txt -d "$ROOT/wheels" numpy pillow ai-edge-litert click rich jsonschema filelock
"$PYTHON" -m pip wheel --quiet --no-deps --no-build-isolation -w "$ROOT/wheels" .
"$PYTHON" -m pip install --quiet --no-deps --no-index --only-binary=:all: "${PLATFORMS[@]}" --python-version 3.11 \
  --implementation cp --target "$SITE" "$ROOT"/wheels/*.whl
# One CPU: image folders are decoded in-process (a spawned worker would be an arm64 binary exec'd
# without binfmt_misc, which dies and leaves the parent waiting at exit).
ARM64=(env PYTHONPATH="$SITE" DNNCOMP_CACHE_DIR="$ROOT/cache" DNNCOMP_MACHINE_ID=qemu-aarch64
       taskset -c 0 qemu-aarch64-static -L "$USERLAND" "$USERLAND/usr/bin/python3.11")
"${ARM64[@]}" -c "import platform, importlib.metadata as m; print('arm64 userland:', platform.machine(), '-'.join(platform.libc_ver()), 'Python', platform.python_version(), 'ai-edge-litert', m.version('ai-edge-litert'), 'numpy', m.version('numpy'))"
if "${ARM64[@]}" -c "import tensorflow" 2>/dev/null; then echo "device_aarch64: TensorFlow is in the device install" >&2; exit 1; fi

# 3. the same predictions on both sides: the first $IMAGES test images of each model, through dnncomp's own
#    input preparation, with LiteRT's builtin kernels and with XNNPACK (applied or not, as read from the
#    interpreter). Under emulation a full `dnncomp evaluate` of MNIST takes ~11 min on a 2-core
#    workstation, hence a prefix; IMAGES=0 runs whole test sets.
IMAGES=${IMAGES:-300}
rm -rf "$OUT" && mkdir -p "$OUT"
cp benchmarks/device_aarch64_predict.py "$OUT/predict.py"
declare -a CASES=("$REFERENCE/mnist_quantized_model.tflite mnist" "$REFERENCE/cifar10_quantized_model.tflite cifar10"
                  "$REFERENCE/gtsrb_quantized_model.tflite gtsrb")
for run_dir in "$@"; do
  dataset=$(basename "$(dirname "$run_dir")")
  for model in "$run_dir"/*.tflite; do CASES+=("$model $dataset"); done
done
i=0
for case in "${CASES[@]}"; do
  read -r model dataset <<<"$case"
  i=$((i + 1))
  start=$(date +%s)
  "$PYTHON" "$OUT/predict.py" "$model" "$dataset" "$DATA_DIR" "$IMAGES" "$OUT/$i-x86.json"
  "${ARM64[@]}" "$OUT/predict.py" "$model" "$dataset" "$DATA_DIR" "$IMAGES" "$OUT/$i-arm64.json" 2>"$OUT/$i-arm64.log" \
    || { cat "$OUT/$i-arm64.log"; exit 1; }
  echo "== $model on $dataset: $(( $(date +%s) - start )) s"
done
"$PYTHON" benchmarks/device_aarch64_predict.py --compare "$OUT"
