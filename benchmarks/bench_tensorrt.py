"""TensorRT plans against onnxruntime and TVM on one GPU (issue 17's GPU acceptance), run by hand.

    pip install -e '.[test,tvm,tensorrt]' onnxruntime-gpu      # on a machine with a CUDA GPU
    python -m models.zoo.build                                   # the zoo's real exports, into ~/.cache/mlc-zoo
    python benchmarks/bench_tensorrt.py --markdown /tmp/trt.md

What it measures, every figure from one run on one GPU (named in the output):

1. fp32 plans of every model in `models/` and of the zoo's CI slice (the exports `tests/test_zoo_slice.py`
   builds, when cached): largest relative error against onnxruntime CPU on the same inputs, held to
   1e-3 (|got - ref| <= 1e-3 |ref| + 1e-5).
2. fp16 plans (`--precision fp16`) of the same models: the error against onnxruntime fp32, next to
   the tolerance the compile report states (its lossy gate).
3. The ResNet-sized model (`tv_resnet18-ts.onnx`), int8 (`--quantize int8`, 200 synthetic calibration
   images, the images of `benchmarks/bench_quantize.py`): top-1 agreement with fp32 on `--eval`
   images for TensorRT int8, onnxruntime int8 (CPU) and TensorRT fp16.
4. Latency, medians of interleaved rounds on the same feed: TensorRT fp16 against onnxruntime's CUDA
   execution provider (the original model) and TVM's `cuda` artifact.

Nothing here runs in CI: without a GPU it stops at the first step with the reason.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ZOO = Path.home() / ".cache" / "mlc-zoo"
sys.path.insert(0, str(ROOT / "benchmarks"))


def gpu_or_exit() -> str:
    from mlc.targets import availability

    state = availability("tensorrt")
    if not state.ok:
        raise SystemExit(f"bench_tensorrt: {state.reason}")
    return state.reason


def models() -> list[tuple[str, Path, Path | None]]:
    """(name, model, inputs .npz or None) for models/ and the cached zoo slice."""
    found = [(p.stem, p, None) for p in sorted((ROOT / "models").glob("*.onnx"))]
    for name in ("bert", "gpt2", "lstm", "unet", "tv_resnet18"):
        for exporter in ("ts", "dynamo"):
            path = ZOO / f"{name}-{exporter}.onnx"
            inputs = ZOO / f"{name}.inputs.npz"
            if path.is_file():
                found.append((f"{name}-{exporter}", path, inputs if inputs.is_file() else None))
    return found


def feeds_of(model: Path, inputs: Path | None) -> dict[str, np.ndarray]:
    from mlc.driver import import_checked
    from mlc.feeds import generate_feeds, role_dims
    from mlc.numerics.inputs import read_npz

    if inputs is not None:
        return read_npz(str(inputs))
    from mlc.driver import _io

    described = [i for i in _io(import_checked(model))["inputs"] if not i["default"]]
    feeds, _ = generate_feeds(described, seed=0, dims=role_dims(described))
    return feeds


def profile_flags(feeds: dict[str, np.ndarray]) -> list[str]:
    """One shape per input (the feed's): dynamic dims get min = opt = max."""
    return [f"{name}:{','.join(map(str, a.shape))}..{','.join(map(str, a.shape))}" for name, a in feeds.items()]


def compile_plan(model: Path, out: Path, feeds: dict[str, np.ndarray], **extra: Any) -> Path:
    from mlc.cli import main

    inputs = out.with_name(out.name + ".inputs.npz")  # compile checks the plan at these, inside its profile
    np.savez(inputs, **feeds)
    args = ["compile", str(model), "--target", "tensorrt", "-o", str(out), "--force", "-q", "--inputs", str(inputs)]
    for flag in profile_flags(feeds):
        args += ["--input-shape", flag]
    for key, value in extra.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    code = main(args)
    if code != 0:
        raise RuntimeError(f"mlc compile {model.name} --target tensorrt {extra} exited {code}")
    return out


def ort_cpu(model: Path, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, feeds), strict=True))


def worst_relative(expected: dict[str, np.ndarray], got: dict[str, np.ndarray]) -> float:
    worst = 0.0
    for name, ref in expected.items():
        ref64, got64 = np.asarray(ref, np.float64), np.asarray(got[name], np.float64)
        worst = max(worst, float(np.max(np.abs(got64 - ref64) / (np.abs(ref64) + 1e-5 / 1e-3))))
    return worst


def timed(runners: dict[str, Any], feed: dict[str, np.ndarray], runs: int) -> dict[str, float]:
    samples: dict[str, list[float]] = {k: [] for k in runners}
    order = list(runners)
    for _ in range(5):
        for name in order:
            runners[name](feed)
    for i in range(runs):
        for name in order[i % len(order):] + order[:i % len(order)]:
            start = time.perf_counter()
            runners[name](feed)
            samples[name].append((time.perf_counter() - start) * 1e3)
    return {k: statistics.median(v) for k, v in samples.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eval", type=int, default=200)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    device = gpu_or_exit()
    from mlc.artifact import load

    lines = [f"# TensorRT plans ({device})", ""]
    with tempfile.TemporaryDirectory(prefix="mlc-bench-trt-") as folder:
        tmp = Path(folder)
        lines += ["| model | fp32 max rel err | fp32 within 1e-3 | fp16 max rel err |", "|---|---|---|---|"]
        for name, model, inputs in models():
            feeds = feeds_of(model, inputs)
            expected = ort_cpu(model, feeds)
            try:
                fp32 = load(compile_plan(model, tmp / f"{name}.fp32", feeds)).run(feeds)
                fp16 = load(compile_plan(model, tmp / f"{name}.fp16", feeds, precision="fp16")).run(feeds)
            except Exception as error:  # noqa: BLE001 - a row per model, the error in it
                lines.append(f"| {name} | {str(error).splitlines()[0][:80]} | | |")
                continue
            err32, err16 = worst_relative(expected, fp32), worst_relative(expected, fp16)
            lines.append(f"| {name} | {err32:.2e} | {'yes' if err32 <= 1e-3 else 'NO'} | {err16:.2e} |")
        resnet = ZOO / "tv_resnet18-ts.onnx"
        if resnet.is_file():
            from bench_quantize import smooth_images

            cal, evaluation = smooth_images(200, 3, 224, 0), smooth_images(args.eval, 3, 224, 1)
            np.savez(tmp / "cal.npz", image=cal)
            feed = {"image": evaluation[:1]}
            int8 = load(compile_plan(resnet, tmp / "r.int8", feed, quantize="int8", calibration_data=tmp / "cal.npz"))
            fp16 = load(compile_plan(resnet, tmp / "r.fp16", feed, precision="fp16"))
            from mlc.cli import main as mlc_main

            mlc_main(["compile", str(resnet), "--target", "onnxruntime", "--quantize", "int8", "--calibration-data",
                      str(tmp / "cal.npz"), "-o", str(tmp / "r.ort-int8"), "-q"])
            ort_int8 = load(tmp / "r.ort-int8")
            import onnxruntime as ort

            session = ort.InferenceSession(str(resnet), providers=["CPUExecutionProvider"])  # one, for every image
            reference = np.concatenate([session.run(None, {"image": evaluation[i:i + 1]})[0]
                                        for i in range(args.eval)])
            agree = {}
            for label, artifact in (("tensorrt int8", int8), ("onnxruntime int8 (CPU)", ort_int8),
                                    ("tensorrt fp16", fp16)):
                got = np.concatenate([next(iter(artifact.run({"image": evaluation[i:i + 1]}).values()))
                                      for i in range(args.eval)])
                agree[label] = float(np.mean(got.argmax(1) == reference.argmax(1)))
            lines += ["", f"ResNet-18 top-1 agreement with fp32 on {args.eval} images: "
                      + ", ".join(f"{k} {v:.3f}" for k, v in agree.items())]
            mlc_main(["compile", str(resnet), "--target", "onnxruntime-cuda", "-o", str(tmp / "r.ortcuda"), "-q"])
            mlc_main(["compile", str(resnet), "--target", "cuda", "--input-shape", "image:1,3,224,224",
                      "-o", str(tmp / "r.cuda"), "-q"])
            runners = {"tensorrt fp16": fp16.run, "tensorrt int8": int8.run,
                       "onnxruntime CUDA EP": load(tmp / "r.ortcuda").run, "TVM cuda": load(tmp / "r.cuda").run,
                       "onnxruntime int8 (CPU)": ort_int8.run}
            medians = timed(runners, feed, args.runs)
            lines += ["", "| ResNet-18, batch 1 | median ms |", "|---|---|"]
            lines += [f"| {k} | {v:.3f} |" for k, v in medians.items()]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.markdown:
        args.markdown.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
