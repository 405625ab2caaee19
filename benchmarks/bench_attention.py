"""Latency of the exporter-style BERT after `fuse-attention`, against the original and onnxruntime's optimizer.

    python benchmarks/bench_attention.py                    # default: batch x seq = 1x16, 1x128, 8x128
    python benchmarks/bench_attention.py --rounds 50 --shapes 1x128 --threads 1

Models (all run under a default `onnxruntime.InferenceSession`, CPU, graph optimizations on):

- original:  `models/make_transformers.py` BERT (2 layers, hidden 128, 4 heads), decomposed attention.
- mlc:       fold-constants, simplify-shapes, dce, fuse-attention (form=contrib), dce: two
             com.microsoft::Attention nodes; LayerNorm and GELU stay decomposed (onnxruntime's
             session optimizer fuses those online, in all three models).
- mlc-O3:    the whole -O3 pipeline for the onnxruntime target (attention, GELU, bias-GELU, ... composites).
- ort-opt:   `onnxruntime.transformers.optimizer.optimize_model(path, model_type="bert", num_heads=4,
             hidden_size=128, opt_level=0)`: its Attention, SkipLayerNormalization, BiasGelu, ... fusions.

Each round runs every model once per shape, in an order rotated from round to round (interleaved, so a
slow spell of a shared machine hits all of them); the table gives the median and the 10th-90th percentile
spread in milliseconds, and the outputs' max abs difference to the original.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from mlc.onnx_io.exporter import export_onnx
from mlc.onnx_io.importer import import_onnx
from mlc.pass_manager import PassManager
from mlc.pipelines import build_pipeline
from mlc.testing import run_pass

ROOT = Path(__file__).resolve().parents[1]


def _builders():
    spec = importlib.util.spec_from_file_location("make_transformers", ROOT / "models" / "make_transformers.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fuse_with_mlc(model: onnx.ModelProto) -> onnx.ModelProto:
    graph = import_onnx(model)
    for name in ("fold-constants", "simplify-shapes", "dce", "fuse-attention", "dce"):
        _, ctx = run_pass(name, graph)
        if name == "fuse-attention" and ctx.rules["attention-contrib"] != 2:
            raise RuntimeError(f"expected 2 fused Attention nodes, got {dict(ctx.rules)}: {ctx.remarks}")
    return export_onnx(graph)


def mlc_o3(model: onnx.ModelProto) -> onnx.ModelProto:
    """The whole -O3 pipeline for the onnxruntime target (its contrib composites included)."""
    graph = import_onnx(model)
    PassManager(build_pipeline("O3", target="onnxruntime")).run(graph)
    return export_onnx(graph)


def optimize_with_ort(model: onnx.ModelProto, directory: Path) -> onnx.ModelProto:
    from onnxruntime.transformers.optimizer import optimize_model

    path = directory / "bert.onnx"
    onnx.save(model, path)  # a path, not the ModelProto: optimize_model mutates what it is given
    logging.getLogger("onnxruntime.transformers").setLevel(logging.WARNING)
    optimized = optimize_model(str(path), model_type="bert", num_heads=4, hidden_size=128, opt_level=0)
    return optimized.model


def feeds_for(batch: int, seq: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    mask = np.ones((batch, seq), np.int64)
    mask[-1, seq - seq // 4:] = 0  # padded last row
    return {"input_ids": rng.integers(0, 1000, (batch, seq)).astype(np.int64), "attention_mask": mask,
            "token_type_ids": np.zeros((batch, seq), np.int64)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--shapes", default="1x16,1x128,8x128", help="batch x sequence, comma-separated")
    parser.add_argument("--threads", type=int, default=0, help="intra-op threads (0: onnxruntime's default)")
    args = parser.parse_args(argv)
    shapes = [tuple(int(d) for d in s.split("x")) for s in args.shapes.split(",")]

    original = _builders().build_bert()
    with tempfile.TemporaryDirectory() as tmp:
        models = {"original": original, "mlc": fuse_with_mlc(original), "mlc-O3": mlc_o3(original),
                  "ort-opt": optimize_with_ort(original, Path(tmp))}
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    sessions = {name: ort.InferenceSession(m.SerializeToString(), options, providers=["CPUExecutionProvider"])
                for name, m in models.items()}
    for name, m in models.items():
        ops = sorted({n.op_type for n in m.graph.node if "Attention" in n.op_type or "Norm" in n.op_type
                      or "Gelu" in n.op_type})
        print(f"{name:9s} {len(m.graph.node):4d} nodes  fused ops: {', '.join(ops) or '-'}")

    rng = np.random.default_rng(0)
    names = list(sessions)
    print(f"\nCPU, {ort.__version__}, {args.rounds} interleaved rounds; ms median [p10-p90]; max |diff| vs original")
    print(f"{'shape':>7s} " + " ".join(f"{n:>26s}" for n in names) + "   speed-up vs original: "
          + ", ".join(names[1:]))
    for batch, seq in shapes:
        feeds = feeds_for(batch, seq, rng)
        reference = sessions["original"].run(None, feeds)
        diffs = {n: max(float(np.abs(a - b).max()) for a, b in zip(reference, s.run(None, feeds), strict=True))
                 for n, s in sessions.items()}
        for session in sessions.values():  # warm-up
            for _ in range(3):
                session.run(None, feeds)
        samples: dict[str, list[float]] = {n: [] for n in names}
        for r in range(args.rounds):
            for name in names[r % len(names):] + names[:r % len(names)]:
                start = time.perf_counter()
                sessions[name].run(None, feeds)
                samples[name].append((time.perf_counter() - start) * 1e3)
        medians = {n: statistics.median(v) for n, v in samples.items()}
        cells = []
        for n in names:
            p10, p90 = np.percentile(samples[n], [10, 90])
            cells.append(f"{medians[n]:7.3f} [{p10:6.3f}-{p90:6.3f}] {diffs[n]:5.0e}")
        print(f"{batch:>3d}x{seq:<3d} " + " ".join(f"{c:>26s}" for c in cells) + "   "
              + ", ".join(f"{medians['original'] / medians[n]:.2f}x" for n in names[1:]))


if __name__ == "__main__":
    main()
