"""Import / verify / export benchmark for mlc (run by hand, not a test).

    python benchmarks/bench_import_export.py            # full run (a few minutes)
    python benchmarks/bench_import_export.py --quick    # no 100k graph, 256 MiB of weights
    python benchmarks/bench_import_export.py --json results.json

Three measurements (see benchmarks/README.md for what each figure means):

1. ``light_densenet121`` from the onnx wheel (1,746 nodes): import + verify + export, median of
   repeated runs, split into the three phases. Goal: total median under 0.3 s.
2. Generated elementwise graphs of 10k / 30k / 100k nodes: the same three phases, with and
   without onnx's shape inference (which ``import_onnx`` runs by default), and the time per node,
   which should stay flat across sizes. Goal: 100k nodes under 10 s.
3. A model with 1 GiB of external weights (one ``weights.bin``): a fresh subprocess imports it,
   verifies it and reads one value of every weight; its peak RSS is compared with a subprocess
   that only does ``import mlc``. Goals: the difference is under 1/4 of the weights, and the
   anonymous (private) RSS grows by less than one weight (no weight is copied).

Timings are medians of ``time.perf_counter`` differences, after one untimed warm-up run, with a
``gc.collect()`` before each run (the collector stays enabled during the run; the time spent in
it is reported separately).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import onnxruntime

import mlc

DENSENET = Path(onnx.__file__).parent / "backend/test/data/light/light_densenet121.onnx"
DENSENET_GOAL_S = 0.3
LARGE_GOAL_S = 10.0  # for the 100k-node graph
FLAT_TOLERANCE = 1.5  # µs/node of the largest graph may be at most this times that of the smallest
MIB = 1 << 20

# ============================================================================ timing helpers


class _GcClock:
    """Time spent inside CPython's cyclic garbage collector (a `gc.callbacks` hook)."""

    def __init__(self) -> None:
        self.total = 0.0
        self.collections = [0, 0, 0]
        self._start = 0.0

    def __call__(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.total += time.perf_counter() - self._start
            self.collections[info["generation"]] += 1

    def reset(self) -> None:
        self.total = 0.0
        self.collections = [0, 0, 0]


GC_CLOCK = _GcClock()
gc.callbacks.append(GC_CLOCK)


def _phases(source: Path, infer_shapes: bool = True) -> tuple[float, float, float, int, float, list[int]]:
    """One import + verify + export: the three durations, the exported node count, the time spent in
    the garbage collector during the three phases and its collections per generation."""
    gc.collect()
    GC_CLOCK.reset()
    t0 = time.perf_counter()
    graph = mlc.import_onnx(source, infer_shapes=infer_shapes)
    t1 = time.perf_counter()
    mlc.verify(graph)
    t2 = time.perf_counter()
    proto = mlc.export_onnx(graph)
    t3 = time.perf_counter()
    gc_s, collections = GC_CLOCK.total, list(GC_CLOCK.collections)
    count = len(proto.graph.node)
    del graph, proto
    return t1 - t0, t2 - t1, t3 - t2, count, gc_s, collections


def _measure(source: Path, runs: int, infer_shapes: bool = True) -> dict:
    _phases(source, infer_shapes)  # warm-up, not counted
    samples = [_phases(source, infer_shapes) for _ in range(runs)]
    imports, verifies, exports, counts, gcs, collections = (list(col) for col in zip(*samples, strict=True))
    totals = [a + b + c for a, b, c, *_ in samples]
    return {
        "runs": runs,
        "infer_shapes": infer_shapes,
        "exported_nodes": counts[0],
        "median_s": {
            "import": statistics.median(imports),
            "verify": statistics.median(verifies),
            "export": statistics.median(exports),
            "total": statistics.median(totals),
            "gc": statistics.median(gcs),
            "total_without_gc": statistics.median(t - g for t, g in zip(totals, gcs, strict=True)),
        },
        "gc_collections_per_generation": collections[len(collections) // 2],
        "min_total_s": min(totals),
        "max_total_s": max(totals),
        "samples_s": {"import": imports, "verify": verifies, "export": exports, "total": totals, "gc": gcs},
    }


def _median_time(fn: Callable[[], object], runs: int) -> float:
    fn()
    times = []
    for _ in range(runs):
        gc.collect()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


# ============================================================================ 1. densenet


def bench_densenet(runs: int) -> dict:
    model = onnx.load(DENSENET, load_external_data=False)
    result = _measure(DENSENET, runs)
    result["name"] = "light_densenet121"
    result["nodes"] = len(model.graph.node)
    result["file_bytes"] = DENSENET.stat().st_size
    result["goal_s"] = DENSENET_GOAL_S
    result["ok"] = result["median_s"]["total"] < DENSENET_GOAL_S
    if result["exported_nodes"] != result["nodes"]:
        raise SystemExit(f"densenet: exported {result['exported_nodes']} nodes, expected {result['nodes']}")
    return result


# ============================================================================ 2. generated graphs

BATCH, WIDTH = 8, 64
# One block: 10 nodes, 2 initializers of f32[64]. Every node reads values made just before it;
# Sigmoid/Tanh fork from the Relu and join in an Add, ReduceMean/Sub broadcast, and the block
# ends with a residual Add back to the block's input.
BLOCK = 10


def _add_node(graph: onnx.GraphProto, op: str, inputs: list[str], output: str, name: str,
              **attrs: float | int | list[int]) -> None:
    node = graph.node.add()
    node.op_type = op
    node.name = name
    node.input.extend(inputs)
    node.output.append(output)
    for key, value in attrs.items():
        attr = node.attribute.add()
        attr.name = key
        if isinstance(value, float):
            attr.type, attr.f = onnx.AttributeProto.FLOAT, value
        elif isinstance(value, int):
            attr.type, attr.i = onnx.AttributeProto.INT, value
        else:
            attr.type = onnx.AttributeProto.INTS
            attr.ints.extend(value)


def _add_initializer(graph: onnx.GraphProto, name: str, array: np.ndarray) -> None:
    tensor = graph.initializer.add()
    tensor.name = name
    tensor.data_type = onnx.TensorProto.FLOAT
    tensor.dims.extend(array.shape)
    tensor.raw_data = array.astype("<f4").tobytes()


def _declare(vi: onnx.ValueInfoProto, name: str, shape: list[int]) -> None:
    vi.name = name
    vi.type.tensor_type.elem_type = onnx.TensorProto.FLOAT
    for d in shape:
        vi.type.tensor_type.shape.dim.add().dim_value = d


def build_chain_model(n_nodes: int) -> onnx.ModelProto:
    """A ModelProto of `n_nodes` elementwise nodes (IR 8, opset 17 set explicitly)."""
    if n_nodes % BLOCK:
        raise ValueError(f"n_nodes must be a multiple of {BLOCK}")
    rng = np.random.default_rng(0)
    model = onnx.ModelProto()
    model.ir_version = 8
    opset = model.opset_import.add()
    opset.domain, opset.version = "", 17
    model.producer_name = "mlc-bench"
    graph = model.graph
    graph.name = f"chain_{n_nodes}"
    _declare(graph.input.add(), "x", [BATCH, WIDTH])
    prev = "x"
    for b in range(n_nodes // BLOCK):
        p = f"blk{b}"
        _add_initializer(graph, f"{p}.bias", rng.standard_normal(WIDTH).astype(np.float32))
        _add_initializer(graph, f"{p}.scale", rng.uniform(0.5, 1.5, WIDTH).astype(np.float32))
        _add_node(graph, "Add", [prev, f"{p}.bias"], f"{p}/a", f"{p}/add_bias")
        _add_node(graph, "Mul", [f"{p}/a", f"{p}.scale"], f"{p}/m", f"{p}/mul_scale")
        _add_node(graph, "Relu", [f"{p}/m"], f"{p}/r", f"{p}/relu")
        _add_node(graph, "Sigmoid", [f"{p}/r"], f"{p}/sg", f"{p}/sigmoid")
        _add_node(graph, "Tanh", [f"{p}/r"], f"{p}/th", f"{p}/tanh")
        _add_node(graph, "Add", [f"{p}/sg", f"{p}/th"], f"{p}/j", f"{p}/join")
        _add_node(graph, "ReduceMean", [f"{p}/j"], f"{p}/mean", f"{p}/mean", axes=[-1], keepdims=1)
        _add_node(graph, "Sub", [f"{p}/j", f"{p}/mean"], f"{p}/c", f"{p}/center")
        _add_node(graph, "LeakyRelu", [f"{p}/c"], f"{p}/lr", f"{p}/leaky", alpha=0.1)
        _add_node(graph, "Add", [f"{p}/lr", prev], f"{p}/out", f"{p}/residual")
        prev = f"{p}/out"
    _declare(graph.output.add(), prev, [BATCH, WIDTH])
    return model


def bench_generated(sizes: list[int], runs_for: Callable[[int], int], folder: Path) -> list[dict]:
    results = []
    for n in sizes:
        model = build_chain_model(n)
        onnx.checker.check_model(model)
        path = folder / f"chain_{n}.onnx"
        path.write_bytes(model.SerializeToString())
        runs = runs_for(n)
        print(f"  generated {n:,} nodes: {runs} runs ...", file=sys.stderr, flush=True)
        entry: dict = {"nodes": n, "initializers": len(model.graph.initializer), "file_bytes": path.stat().st_size}
        for infer in (True, False):
            r = _measure(path, runs, infer_shapes=infer)
            if r["exported_nodes"] != n:
                raise SystemExit(f"chain_{n}: exported {r['exported_nodes']} nodes, expected {n}")
            r["us_per_node"] = r["median_s"]["total"] / n * 1e6
            r["us_per_node_without_gc"] = r["median_s"]["total_without_gc"] / n * 1e6
            entry["with_infer" if infer else "without_infer"] = r
        # onnx's shape inference alone, the very call import_onnx makes (serializes the model inside)
        entry["onnx_infer_shapes_s"] = _median_time(
            lambda m=model: onnx.shape_inference.infer_shapes(m, check_type=False, strict_mode=False,
                                                              data_prop=True), runs)
        # Parsing the file into a ModelProto (part of import in both modes)
        entry["parse_s"] = _median_time(lambda p=path: onnx.ModelProto().ParseFromString(p.read_bytes()), runs)
        entry["infer_share_of_import"] = entry["onnx_infer_shapes_s"] / entry["with_infer"]["median_s"]["import"]
        results.append(entry)
        path.unlink()
    return results


# ============================================================================ 3. external weights

CHILD = r"""
import json, resource, sys, time
def status():
    fields = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmHWM", "VmRSS", "RssAnon", "RssFile"):
                fields[key] = int(rest.split()[0])  # KiB
    return fields
t0 = time.perf_counter()
import mlc
out = {"import_mlc_s": time.perf_counter() - t0, "after_import_mlc": status()}
if sys.argv[1] == "load":
    t0 = time.perf_counter()
    graph = mlc.import_onnx(sys.argv[2])
    t1 = time.perf_counter()
    mlc.verify(graph)
    t2 = time.perf_counter()
    touched = [float(v.const.numpy()[0, 0]) for v in graph.initializers.values()]
    t3 = time.perf_counter()
    out.update(import_s=t1 - t0, verify_s=t2 - t1, touch_s=t3 - t2, touched=touched)
out["end"] = status()
out["maxrss_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps(out))
"""

# On Linux a process's ru_maxrss survives execve and starts at the high-water mark of the memory
# it was forked (or vforked) from: a child started directly by this benchmark would report at
# least this process's own peak (hundreds of MiB after the generated graphs). So the child is
# started by a small launcher (a bare Python that only imports subprocess): its ru_maxrss then
# starts at the launcher's ~10 MiB, below what `import mlc` alone takes.
LAUNCHER = "import subprocess, sys; sys.exit(subprocess.run(sys.argv[1:]).returncode)"

N_WEIGHTS = 16
CHUNK_BYTES = 4 * MIB


def build_external_model(folder: Path, total_bytes: int) -> tuple[Path, int, list[float]]:
    """model.onnx + weights.bin: N_WEIGHTS f32[d, d] MatMul weights, written chunk by chunk.

    Weight i holds `i + pattern`, so its [0, 0] value is `i`; returns the path, the size of one
    weight in bytes and the expected [0, 0] values.
    """
    per_weight = total_bytes // N_WEIGHTS
    dim = round((per_weight // 4) ** 0.5)
    if dim * dim * 4 != per_weight or per_weight % CHUNK_BYTES:
        raise ValueError(f"{total_bytes} bytes do not split into {N_WEIGHTS} square f32 weights")
    pattern = (np.arange(CHUNK_BYTES // 4, dtype=np.float32) % 1000) * np.float32(1e-3)
    model = onnx.ModelProto()
    model.ir_version = 8
    opset = model.opset_import.add()
    opset.domain, opset.version = "", 17
    graph = model.graph
    graph.name = "external_mlp"
    _declare(graph.input.add(), "x", [1, dim])
    prev = "x"
    expected = []
    with open(folder / "weights.bin", "wb") as data:
        for i in range(N_WEIGHTS):
            offset = data.tell()
            chunk = pattern + np.float32(i)  # only this 4 MiB chunk is ever held
            for _ in range(per_weight // CHUNK_BYTES):
                data.write(chunk.astype("<f4").tobytes())
            expected.append(float(chunk[0]))
            tensor = graph.initializer.add()
            tensor.name = f"fc{i}.weight"
            tensor.data_type = onnx.TensorProto.FLOAT
            tensor.dims.extend([dim, dim])
            tensor.data_location = onnx.TensorProto.EXTERNAL
            for key, value in (("location", "weights.bin"), ("offset", str(offset)), ("length", str(per_weight))):
                entry = tensor.external_data.add()
                entry.key, entry.value = key, value
            _add_node(graph, "MatMul", [prev, tensor.name], f"fc{i}", f"fc{i}/matmul")
            _add_node(graph, "Relu", [f"fc{i}"], f"relu{i}", f"fc{i}/relu")
            prev = f"relu{i}"
    _declare(graph.output.add(), prev, [1, dim])
    path = folder / "model.onnx"
    path.write_bytes(model.SerializeToString())
    return path, per_weight, expected


def _child(args: list[str]) -> dict:
    proc = subprocess.run([sys.executable, "-c", LAUNCHER, sys.executable, "-c", CHILD, *args],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"child {args} failed ({proc.returncode}):\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bench_external(total_bytes: int, runs: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="mlc-bench-weights-") as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        path, per_weight, expected = build_external_model(folder, total_bytes)
        build_s = time.perf_counter() - t0
        data_bytes = (folder / "weights.bin").stat().st_size
        baseline = [_child(["baseline"]) for _ in range(runs)]
        loads = [_child(["load", str(path)]) for _ in range(runs)]
    for load in loads:
        if load["touched"] != expected:
            raise SystemExit(f"external weights: read {load['touched']}, expected {expected}")
    def worst(children: list[dict], key: Callable[[dict], int]) -> int:
        return max(key(c) for c in children)

    base_peak = worst(baseline, lambda c: c["maxrss_kib"])
    load_peak = worst(loads, lambda c: c["maxrss_kib"])
    delta = load_peak - base_peak
    return {
        "weights": N_WEIGHTS,
        "weight_bytes": per_weight,
        "data_file_bytes": data_bytes,
        "build_s": build_s,
        "runs": runs,
        "baseline_peak_rss_kib": base_peak,
        "load_peak_rss_kib": load_peak,
        "delta_peak_rss_kib": delta,
        "delta_fraction_of_weights": delta * 1024 / data_bytes,
        "baseline_vmhwm_kib": worst(baseline, lambda c: c["end"]["VmHWM"]),
        "load_vmhwm_kib": worst(loads, lambda c: c["end"]["VmHWM"]),
        "baseline_end_anon_kib": worst(baseline, lambda c: c["end"]["RssAnon"]),
        "load_end_anon_kib": worst(loads, lambda c: c["end"]["RssAnon"]),
        "baseline_end_file_kib": worst(baseline, lambda c: c["end"]["RssFile"]),
        "load_end_file_kib": worst(loads, lambda c: c["end"]["RssFile"]),
        "median_import_s": statistics.median(x["import_s"] for x in loads),
        "median_verify_s": statistics.median(x["verify_s"] for x in loads),
        "median_touch_s": statistics.median(x["touch_s"] for x in loads),
        "median_import_mlc_s": statistics.median(b["import_mlc_s"] for b in baseline),
        "goal": "peak RSS - baseline < 1/4 of the weights; anonymous RSS at end - baseline < one weight",
        "ok_peak": delta * 1024 < data_bytes / 4,
        "ok_anon": (worst(loads, lambda c: c["end"]["RssAnon"])
                    - worst(baseline, lambda c: c["end"]["RssAnon"])) * 1024 < per_weight,
        "baseline_children": baseline,
        "load_children": loads,
    }


# ============================================================================ report


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:9.1f}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    line = "  ".join(h.rjust(w) if i else h.ljust(w) for i, (h, w) in enumerate(zip(header, widths, strict=True)))
    out = [line, "-" * len(line)]
    for r in rows:
        out.append("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))))
    return "\n".join(out)


def report(results: dict) -> str:
    parts = []
    env = results["environment"]
    parts.append(f"mlc {env['mlc']}  onnx {env['onnx']}  onnxruntime {env['onnxruntime']}  "
                 f"Python {env['python']}  {env['machine']} ({env['cpus']} CPUs)  mode: {env['mode']}")
    header = ["case", "runs", "import ms", "verify ms", "export ms", "total ms", "of it GC ms", "µs/node",
              "µs/node w/o GC", "goal", "ok"]

    def row(label: str, r: dict, nodes: int, goal: str = "", ok: str = "") -> list[str]:
        m = r["median_s"]
        return [label, str(r["runs"]), _ms(m["import"]), _ms(m["verify"]), _ms(m["export"]), _ms(m["total"]),
                _ms(m["gc"]), f"{m['total'] / nodes * 1e6:.1f}", f"{m['total_without_gc'] / nodes * 1e6:.1f}",
                goal, ok]

    if "densenet" in results:
        d = results["densenet"]
        parts.append("\n1. light_densenet121 (onnx wheel), import + verify + export, medians")
        parts.append(_table(header, [row(f"densenet121 ({d['nodes']:,} nodes)", d, d["nodes"],
                                         f"< {d['goal_s'] * 1e3:.0f} ms", "yes" if d["ok"] else "NO")]))
        parts.append(f"   total min {d['min_total_s'] * 1e3:.1f} ms, max {d['max_total_s'] * 1e3:.1f} ms")
    if "generated" in results:
        gen = results["generated"]
        parts.append("\n2. generated elementwise graphs, import + verify + export, medians")
        rows = []
        for e in gen:
            for key, label in (("with_infer", "infer_shapes=True"), ("without_infer", "infer_shapes=False")):
                r = e[key]
                goal = f"< {LARGE_GOAL_S:.0f} s" if e["nodes"] >= 100_000 and key == "with_infer" else ""
                ok = ("yes" if r["median_s"]["total"] < LARGE_GOAL_S else "NO") if goal else ""
                rows.append(row(f"{e['nodes']:>7,} nodes, {label}", r, e["nodes"], goal, ok))
        parts.append(_table(header, rows))
        parts.append("   parse = ModelProto.ParseFromString of the file; onnx infer_shapes = the call import_onnx "
                     "makes (medians; both are inside 'import' above)")
        rows = [[f"{e['nodes']:>7,} nodes", _ms(e["parse_s"]), _ms(e["onnx_infer_shapes_s"]),
                 f"{e['infer_share_of_import'] * 100:.0f} %",
                 f"{e['onnx_infer_shapes_s'] / e['with_infer']['median_s']['total'] * 100:.0f} %",
                 " ".join(str(c) for c in e["with_infer"]["gc_collections_per_generation"])]
                for e in gen]
        parts.append(_table(["graph", "parse ms", "onnx infer_shapes ms", "share of import", "share of total",
                             "GC runs gen0 gen1 gen2"], rows))
        flat = results["generated_flatness"]
        parts.append(f"   µs/node, largest / smallest graph: {flat['ratio_with_infer']:.2f} (infer_shapes=True), "
                     f"{flat['ratio_without_infer']:.2f} (infer_shapes=False); without the GC's share: "
                     f"{flat['ratio_with_infer_without_gc']:.2f}, {flat['ratio_without_infer_without_gc']:.2f}; "
                     f"flat (<= {FLAT_TOLERANCE}): {'yes' if flat['ok'] else 'NO'}")
    if "external" in results:
        x = results["external"]
        parts.append(f"\n3. external weights: {x['weights']} x {x['weight_bytes'] // MIB} MiB f32 in one "
                     f"weights.bin ({x['data_file_bytes'] / MIB:,.0f} MiB), fresh subprocess, {x['runs']} runs each")
        def mib(kib: int) -> str:
            return f"{kib / 1024:,.1f}"

        rows = [
            ["child: import mlc only", mib(x["baseline_peak_rss_kib"]), "", "", mib(x["baseline_vmhwm_kib"]),
             mib(x["baseline_end_anon_kib"]), mib(x["baseline_end_file_kib"])],
            ["child: + import_onnx, verify, read [0,0] of each weight", mib(x["load_peak_rss_kib"]),
             mib(x["delta_peak_rss_kib"]), f"{x['delta_fraction_of_weights'] * 100:.2f} %", mib(x["load_vmhwm_kib"]),
             mib(x["load_end_anon_kib"]), mib(x["load_end_file_kib"])],
        ]
        parts.append(_table(["process (worst of the runs)", "ru_maxrss MiB", "- baseline", "of weights",
                             "VmHWM MiB", "anon at end", "file at end"], rows))
        parts.append(f"   medians: import_onnx {x['median_import_s'] * 1e3:.1f} ms, "
                     f"verify {x['median_verify_s'] * 1e3:.2f} ms, touch {x['median_touch_s'] * 1e3:.2f} ms "
                     f"('import mlc' {x['median_import_mlc_s'] * 1e3:.0f} ms)")
        anon = (x["load_end_anon_kib"] - x["baseline_end_anon_kib"]) / 1024
        parts.append(f"   goals: peak RSS - baseline < 1/4 of the weights ({x['data_file_bytes'] / 4 / MIB:,.0f} MiB): "
                     f"{'yes' if x['ok_peak'] else 'NO'}; anonymous RSS at end - baseline ({anon:,.1f} MiB) "
                     f"< one weight ({x['weight_bytes'] / MIB:,.0f} MiB): {'yes' if x['ok_anon'] else 'NO'}")
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip the 100k-node graph, 256 MiB of weights")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write all results (with raw samples) here")
    parser.add_argument("--only", choices=["densenet", "generated", "external"], action="append",
                        help="run only these measurements (repeatable)")
    args = parser.parse_args(argv)
    only = set(args.only or ["densenet", "generated", "external"])

    results: dict = {"environment": {
        "mlc": mlc.__version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__,
        "numpy": np.__version__, "python": platform.python_version(), "machine": platform.machine(),
        "platform": platform.platform(), "cpus": os.cpu_count(), "mode": "quick" if args.quick else "full",
        "argv": sys.argv,
    }}
    if "densenet" in only:
        print("densenet121 ...", file=sys.stderr, flush=True)
        results["densenet"] = bench_densenet(15 if args.quick else 21)
    if "generated" in only:
        sizes = [10_000, 30_000] if args.quick else [10_000, 30_000, 100_000]
        runs = {10_000: 5 if args.quick else 7, 30_000: 3 if args.quick else 5, 100_000: 3}
        with tempfile.TemporaryDirectory(prefix="mlc-bench-graphs-") as tmp:
            gen = bench_generated(sizes, runs.__getitem__, Path(tmp))
        results["generated"] = gen
        flat = {}
        for mode in ("with_infer", "without_infer"):
            for suffix in ("", "_without_gc"):
                per_node = [e[mode]["us_per_node" + suffix] for e in gen]
                flat[f"ratio_{mode}{suffix}"] = per_node[-1] / per_node[0]
        flat["ok"] = max(flat["ratio_with_infer"], flat["ratio_without_infer"]) <= FLAT_TOLERANCE
        results["generated_flatness"] = flat
    if "external" in only:
        total = (256 if args.quick else 1024) * MIB
        print(f"external weights ({total // MIB} MiB) ...", file=sys.stderr, flush=True)
        results["external"] = bench_external(total, runs=3)
    print(report(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
        print(f"\nresults written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
