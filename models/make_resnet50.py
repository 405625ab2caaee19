"""Build a ResNet-50 with real (seeded random) weights from the onnx wheel's `light_resnet50`.

The light model makes every weight with `ConstantOfShape` of one value (0.02), so every channel
computes the same thing and numeric checks on it prove little. This script keeps the graph and
replaces each such weight, and each BatchNormalization parameter, by a seeded initializer of the
same shape: He-scaled convolution and Gemm weights, BatchNorm scale near 1, small biases and
means, variances in [0.5, 1.5], so activations stay O(1) through all 50 layers.

The model (~100 MB) is generated at test time into a cache folder, never committed:
`python models/make_resnet50.py --out DIR/resnet50.onnx` or `build(path)` from Python.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

LIGHT = Path(onnx.__file__).resolve().parent / "backend" / "test" / "data" / "light" / "light_resnet50.onnx"
IR_VERSION = 8


def _weights_for(name: str, shape: tuple[int, ...], rng: np.random.Generator, consumer: str, slot: int) -> np.ndarray:
    if consumer == "Conv" and slot == 1:
        fan_in = int(np.prod(shape[1:]))
        return rng.normal(0.0, np.sqrt(2.0 / fan_in), shape).astype(np.float32)
    if consumer == "Gemm" and slot == 1:
        return rng.normal(0.0, np.sqrt(1.0 / shape[-1]), shape).astype(np.float32)
    if consumer == "BatchNormalization":
        if slot == 1:  # scale; small on the last BN of each residual branch so the sums stay O(1)
            low, high = (0.1, 0.3) if "branch2c" in name else (0.8, 1.2)
            return rng.uniform(low, high, shape).astype(np.float32)
        if slot == 4:  # variance
            return rng.uniform(0.5, 1.5, shape).astype(np.float32)
        return rng.normal(0.0, 0.1, shape).astype(np.float32)  # bias, mean
    return rng.normal(0.0, 0.05, shape).astype(np.float32)  # biases


def build(out: Path, seed: int = 0) -> Path:
    model = onnx.load(str(LIGHT))
    graph = model.graph
    consumers: dict[str, tuple[str, int]] = {}
    for node in graph.node:
        for slot, name in enumerate(node.input):
            consumers.setdefault(name, (node.op_type, slot))
    shapes = {t.name: tuple(numpy_helper.to_array(t)) for t in graph.initializer if t.name.endswith("__SHAPE")}
    rng = np.random.default_rng(seed)
    new_inits: list[onnx.TensorProto] = []
    kept_nodes = []
    for node in graph.node:
        if node.op_type == "ConstantOfShape" and node.input[0] in shapes:
            name = node.output[0]
            shape = tuple(int(d) for d in shapes[node.input[0]])
            op, slot = consumers.get(name, ("", 0))
            new_inits.append(numpy_helper.from_array(_weights_for(name, shape, rng, op, slot), name))
        else:
            kept_nodes.append(node)
    for init in graph.initializer:
        if init.name.endswith("__SHAPE"):
            continue
        if init.data_type != onnx.TensorProto.FLOAT:  # e.g. Reshape's target shape
            new_inits.append(init)
            continue
        op, slot = consumers.get(init.name, ("", 0))
        shape = tuple(init.dims)
        new_inits.append(numpy_helper.from_array(_weights_for(init.name, shape, rng, op, slot), init.name))
    init_names = {t.name for t in new_inits}
    del graph.node[:]
    graph.node.extend(kept_nodes)
    del graph.initializer[:]
    graph.initializer.extend(new_inits)
    real_inputs = [i for i in graph.input if i.name not in init_names and not i.name.endswith("__SHAPE")]
    del graph.input[:]
    graph.input.extend(real_inputs)
    model.ir_version = IR_VERSION
    model.producer_name = "mlc-models/make_resnet50.py"
    onnx.checker.check_model(model)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(model.SerializeToString())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    path = build(args.out, args.seed)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
