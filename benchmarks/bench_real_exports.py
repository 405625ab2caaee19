"""Graph reduction on real PyTorch exports against onnxsim and onnxslim (run by hand).

    pip install -e '.[bench]'                         # onnxsim 0.8.1, onnxslim 0.1.98; needs torch, transformers
    python benchmarks/bench_real_exports.py           # table of main-graph node counts + timing on the largest
    python benchmarks/bench_real_exports.py --models vit-ts,gpt2-dynamo --runs 3 --json out.json

Models (small configs, seeded weights, no downloads), each exported twice: by the TorchScript
exporter (`dynamo=False`, `dynamic_axes`) and by the dynamo exporter (`dynamo=True`,
`dynamic_shapes` with `torch.export.Dim`), opset 17 (the dynamo exporter's down-conversion from 18
leaves an invalid Split in GPT-2: it stays at opset 18), batch and sequence dynamic (but for the
dynamo RNN exports, whose sequence length torch.export specializes: only their batch is dynamic):

    vit     transformers ViTForImageClassification (32x32 images, patch 8, 2 layers): dynamic batch
    gpt2    transformers GPT2LMHeadModel (2 layers), input_ids [batch, sequence] (an all-ones mask made inside)
    bert    transformers BertModel (2 layers) with input_ids and attention_mask [batch, sequence]
    lstm    Embedding -> two stacked nn.LSTM (the second bidirectional) -> Linear on the last step
    bilstm  Embedding -> nn.LSTM (2 layers, bidirectional) -> Linear on the last step
    gru     Embedding -> nn.GRU (2 layers) -> Linear on the last step

The exports are cached in ~/.cache/mlc-simplify/ (delete it to rebuild). Per model the table gives
the main graph's node count of the original, of `onnxsim.simplify(model)` (called as users call it,
with no `overwrite_input_shapes`: the dims stay dynamic), of `onnxslim.slim(model)` and of
`mlc.optimize(model, out, level=2)` (-O2, numbers checked at the end). Then the time of each
tool on the largest model (median of interleaved runs, file in, model out): onnxsim, onnxslim,
mlc -O2 without the numeric check, and `mlc.optimize` with it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import onnx

CACHE = Path(os.environ.get("MLC_SIMPLIFY_CACHE", Path.home() / ".cache" / "mlc-simplify"))
OPSET = 17
FAMILIES = ["vit", "gpt2", "bert", "lstm", "bilstm", "gru"]
EXPORTERS = ["ts", "dynamo"]


# ===================================================================== the models
def _vit():  # type: ignore[no-untyped-def]
    import torch
    from transformers import ViTConfig, ViTForImageClassification

    config = ViTConfig(image_size=32, patch_size=8, num_channels=3, hidden_size=64, num_hidden_layers=2,
                       num_attention_heads=4, intermediate_size=128, num_labels=10, attn_implementation="eager")
    inner = ViTForImageClassification(config).eval()

    class Wrapper(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, pixel_values):  # type: ignore[no-untyped-def]
            return self.inner(pixel_values=pixel_values, return_dict=False)[0]

    args = (torch.randn(2, 3, 32, 32),)
    return Wrapper(), args, ["pixel_values"], ["logits"], {"pixel_values": {0: "batch"}}, {"logits": {0: "batch"}}


def _gpt2():  # type: ignore[no-untyped-def]
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(vocab_size=100, n_positions=64, n_embd=64, n_layer=2, n_head=4, attn_implementation="eager")
    inner = GPT2LMHeadModel(config).eval()

    class Wrapper(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids):  # type: ignore[no-untyped-def]
            # An explicit all-ones mask: without one, transformers 5 looks for packed sequences in the
            # position ids with torch.diff, which the TorchScript exporter cannot export.
            mask = torch.ones_like(input_ids)
            return self.inner(input_ids=input_ids, attention_mask=mask, use_cache=False, return_dict=False)[0]

    args = (torch.randint(0, 100, (2, 8)),)
    return (Wrapper(), args, ["input_ids"], ["logits"], {"input_ids": {0: "batch", 1: "sequence"}},
            {"logits": {0: "batch", 1: "sequence"}})


def _bert():  # type: ignore[no-untyped-def]
    import torch
    from transformers import BertConfig, BertModel

    config = BertConfig(vocab_size=100, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=128, max_position_embeddings=64, attn_implementation="eager")
    inner = BertModel(config).eval()

    class Wrapper(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask):  # type: ignore[no-untyped-def]
            out = self.inner(input_ids=input_ids, attention_mask=attention_mask, use_cache=False, return_dict=False)
            return out[0], out[1]

    args = (torch.randint(0, 100, (2, 8)), torch.ones(2, 8, dtype=torch.int64))
    axes = {0: "batch", 1: "sequence"}
    return (Wrapper(), args, ["input_ids", "attention_mask"], ["last_hidden_state", "pooler_output"],
            {"input_ids": axes, "attention_mask": axes}, {"last_hidden_state": axes, "pooler_output": {0: "batch"}})


def _rnn(kind: str):  # type: ignore[no-untyped-def]
    import torch

    class Classifier(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = torch.nn.Embedding(100, 32)
            self.rnn2: torch.nn.Module | None = None
            if kind == "lstm":
                self.rnn1: torch.nn.Module = torch.nn.LSTM(32, 48, batch_first=True)
                self.rnn2 = torch.nn.LSTM(48, 32, batch_first=True, bidirectional=True)
            elif kind == "bilstm":
                self.rnn1 = torch.nn.LSTM(32, 48, num_layers=2, batch_first=True, bidirectional=True)
            else:
                self.rnn1 = torch.nn.GRU(32, 48, num_layers=2, batch_first=True)
            self.head = torch.nn.Linear({"lstm": 64, "bilstm": 96, "gru": 48}[kind], 5)

        def forward(self, tokens):  # type: ignore[no-untyped-def]
            x, _ = self.rnn1(self.embed(tokens))
            if self.rnn2 is not None:
                x, _ = self.rnn2(x)
            return self.head(x[:, -1])

    args = (torch.randint(0, 100, (2, 7)),)
    return Classifier().eval(), args, ["tokens"], ["scores"], {"tokens": {0: "batch", 1: "sequence"}}, \
        {"scores": {0: "batch"}}


BUILDERS: dict[str, Callable] = {"vit": _vit, "gpt2": _gpt2, "bert": _bert, "lstm": lambda: _rnn("lstm"),
                                 "bilstm": lambda: _rnn("bilstm"), "gru": lambda: _rnn("gru")}


def export(family: str, exporter: str, path: Path) -> None:
    """Export `family` with `exporter` ("ts" or "dynamo") to `path` (seeded weights)."""
    import torch

    torch.manual_seed(0)
    model, args, inputs, outputs, axes, out_axes = BUILDERS[family]()
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        if exporter == "ts":
            torch.onnx.export(model, args, str(path), input_names=inputs, output_names=outputs,
                              dynamic_axes={**axes, **out_axes}, opset_version=OPSET, dynamo=False)
        else:
            if family in ("lstm", "bilstm", "gru"):
                # torch.export specializes an RNN's sequence length (aten.lstm/gru trace a loop over
                # it): with it marked dynamic, torch.onnx falls back to a draft export that silently
                # bakes 7 in. Only the batch stays dynamic there.
                axes = {name: {k: v for k, v in a.items() if v != "sequence"} for name, a in axes.items()}
            dims = {name: torch.export.Dim(name, min=1, max=1024) for a in axes.values() for name in a.values()}
            shapes = {name: {axis: dims[sym] for axis, sym in axes[name].items()} for name in inputs}
            for opset in (OPSET, OPSET + 1):
                program = torch.onnx.export(model, args, input_names=inputs, output_names=outputs,
                                            dynamic_shapes=shapes, opset_version=opset, dynamo=True,
                                            external_data=False, verbose=False)
                program.save(str(path))
                try:
                    onnx.checker.check_model(str(path))
                    break
                except onnx.checker.ValidationError:
                    # The dynamo exporter writes opset 18 and converts down with onnx's C API, which
                    # leaves Split's opset-18 `num_outputs` behind (GPT-2): keep opset 18 then.
                    print(f"  {family}-dynamo: opset {opset} conversion is invalid, exporting at {opset + 1}",
                          file=sys.stderr)
    onnx.checker.check_model(str(path))


def model_path(name: str) -> Path:
    family, exporter = name.rsplit("-", 1)
    path = CACHE / f"{family}-{exporter}.onnx"
    if not path.exists():
        print(f"  exporting {name} ...", file=sys.stderr)
        partial = path.with_suffix(".partial.onnx")
        export(family, exporter, partial)
        partial.replace(path)  # only a checked export is cached
    return path


# ===================================================================== the tools
def count_nodes(model: onnx.ModelProto) -> int:
    return len(model.graph.node)


def histogram(model: onnx.ModelProto) -> Counter[str]:
    return Counter(n.op_type for n in model.graph.node)


def run_onnxsim(path: Path) -> onnx.ModelProto:
    import onnxsim

    model, ok = onnxsim.simplify(onnx.load(str(path)))
    if not ok:
        raise RuntimeError("onnxsim's own check failed")
    return model


def run_onnxslim(path: Path) -> onnx.ModelProto:
    import onnxslim

    return onnxslim.slim(onnx.load(str(path)))


def run_mlc_unchecked(path: Path) -> onnx.ModelProto:
    from mlc.onnx_io.exporter import export_onnx
    from mlc.onnx_io.importer import import_onnx
    from mlc.pass_manager import PassManager
    from mlc.pipelines import build_pipeline

    graph = import_onnx(path)
    PassManager(build_pipeline("O2")).run(graph)
    return export_onnx(graph)


def run_mlc(path: Path) -> onnx.ModelProto:
    import mlc

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.onnx"
        mlc.optimize(path, out, level=2)
        return onnx.load(str(out))


TOOLS: dict[str, Callable[[Path], onnx.ModelProto]] = {"onnxsim": run_onnxsim, "onnxslim": run_onnxslim,
                                                       "mlc -O2": run_mlc}


def attempt(fn: Callable[[], onnx.ModelProto]) -> onnx.ModelProto | str:
    try:
        return fn()
    except Exception as error:  # noqa: BLE001 - a tool failing on a model is a result
        return f"error: {str(error).splitlines()[0][:60] if str(error) else type(error).__name__}"


def reduction_table(names: list[str], show_histograms: bool) -> list[dict[str, object]]:
    rows = []
    for name in names:
        path = model_path(name)
        original = onnx.load(str(path))
        row: dict[str, object] = {"model": name, "original": count_nodes(original)}
        models: dict[str, onnx.ModelProto] = {"original": original}
        for tool, fn in TOOLS.items():
            result = attempt(lambda f=fn, p=path: f(p))  # type: ignore[misc]
            row[tool] = count_nodes(result) if isinstance(result, onnx.ModelProto) else result
            if isinstance(result, onnx.ModelProto):
                models[tool] = result
        peers = [v for k, v in row.items() if k in ("onnxsim", "onnxslim") and isinstance(v, int)]
        mine = row["mlc -O2"]
        row["mlc vs best peer"] = f"{mine / min(peers):.2f}" if peers and isinstance(mine, int) else "-"
        rows.append(row)
        print(f"  {name}: {row}", file=sys.stderr)
        if show_histograms:
            ops = sorted(set().union(*(histogram(m) for m in models.values())))
            print(f"    {'op':24}" + "".join(f"{k:>10}" for k in models), file=sys.stderr)
            for op in ops:
                counts = [histogram(m)[op] for m in models.values()]
                if len(set(counts[1:])) > 1:
                    print(f"    {op:24}" + "".join(f"{c:>10}" for c in counts), file=sys.stderr)
    return rows


def timing(path: Path, runs: int) -> dict[str, dict[str, float]]:
    tools: dict[str, Callable[[], onnx.ModelProto]] = {
        "onnxsim": lambda: run_onnxsim(path),
        "onnxslim": lambda: run_onnxslim(path),
        "mlc -O2": lambda: run_mlc_unchecked(path),
        "mlc.optimize -O2 (checked)": lambda: run_mlc(path),
    }
    samples: dict[str, list[float]] = {k: [] for k in tools}
    for fn in tools.values():
        fn()  # warm-up (imports, caches)
    for _ in range(runs):
        for key, fn in tools.items():  # interleaved: machine noise hits every tool alike
            start = time.perf_counter()
            fn()
            samples[key].append(time.perf_counter() - start)
    return {k: {"median_s": statistics.median(v), "runs": len(v)} for k, v in samples.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", help="comma-separated FAMILY-EXPORTER names (default: all "
                        f"{len(FAMILIES) * len(EXPORTERS)}: {', '.join(FAMILIES)} x {', '.join(EXPORTERS)})")
    parser.add_argument("--runs", type=int, default=5, help="timing runs per tool (default 5; 0 skips timing)")
    parser.add_argument("--histograms", action="store_true", help="per model, the op counts where the tools differ")
    parser.add_argument("--json", metavar="FILE", help="also write the raw figures as JSON")
    args = parser.parse_args(argv)
    names = args.models.split(",") if args.models else [f"{f}-{e}" for f in FAMILIES for e in EXPORTERS]
    rows = reduction_table(names, args.histograms)
    columns = list(rows[0])
    print("| " + " | ".join(columns) + " |")
    print("|" + "|".join("---" if c == "model" else "--:" for c in columns) + "|")
    for row in rows:
        print("| " + " | ".join(str(row[c]) for c in columns) + " |")
    times: dict[str, dict[str, float]] = {}
    if args.runs > 0:
        largest = max(rows, key=lambda r: r["original"])  # type: ignore[arg-type, return-value]
        times = timing(model_path(str(largest["model"])), args.runs)
        base = times["onnxsim"]["median_s"]
        print(f"\n| {largest['model']} ({largest['original']} nodes) | median s | vs onnxsim |\n|---|--:|--:|")
        for key, value in times.items():
            print(f"| {key} | {value['median_s']:.3f} | {base / value['median_s']:.2f}x |")
    if args.json:
        Path(args.json).write_text(json.dumps({"nodes": rows, "timing": times}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
