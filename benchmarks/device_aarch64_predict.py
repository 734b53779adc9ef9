"""Helper of device_aarch64.sh: one model's predictions with LiteRT's builtin kernels and with XNNPACK.

  python device_aarch64_predict.py MODEL DATASET DATA_DIR IMAGES OUT.json   (run by x86 and arm64 Pythons)
  python device_aarch64_predict.py --compare DIR                            (the table; exit 1 if builtin differs)

Uses dnncomp's own loading and input preparation (device side only: no TensorFlow).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def predict(model: str, dataset: str, data_dir: str, images: int, out: str) -> None:
    import numpy as np

    from dnncomp.data import load_dataset
    from dnncomp.evaluate import allocate, delegation, model_input_layout, model_input_spec, open_interpreter, prepare_inputs
    from dnncomp.results import environment

    data = load_dataset(dataset, data_dir=data_dir, image_size=model_input_layout(model).image_size)
    x, y = (data.x_test[:images], data.y_test[:images]) if images else (data.x_test, data.y_test)
    record = {"model": model, "dataset": dataset, "images": int(len(y)), "machine": environment()["machine"]}
    for name, xnnpack in (("builtin", False), ("xnnpack", True)):
        spec = model_input_spec(model, num_classes=data.num_classes, xnnpack=xnnpack)
        inputs = prepare_inputs(x, spec, model)
        interpreter = open_interpreter(model, xnnpack=xnnpack)
        allocate(interpreter)
        predictions = []
        for one in inputs:
            interpreter.set_tensor(spec.index, one[None])
            interpreter.invoke()
            predictions.append(int(np.argmax(interpreter.get_tensor(spec.output_index))))
        record[name] = {"correct": int((np.array(predictions) == y).sum()), "predictions": predictions, **delegation(interpreter)}
    Path(out).write_text(json.dumps(record))


def compare(out: Path, tolerance: float = 0.01) -> int:
    """The table; 1 if aarch64's builtin kernels agree with neither x86 kernel set on 99 % of the images.

    Integer kernels are not bit-exact across kernel sets: on x86, LiteRT's builtin and XNNPACK
    kernels round requantization differently and disagree on a few near-tie images (CIFAR-10:
    5 of 300), so the aarch64 builtin kernels are compared with both.
    """
    failed = xnnpack_differs = False
    print(
        f"{'model':40} {'dataset':8} {'images':>6}  correct: {'x86 builtin':>11} {'x86 XNNPACK':>11} "
        f"{'arm64 builtin':>13} {'arm64 XNNPACK':>13} | same prediction: arm64 builtin~x86 XNNPACK, ~x86 builtin, "
        "arm64 XNNPACK~x86 XNNPACK | arm64 XNNPACK ops"
    )
    for x86_path in sorted(out.glob("*-x86.json"), key=lambda p: int(p.name.split("-")[0])):
        x86 = json.loads(x86_path.read_text())
        arm = json.loads((out / x86_path.name.replace("x86", "arm64")).read_text())
        assert arm["machine"] == "aarch64", arm["machine"]
        n = x86["images"]

        def agree(a, b, n=n):
            return sum(u == v for u, v in zip(a["predictions"], b["predictions"])) / n

        with_xnnpack, with_builtin = agree(arm["builtin"], x86["xnnpack"]), agree(arm["builtin"], x86["builtin"])
        xnnpack_agree = agree(arm["xnnpack"], x86["xnnpack"])
        builtin_ok = max(with_xnnpack, with_builtin) >= 1 - tolerance
        failed |= not builtin_ok
        xnnpack_differs |= xnnpack_agree < 1 - tolerance
        ops = f"{arm['xnnpack']['ops_delegated']}/{arm['xnnpack']['ops']}" if arm["xnnpack"]["delegate_nodes"] else "not applied"
        print(
            f"{x86['model'][-40:]:40} {x86['dataset']:8} {n:6}           {x86['builtin']['correct']:11} "
            f"{x86['xnnpack']['correct']:11} {arm['builtin']['correct']:13} {arm['xnnpack']['correct']:13} | "
            f"{with_xnnpack:7.1%} {with_builtin:7.1%} {xnnpack_agree:7.1%} | {ops}" + ("" if builtin_ok else "   BUILTIN DIFFERS")
        )
    print(
        "device_aarch64: "
        + (
            "aarch64 builtin kernels DIFFER from x86"
            if failed
            else f"aarch64 (builtin kernels) predicts as x86 on >= {1 - tolerance:.0%} of the images"
        )
    )
    if xnnpack_differs:
        print(
            "device_aarch64: XNNPACK under qemu-user predicts otherwise than on x86: an emulation artifact until a real "
            "board says otherwise (check there with `dnncomp bench --xnnpack both`)"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    if sys.argv[1] == "--compare":
        sys.exit(compare(Path(sys.argv[2])))
    predict(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5])
