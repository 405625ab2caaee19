"""Weight pruning: accuracy, size, FLOPs and latency before and after (issue 14).

    . .venv/bin/activate && pip install -e '.[test,tvm]'
    python benchmarks/bench_prune.py                                  # digits + tv_resnet18 + tv_mobilenet_v3
    python benchmarks/bench_prune.py --models digits --runs 40 --markdown /tmp/p.md

Run by hand, never in CI. Results go, as markdown with the command, date, CPU and package versions,
to `--markdown` (default `benchmarks/results/prune.md`).

* `digits`: `models/digits_cnn.onnx` and its 600-image test split (models/digits_cnn.data.npz), pruned
  without any fine-tuning (an ONNX-level pruner has no training loop): structured `channels:R` and
  `magnitude:S` at 30, 50 and 70 %, and `nm:2:4`; the channel ratios again with `--prune-multiple 8`
  (kept channels rounded to a multiple of 8). Per variant: top-1 accuracy on onnxruntime and on
  TVM `llvm`, parameters (all and non-zero), FLOPs (2 x MACs at the timing batch), the .onnx bytes,
  and the median latency of a 64-image batch on both targets, every variant of a target timed in turns
  (`mlc.prune.latency.interleaved_medians`). Then `--accuracy-budget 1.0` (points of top-1) on the
  test split: the largest channel ratio up to 0.7 that keeps the drop within one point.
* `resnet18`, `mobilenet_v3`: the zoo's TorchScript exports of torchvision's ResNet-18 and
  MobileNetV3-Large (`~/.cache/mlc-zoo/tv_resnet18-ts.onnx`, `tv_mobilenet_v3-ts.onnx`; build them with
  `python -m models.zoo.build`), `channels:0.5`: that the pruned graph runs on both targets, what
  shrank, the output cosine to the unpruned model on the check inputs, and the latency ratio pruned /
  original on onnxruntime and llvm (one image).
Every variant goes through `mlc.compile` / `mlc.optimize` (-O2, so BatchNorm is folded before
pruning, and the original row is -O2 too): what a user gets.
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
from _machine import versions as machine_versions

ROOT = Path(__file__).resolve().parents[1]
ZOO = Path.home() / ".cache" / "mlc-zoo"
DEFAULT_MARKDOWN = ROOT / "benchmarks" / "results" / "prune.md"
RATIOS = (0.3, 0.5, 0.7)
DIGITS_BATCH = 64
ZOO_MODELS = {"resnet18": "tv_resnet18-ts.onnx", "mobilenet_v3": "tv_mobilenet_v3-ts.onnx"}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def stats_of(path: Path, shapes: dict[str, list[int]]) -> dict[str, Any]:
    from mlc.onnx_io.importer import import_onnx
    from mlc.prune.stats import model_stats

    return model_stats(import_onnx(str(path)), shapes).to_json()


def _split(prune: str | None) -> tuple[str | None, int]:
    """`channels:0.5@8` -> ("channels:0.5", 8): a variant with --prune-multiple 8."""
    if prune is None or "@" not in prune:
        return prune, 1
    spec, _, multiple = prune.partition("@")
    return spec, int(multiple)


def optimized(model: Path, out: Path, prune: str | None, shapes: dict[str, list[int]]) -> Path:
    import mlc

    spec, multiple = _split(prune)
    return Path(mlc.optimize(model, out, target="onnxruntime", prune=spec, prune_multiple=multiple,
                             input_shapes=shapes))


def ort_outputs(path: Path, feeds: dict[str, np.ndarray]) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, feeds)[0])


def compiled(model: Path, target: str, out: Path, prune: str | None) -> Any:
    import mlc

    spec, multiple = _split(prune)
    folder = mlc.compile(model, target, out, prune=spec, prune_multiple=multiple)
    return mlc.load(folder)


def time_turns(runners: dict[str, Any], feeds: dict[str, np.ndarray], runs: int) -> dict[str, float]:
    from mlc.prune.latency import interleaved_medians

    calls = {name: (lambda r: (lambda: r.run(dict(feeds))))(runner) for name, runner in runners.items()}
    return interleaved_medians(calls, runs)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a64, b64 = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    return float(a64 @ b64 / max(np.linalg.norm(a64) * np.linalg.norm(b64), 1e-30))


# ------------------------------------------------------------------------------------------------ cases


def digits(tmp: Path, runs: int, llvm: bool) -> dict[str, Any]:
    data = np.load(ROOT / "models" / "digits_cnn.data.npz")
    test = (data["test"].astype(np.float32) / np.float32(16.0))
    labels = data["test_labels"].astype(np.int64)
    feed = {"image": test[:DIGITS_BATCH]}
    shapes = {"image": list(feed["image"].shape)}
    model = ROOT / "models" / "digits_cnn.onnx"
    variants: dict[str, str | None] = {"original (-O2)": None}
    variants |= {f"channels:{r:g}": f"channels:{r:g}" for r in RATIOS}
    variants |= {f"channels:{r:g} multiple 8": f"channels:{r:g}@8" for r in RATIOS}
    variants |= {f"magnitude:{r:g}": f"magnitude:{r:g}" for r in RATIOS}
    variants["nm:2:4"] = "nm:2:4"
    rows: dict[str, dict[str, Any]] = {}
    runners: dict[str, dict[str, Any]] = {"onnxruntime": {}, "llvm": {}}
    for name, prune in variants.items():
        started = time.perf_counter()
        path = optimized(model, tmp / f"digits-{len(rows)}.onnx", prune, shapes)
        row: dict[str, Any] = {"prune": prune, "stats": stats_of(path, shapes)}
        row["accuracy"] = {"onnxruntime": float(np.mean(ort_outputs(path, {"image": test}).argmax(1) == labels))}
        for target in ("onnxruntime", "llvm") if llvm else ("onnxruntime",):
            runner = compiled(model, target, tmp / f"digits-{len(rows)}.{target}", prune)
            runners[target][name] = runner
            if target == "llvm":
                got = np.concatenate([runner.run({"image": test[i:i + DIGITS_BATCH]})["logits"]
                                      if test[i:i + DIGITS_BATCH].shape[0] == DIGITS_BATCH else
                                      runner.run({"image": test[i:]})["logits"]
                                      for i in range(0, len(test), DIGITS_BATCH)])
                row["accuracy"]["llvm"] = float(np.mean(got.argmax(1) == labels))
        rows[name] = row
        log(f"   digits {name}: {time.perf_counter() - started:.1f} s")
    latency = {target: time_turns(r, feed, runs) for target, r in runners.items() if r}
    search = budget_search(model, tmp, test, labels)
    return {"name": "digits", "rows": rows, "latency": latency, "search": search}


def budget_search(model: Path, tmp: Path, test: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """`--prune channels:0.7 --accuracy-budget 1.0 --eval-data <test split with labels>`."""
    from mlc.driver import PipelineRequest, optimize_model
    from mlc.pipelines import PruneOptions
    from mlc.runner import CheckOptions

    eval_path = tmp / "digits-eval.npz"
    np.savez(eval_path, image=test, labels=labels)
    request = PipelineRequest(target="onnxruntime", prune=PruneOptions.parse(["channels:0.7"]),
                              accuracy_budget="1.0", eval_data=str(eval_path))
    _, result = optimize_model(model, request, tmp / "digits-search.onnx", checks=CheckOptions(lossy_min_cosine=None))
    assert result.pruning is not None
    return dict(result.pruning["search"])


def zoo(name: str, tmp: Path, runs: int, llvm: bool) -> dict[str, Any] | None:
    model = ZOO / ZOO_MODELS[name]
    if not model.is_file():
        log(f"   {name}: {model} missing (python -m models.zoo.build); skipped")
        return None
    feed = {"image": np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)}
    import onnxruntime as ort

    feed = {ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]).get_inputs()[0].name: feed["image"]}
    shapes = {k: list(v.shape) for k, v in feed.items()}
    rows: dict[str, dict[str, Any]] = {}
    runners: dict[str, dict[str, Any]] = {"onnxruntime": {}, "llvm": {}}
    outputs: dict[str, dict[str, np.ndarray]] = {}
    for label, prune in (("original (-O2)", None), ("channels:0.5", "channels:0.5"),
                         ("channels:0.5 multiple 16", "channels:0.5@16")):
        path = optimized(model, tmp / f"{name}-{len(rows)}.onnx", prune, shapes)
        rows[label] = {"prune": prune, "stats": stats_of(path, shapes)}
        for target in ("onnxruntime", "llvm") if llvm else ("onnxruntime",):
            started = time.perf_counter()
            runner = compiled(model, target, tmp / f"{name}-{len(rows)}.{target}", prune)
            runners[target][label] = runner
            outputs.setdefault(label, {})[target] = np.asarray(next(iter(runner.run(dict(feed)).values())))
            log(f"   {name} {label} {target}: built and ran in {time.perf_counter() - started:.1f} s")
    for label in rows:
        rows[label]["cosine_to_original"] = {t: cosine(outputs[label][t], outputs["original (-O2)"]["onnxruntime"])
                                             for t in outputs[label]}
    latency = {target: time_turns(r, feed, runs) for target, r in runners.items() if r}
    return {"name": name, "rows": rows, "latency": latency}


# ------------------------------------------------------------------------------------------------ report


def versions() -> str:
    return machine_versions(ROOT)


def _si(value: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{unit}"
    return f"{value:g}"


def table(case: dict[str, Any]) -> list[str]:
    targets = list(case["latency"])
    head = ["variant", *(f"top-1 {t}" for t in targets if case["name"] == "digits"),
            *(f"cosine to original ({t})" for t in targets if case["name"] != "digits"),
            "parameters", "non-zero", "FLOPs", "bytes", *(f"{t} ms" for t in targets), *(f"{t} ratio" for t in targets)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    base = {t: case["latency"][t]["original (-O2)"] for t in targets}
    for label, row in case["rows"].items():
        s = row["stats"]
        cells = [label]
        if case["name"] == "digits":
            cells += [f"{100 * row['accuracy'][t]:.2f} %" if t in row["accuracy"] else "—" for t in targets]
        else:
            cells += [f"{row['cosine_to_original'][t]:.4f}" for t in targets]
        cells += [_si(s["parameters"]), _si(s["nonzero_parameters"]), _si(s["flops_total"]), _si(s["bytes"])]
        cells += [f"{case['latency'][t][label]:.3f}" for t in targets]
        cells += [f"{case['latency'][t][label] / base[t]:.2f}" for t in targets]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def markdown(cases: list[dict[str, Any]], command: str, seconds: float) -> str:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    out = ["# Weight pruning: accuracy, size, FLOPs, latency", "",
           f"`{command}` — {now}, {seconds:.0f} s.", "", f"CPU: {cpu()}. {versions()}.", "",
           "What runs is described in `benchmarks/bench_prune.py`'s docstring. No fine-tuning after pruning. "
           "FLOPs are 2 x multiply-adds of Conv/Gemm/MatMul at the timing shape; latency medians are taken "
           "with the variants of one target timing in turns; ratio = variant / original.", ""]
    for case in cases:
        out += [f"## {case['name']}", "", *table(case), ""]
        if case.get("search"):
            s = case["search"]
            out += [f"`--prune channels:{s['asked']:g} --accuracy-budget 1.0` on the test split: ratio "
                    f"**{s['ratio']:g}** kept, top-1 {s['score']:.2f} % against {s['float_score']:.2f} % "
                    f"({'met' if s['met'] else 'missed'}; trials: "
                    + ", ".join(f"{t['ratio']:g} → {t['score']:.2f} %" for t in s["trials"]) + ").", ""]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["digits", *ZOO_MODELS], choices=["digits", *ZOO_MODELS])
    parser.add_argument("--runs", type=int, default=60, help="timed runs per variant (default 60)")
    parser.add_argument("--no-llvm", action="store_true", help="onnxruntime only")
    parser.add_argument("--markdown", type=Path, default=DEFAULT_MARKDOWN)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    cases = []
    with tempfile.TemporaryDirectory(prefix="mlc-bench-prune-") as folder:
        tmp = Path(folder)
        for name in args.models:
            log(f"{name}:")
            case = digits(tmp, args.runs, not args.no_llvm) if name == "digits" else \
                zoo(name, tmp, args.runs, not args.no_llvm)
            if case is not None:
                cases.append(case)
    command = "python benchmarks/bench_prune.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = markdown(cases, command.strip(), time.perf_counter() - started)
    args.markdown.parent.mkdir(parents=True, exist_ok=True)
    args.markdown.write_text(text + "\n")
    print(text)
    log(f"wrote {args.markdown}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
