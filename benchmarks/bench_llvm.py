"""The `llvm` target against onnxruntime on the issue-15 models: TVM's default loops, mlc's CPU schedules,
with the zoo's dynamic shapes and with every input shape fixed (`--input-shape`).

    . .venv/bin/activate && pip install -e '.[test,tvm]'
    python benchmarks/bench_llvm.py                              # tv_resnet18, tv_mobilenet_v3, bert (ts exports)
    python benchmarks/bench_llvm.py --models bert-ts --runs 20 --markdown /tmp/llvm.md
    python benchmarks/bench_llvm.py --sizes deploy                # images 1x3x224x224, 128 tokens
    python benchmarks/bench_llvm.py --sizes deploy --tuning-db tuning/   # + a tuned variant (mlc tune first)

Run by hand, never in CI. Models: the zoo's TorchScript exports (`python -m models.zoo.build`) with their sample
inputs (`NAME.inputs.npz`, e.g. images 2x3x64x64, token sequences 2x16; `--sizes deploy`: one 224x224 image,
one 128-token sequence, what a deployment runs). Per model, artifacts are built with
`mlc.compile` (numbers checked against onnxruntime at compile time): `llvm` with TVM's default loops
(`tvm_schedules="none"`), `llvm` with mlc's schedules, both again with the inputs' shapes fixed, and plain
onnxruntime on the original model. Every variant of a model runs on the sample inputs, taking turns in blocks
(2 untimed, 5 timed) until each has `--runs` timings; medians are reported, with the ratio onnxruntime / variant
(the fraction of onnxruntime's speed). With `--tuning-db DIR` (written by `mlc tune ... --input-shape` at the same
sizes) a fifth variant applies its records to the fixed-shape build. Results go, as markdown with the command,
date and CPU, to `--markdown` (default `benchmarks/results/llvm.md`, `llvm-deploy.md` with `--sizes deploy`).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from _machine import cpu

ROOT = Path(__file__).resolve().parents[1]
ZOO = Path.home() / ".cache" / "mlc-zoo"
DEFAULT_MARKDOWN = ROOT / "benchmarks" / "results" / "llvm.md"
MODELS = ("tv_resnet18-ts", "tv_mobilenet_v3-ts", "bert-ts")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def deploy_feeds(feeds: dict[str, np.ndarray], tokens: int = 128, side: int = 224) -> dict[str, np.ndarray]:
    """One image of side x side (4-D float inputs) or one sequence of `tokens` (2-D integer inputs:
    the sample's first row repeated; masks all ones), from the zoo's sample inputs."""
    rng = np.random.default_rng(0)
    out: dict[str, np.ndarray] = {}
    for key, value in feeds.items():
        if value.ndim == 4 and value.dtype.kind == "f":
            out[key] = rng.standard_normal((1, value.shape[1], side, side)).astype(value.dtype)
        elif value.ndim == 2 and value.dtype.kind in "iu":
            row = np.ones(tokens, value.dtype) if "mask" in key else np.resize(value[0], tokens)
            out[key] = row[None, :].astype(value.dtype)
        else:
            out[key] = value
    return out


def bench_model(name: str, tmp: Path, runs: int, sizes: str, tuning_db: Path | None) -> dict[str, Any]:
    import onnxruntime as ort

    import mlc
    from mlc.prune.latency import interleaved_medians

    model = ZOO / f"{name}.onnx"
    inputs = ZOO / f"{name.rsplit('-', 1)[0]}.inputs.npz"
    feeds = dict(np.load(inputs))
    if sizes == "deploy":
        feeds = deploy_feeds(feeds)
        inputs = tmp / f"{name}.deploy.npz"
        np.savez(inputs, **feeds)
    shapes = {k: list(v.shape) for k, v in feeds.items()}
    calls: dict[str, Any] = {}
    seconds: dict[str, float] = {}
    variants: list[tuple[str, dict[str, Any]]] = [
        ("llvm, TVM default loops", {"tvm_schedules": "none"}),
        ("llvm, mlc schedules", {}),
        ("llvm static shapes, TVM default loops", {"tvm_schedules": "none", "static": True}),
        ("llvm static shapes, mlc schedules", {"static": True})]
    if tuning_db is not None:
        variants.append(("llvm static shapes, mlc schedules + tuning database", {"static": True,
                                                                                "tuning_db": tuning_db}))
    for label, options in variants:
        static = options.pop("static", False)
        started = time.perf_counter()
        folder = mlc.compile(model, "llvm", tmp / f"{name}-{len(calls)}", inputs=str(inputs),
                             static_shapes=shapes if static else None, **options)
        seconds[label] = time.perf_counter() - started
        artifact = mlc.load(folder)
        counts = artifact.manifest.get("backend_options", {}).get("tuning_db")
        if counts:
            log(f"   {name} {label}: tuning database counts {counts}")
        wanted = {k: v for k, v in feeds.items() if k in artifact.input_names}
        calls[label] = (lambda a, f: (lambda: a.run(f)))(artifact, wanted)
        log(f"   {name} {label}: compiled and checked in {seconds[label]:.1f} s")
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    wanted = {i.name: feeds[i.name] for i in session.get_inputs()}
    calls["onnxruntime"] = (lambda s, f: (lambda: s.run(None, f)))(session, wanted)
    medians = interleaved_medians(calls, runs)
    return {"name": name, "shapes": shapes, "medians": medians, "seconds": seconds}


def markdown(rows: list[dict[str, Any]], command: str, seconds: float) -> str:
    import onnxruntime
    import tvm

    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    out = ["# llvm against onnxruntime", "", f"`{command}` — {now}, {seconds:.0f} s.", "",
           f"CPU: {cpu()}. onnxruntime {onnxruntime.__version__}, tvm {tvm.__version__}.", "",
           "What runs is in `benchmarks/bench_llvm.py`'s docstring. Speed = onnxruntime's median / the variant's "
           "(1.00 = as fast as onnxruntime; within 3x means >= 0.33).", ""]
    for row in rows:
        base = row["medians"]["onnxruntime"]
        shapes = ", ".join(f"{k} {'x'.join(map(str, v))}" for k, v in row["shapes"].items())
        out += [f"## {row['name']} ({shapes})", "", "| variant | median ms | speed vs onnxruntime | compile s |",
                "|---|---:|---:|---:|"]
        for label, ms in row["medians"].items():
            out.append(f"| {label} | {ms:.3f} | {base / ms:.2f} | "
                       f"{row['seconds'].get(label, 0):.1f} |" if label != "onnxruntime" else
                       f"| {label} | {ms:.3f} | 1.00 | — |")
        out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--markdown", type=Path, default=None,
                        help="default benchmarks/results/llvm.md (llvm-deploy.md with --sizes deploy)")
    parser.add_argument("--sizes", choices=["zoo", "deploy"], default="zoo",
                        help="zoo: the zoo's sample inputs; deploy: one 224x224 image / one 128-token sequence")
    parser.add_argument("--tuning-db", type=Path, default=None, help="an mlc tuning database: adds a tuned variant")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory(prefix="mlc-bench-llvm-") as folder:
        for name in args.models:
            if not (ZOO / f"{name}.onnx").is_file():
                log(f"{name}: not in {ZOO} (python -m models.zoo.build); skipped")
                continue
            log(f"{name}:")
            rows.append(bench_model(name, Path(folder), args.runs, args.sizes, args.tuning_db))
    command = "python benchmarks/bench_llvm.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = markdown(rows, command.strip(), time.perf_counter() - started)
    markdown_path = args.markdown or (DEFAULT_MARKDOWN.with_name("llvm-deploy.md") if args.sizes == "deploy"
                                      else DEFAULT_MARKDOWN)
    markdown_path.parent.mkdir(parents=True, exist_ok=True)
    markdown_path.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
