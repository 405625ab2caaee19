"""Random valid ONNX graphs from a seed: `generate(seed)` and the validity proof `validate(case)`.

A seed fixes everything (numpy's `default_rng(seed)` drives every choice): the opset (13 to 20),
the float type (mostly float32, some float64 and float16), whether the batch and sequence dims
are symbolic (and their sizes in the feeds), then a sequence of actions drawn by weight from the
action tables (`ops_elementwise`, `ops_shape`, `ops_nn`, `patterns`, `control`). An action that
does not fit the graph so far raises `Skip` and is rolled back. The graph's outputs are the
values nothing reads (a few of them: the rest is dead code for `dce`), sometimes an intermediate
value that is also read, sometimes a graph input passed straight through.

`validate` runs onnx's checker with strict shape inference and plain onnxruntime (graph
optimizations off) on the case's feeds; the outputs must be finite and have the shapes the
generator computed. A case that fails is not used (the fuzzer counts it as skipped).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import onnx  # noqa: TID251 - the generator writes ONNX models
from onnx import helper  # noqa: TID251

from mlc.fuzzing import control, ops_elementwise, ops_nn, ops_shape, patterns
from mlc.fuzzing.builder import Builder, Skip, Tensor
from mlc.fuzzing.case import Case
from mlc.fuzzing.known_bugs import hits
from mlc.fuzzing.operands import new_float_input

ActionTable = dict[str, tuple[float, Callable[[Builder], None]]]
ACTIONS: ActionTable = {**ops_elementwise.ACTIONS, **ops_shape.ACTIONS, **ops_nn.ACTIONS, **patterns.ACTIONS,
                        **control.ACTIONS}
OPSETS = (13, 15, 17, 18, 20)
_OPSET_P = (0.1, 0.1, 0.4, 0.25, 0.15)


@dataclass(frozen=True)
class GeneratorConfig:
    """Knobs of the generator. `weights` overrides action weights by name (0 disables one);
    `avoid` names known-bug shapes the generator then stays away from (`known_bugs.KNOWN_BUGS`), so that a
    campaign finds the next bug instead of the same one again."""

    min_actions: int = 2
    max_actions: int = 12
    weights: dict[str, float] = field(default_factory=dict)
    avoid: frozenset[str] = frozenset()


def generate(seed: int, config: GeneratorConfig | None = None) -> Case:
    """The case of `seed`: same seed, same model bytes and feeds. With `config.avoid`, a case that
    would hit an avoided known bug is drawn again from `default_rng([seed, attempt])` (the same
    case as without `avoid` when it hits none)."""
    config = config or GeneratorConfig()
    case = _generate(np.random.default_rng(seed), seed, config)
    for attempt in range(1, 20):
        if not config.avoid or validate(case) is not None or hits(case, config.avoid) is None:
            break
        case = _generate(np.random.default_rng([seed, attempt]), seed, config)
    return case


def _generate(rng: np.random.Generator, seed: int, config: GeneratorConfig) -> Case:
    opset = int(rng.choice(OPSETS, p=_OPSET_P))
    roll = rng.random()
    float_type = np.dtype(np.float32 if roll < 0.8 else np.float64 if roll < 0.92 else np.float16)
    b = Builder(rng, opset, float_type)
    if rng.random() < 0.5:
        b.symbols["N"] = int(rng.choice([1, 2, 3]))
        if rng.random() < 0.4:
            b.symbols["S"] = int(rng.choice([2, 3, 4]))
    for _ in range(int(rng.integers(1, 3))):
        new_float_input(b)
    table = {name: (config.weights.get(name, weight), fn) for name, (weight, fn) in ACTIONS.items()}
    names = [n for n, (w, _) in table.items() if w > 0]
    probs = np.asarray([table[n][0] for n in names], dtype=np.float64)
    probs /= probs.sum()
    wanted = int(rng.integers(config.min_actions, config.max_actions + 1))
    done = attempts = 0
    while done < wanted and attempts < wanted * 5:
        attempts += 1
        name = str(rng.choice(names, p=probs))
        snap = b.snapshot()
        try:
            table[name][1](b)
            done += 1
        except Skip:
            b.rollback(snap)
    return _finish(b, seed)


def _finish(b: Builder, seed: int) -> Case:
    produced = {o for n in b.nodes for o in n.output}
    candidates = [t for t in b.pool if t.name in produced]
    if not candidates:
        x = b.inputs[0]
        candidates = b.node("Identity", [x], [b.like(x)])
    sinks = [t for t in candidates if not b.uses.get(t.name)] or [candidates[-1]]
    order = [int(i) for i in b.rng.permutation(len(sinks))]
    outputs = [sinks[i] for i in order[: int(b.rng.integers(1, 5))]]
    read = [t for t in candidates if b.uses.get(t.name) and t not in outputs]
    if read and b.chance(0.15):
        b.feature("read-output")
        outputs.append(b.pick(read))
    if b.chance(0.03):
        b.feature("input-as-output")
        outputs.append(b.inputs[0])
    opset_imports = [helper.make_opsetid("", b.opset)]
    inputs = [_input_info(t) for t in b.inputs]
    initializers = list(b.initializers)
    if b.chance(0.05) and initializers:
        default = initializers[int(b.rng.integers(len(initializers)))]
        if default.dims and default.name not in {i.name for i in inputs}:
            b.feature("overridable-default")
            inputs.append(helper.make_tensor_value_info(default.name, default.data_type, list(default.dims)))
    graph = helper.make_graph(b.nodes, f"fuzz_{seed}", inputs,
                              [_output_info(t) for t in outputs], initializers)
    ir = max(8, helper.find_min_ir_version_for(opset_imports))
    model = helper.make_model(graph, opset_imports=opset_imports, ir_version=ir, producer_name="mlc-fuzz")
    model = _typed_outputs(model)
    expected = {t.name: tuple(int(s) for s in t.shape) for t in outputs}
    return Case(model, dict(b.feeds), seed, list(b.features), expected)


def _input_info(t: Tensor) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(t.name, helper.np_dtype_to_tensor_dtype(t.dtype), list(t.dims))


def _output_info(t: Tensor) -> onnx.ValueInfoProto:
    """The generator's own account of an output's type (derived dims unnamed); onnx's shape
    inference refines it."""
    dims = [d if isinstance(d, int) or d in ("N", "S") else None for d in t.dims]
    return helper.make_tensor_value_info(t.name, helper.np_dtype_to_tensor_dtype(t.dtype), dims)


def _typed_outputs(model: onnx.ModelProto) -> onnx.ModelProto:
    """Graph outputs typed as onnx's shape inference types them (as exporters write them); no
    intermediate value_info is kept."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    except Exception:  # noqa: BLE001 - validate() reports the model's fault; keep the untyped outputs
        return model
    types = {o.name: o for o in inferred.graph.output}
    for out in model.graph.output:
        if out.name in types and types[out.name].type.tensor_type.HasField("shape"):
            out.CopyFrom(types[out.name])
    return model


def validate(case: Case) -> str | None:
    """None when the case is a valid model onnxruntime runs on its feeds with finite outputs of
    the shapes the generator computed; else why not (one line)."""
    try:
        onnx.checker.check_model(case.model, full_check=True)
    except Exception as error:  # noqa: BLE001 - any checker failure means: not a valid case
        return f"onnx checker: {_line(error)}"
    try:
        outputs = reference_run(case)
    except Exception as error:  # noqa: BLE001 - onnxruntime cannot run it
        return f"onnxruntime: {_line(error)}"
    for name, value in outputs.items():
        if value.dtype.kind == "f" and not np.all(np.isfinite(value)):
            return f"non-finite reference output {name}"
        want = case.expected_shapes.get(name)
        if want is not None and tuple(value.shape) != want:
            return f"generator shape error: {name} is {tuple(value.shape)}, expected {want}"
    return None


def reference_run(case: Case, optimized: bool = False) -> dict[str, np.ndarray]:
    """Plain onnxruntime (graph optimizations off unless `optimized`), one thread: name -> array."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimized
                                        else ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 4
    session = ort.InferenceSession(case.model_bytes(), options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, case.feeds), strict=True))


def _line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"[:300]
