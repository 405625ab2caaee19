"""Runtime effect of mlc's pipelines under onnxruntime (run by hand, not a test).

    python benchmarks/bench_runtime.py                  # light models (-O2), BERT and GPT-2 (-O3)
    python benchmarks/bench_runtime.py --only bert --runs 600 --sequence 128

1. Each light model of the onnx wheel: the original and mlc's -O2 output, both under a default
   onnxruntime session (all of ORT's own optimizations on), same inputs, runs interleaved; the
   ratio is original median / -O2 median (> 1: mlc's output is faster). Goal: never below 1
   beyond noise.
2. The BERT-style encoder of models/make_transformers.py (batch 1, sequence 128): the original
   under a default session; onnxruntime's transformer optimizer (`optimize_model`, model_type
   bert, opt_level 0: its fusions; the session then applies ORT's own graph optimizations as
   usual); mlc -O3 for the onnxruntime target (its contrib composites). Goals: mlc at least as
   fast as ORT's transformer optimizer, and at least 1.2x the original.
3. The GPT-2-style decoder of the same script, likewise (the optimizer's model_type gpt2).

Sessions are default onnxruntime sessions: default thread count, thread spinning on. The original
and the peers' outputs open with no options at all; mlc's output opens with the session settings
its artifact records (`mlc.backends.onnxruntime.session_settings`: on CPU, onnxruntime's
SkipLayerNormFusion off, see benchmarks/bench_skip_layernorm.py). Variants take turns in blocks
(`--block` timed runs after 2 untimed ones, so a session's spinning threads have settled before
the next one is timed); medians over all rounds. `--no-spin` turns spinning off for every variant
and interleaves single runs instead.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from mlc.backends.onnxruntime import CPU, open_session, session_settings
from mlc.numerics.inputs import InputSpec, make_inputs
from mlc.onnx_io.exporter import export_onnx
from mlc.onnx_io.importer import import_onnx
from mlc.pass_manager import PassManager
from mlc.pipelines import build_pipeline

ROOT = Path(__file__).resolve().parents[1]
THREADS = 0  # 0: onnxruntime's default (one per core)
LIGHT = Path(onnx.__file__).resolve().parent / "backend" / "test" / "data" / "light"


SPIN = True  # onnxruntime's default; --no-spin turns it off for every variant
# A plain session, as anyone opens the original model: all of onnxruntime's optimizations, CPU.
DEFAULT_SETTINGS: dict[str, object] = {"graph_optimization_level": "ORT_ENABLE_ALL",
                                       "providers": ["CPUExecutionProvider"]}


def session(model: onnx.ModelProto, settings: dict[str, object] | None = None) -> ort.InferenceSession:
    """A default CPU session, or one opened with an artifact's recorded settings."""
    settings = settings or DEFAULT_SETTINGS
    config = {} if SPIN else {"session.intra_op.allow_spinning": "0"}
    return open_session(model.SerializeToString(), settings, THREADS, config)


def artifact_session(model: onnx.ModelProto) -> ort.InferenceSession:
    return session(model, session_settings(CPU))


def optimized(model: onnx.ModelProto, level: str) -> onnx.ModelProto:
    graph = import_onnx(model)
    PassManager(build_pipeline(level, target="onnxruntime")).run(graph)
    return export_onnx(graph)


def interleaved(sessions: dict[str, ort.InferenceSession], feeds: dict[str, np.ndarray], runs: int,
                block: int = 20) -> dict[str, float]:
    """Median milliseconds per variant. With spinning on, variants take turns in blocks of `block`
    timed runs after 2 untimed ones, `runs` timed runs each in all; with it off, one run each per
    round after a warm-up."""
    samples: dict[str, list[float]] = {k: [] for k in sessions}
    block = block if SPIN else 1
    for s in sessions.values():
        for _ in range(3):
            s.run(None, feeds)
    for _ in range(max(runs // block, 1)):
        for key, s in sessions.items():
            for _ in range(2 if SPIN else 0):
                s.run(None, feeds)
            for _ in range(block):
                start = time.perf_counter()
                s.run(None, feeds)
                samples[key].append((time.perf_counter() - start) * 1000)
    return {k: statistics.median(v) for k, v in samples.items()}


def executed_ops(model: onnx.ModelProto, settings: dict[str, object] | None = None) -> list[tuple[str, str]]:
    """The nodes onnxruntime runs after its own graph optimizations: (op type, attributes)."""
    settings = settings or DEFAULT_SETTINGS
    with tempfile.TemporaryDirectory() as tmp:
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.optimized_model_filepath = str(Path(tmp) / "executed.onnx")
        ort.InferenceSession(model.SerializeToString(), options, providers=settings["providers"],
                             disabled_optimizers=list(settings.get("disabled_optimizers", [])))  # type: ignore[call-overload]
        executed = onnx.load(options.optimized_model_filepath)
    return [(n.op_type, str(sorted((a.name, str(onnx.helper.get_attribute_value(a))) for a in n.attribute)))
            for n in executed.graph.node]


def light_models(runs: int, repeat: int) -> None:
    """Ratios per model; `executed` says whether onnxruntime ends up running the same nodes
    (same ops and attributes in the same order) for both: then any ratio away from 1 is noise."""
    print(f"| light model | original ms | mlc -O2 ms | ratio | each of {repeat} repeats | executed nodes |\n"
          "|---|--:|--:|--:|---|---|")
    for path in sorted(LIGHT.glob("light_*.onnx")):
        model = onnx.load(str(path))
        ours = optimized(model, "O2")
        feeds = make_inputs(import_onnx(model), InputSpec(seed=0))
        variants = {"original": session(model), "O2": artifact_session(ours)}
        rounds = [interleaved(variants, feeds, runs, block=5) for _ in range(repeat)]
        ratios = sorted(r["original"] / r["O2"] for r in rounds)
        a, b = executed_ops(model), executed_ops(ours, session_settings(CPU))
        same = "the same" if a == b else f"{len(a)} vs {len(b)}"
        print(f"| {path.stem.removeprefix('light_')} | {statistics.median(r['original'] for r in rounds):.2f} | "
              f"{statistics.median(r['O2'] for r in rounds):.2f} | {statistics.median(ratios):.2f}x | "
              f"{', '.join(f'{x:.2f}' for x in ratios)} | {same} |", flush=True)


def _transformers_module() -> object:
    spec = importlib.util.spec_from_file_location("make_transformers", ROOT / "models" / "make_transformers.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def transformer(kind: str, runs: int, sequence: int, block: int, repeat: int) -> None:
    """`kind` bert or gpt: original, onnxruntime's transformer optimizer, mlc -O3, interleaved."""
    from onnxruntime.transformers import optimizer

    builder = _transformers_module()
    model = builder.build_bert() if kind == "bert" else builder.build_gpt()  # type: ignore[attr-defined]
    rng = np.random.default_rng(0)
    feeds = {"input_ids": rng.integers(0, 1000, (1, sequence), dtype=np.int64)}
    if kind == "bert":
        feeds["attention_mask"] = np.ones((1, sequence), np.int64)
        feeds["attention_mask"][0, sequence - sequence // 4:] = 0  # padded tail
        feeds["token_type_ids"] = np.zeros((1, sequence), np.int64)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{kind}.onnx"
        onnx.save(model, str(path))
        ort_opt = optimizer.optimize_model(str(path), model_type="bert" if kind == "bert" else "gpt2",
                                           num_heads=4, hidden_size=128, opt_level=0)
        ort_model = ort_opt.model
    ours = optimized(model, "O3")
    variants = {"original": session(model), "ORT transformer optimizer": session(ort_model),
                "mlc -O3": artifact_session(ours)}
    reference = variants["original"].run(None, feeds)
    for key, s in variants.items():
        for got, want in zip(s.run(None, feeds), reference, strict=True):
            assert np.allclose(got, want, atol=1e-3, rtol=1e-3), f"{key} computes different numbers"
    rounds = [interleaved(variants, feeds, runs, block) for _ in range(repeat)]
    ops = {k: len(m.graph.node) for k, m in (("original", model), ("ORT transformer optimizer", ort_model),
                                              ("mlc -O3", ours))}
    name = "BERT" if kind == "bert" else "GPT-2"
    print(f"\n| {name} (batch 1, sequence {sequence}) | nodes | median ms | vs original | "
          f"vs original, each of {repeat} repeats |\n|---|--:|--:|--:|---|")
    for key in variants:
        ratios = sorted(r["original"] / r[key] for r in rounds)
        median = statistics.median(r[key] for r in rounds)
        print(f"| {key} | {ops[key]} | {median:.3f} | {statistics.median(ratios):.2f}x | "
              f"{', '.join(f'{x:.2f}' for x in ratios)} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100, help="timed runs per variant (default 100)")
    parser.add_argument("--block", type=int, default=20, help="BERT/GPT-2: timed runs per turn (default 20)")
    parser.add_argument("--sequence", type=int, default=128, help="BERT/GPT-2 sequence length (default 128)")
    parser.add_argument("--only", choices=["light", "bert", "gpt"], help="run one part")
    parser.add_argument("--repeat", type=int, default=5,
                        help="independent interleaved measurements; the tables give each ratio (default 5)")
    parser.add_argument("--no-spin", action="store_true", help="thread spinning off, single runs interleaved")
    args = parser.parse_args()
    global SPIN
    SPIN = not args.no_spin
    print(f"onnxruntime {ort.__version__}, thread spinning {'on' if SPIN else 'off'}")
    if args.only in (None, "light"):
        light_models(max(args.runs // 4, 10), args.repeat)
    for kind in ("bert", "gpt"):
        if args.only in (None, kind):
            transformer(kind, args.runs, args.sequence, args.block, args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
