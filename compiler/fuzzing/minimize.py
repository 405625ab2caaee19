"""Shrink a failing case by delta debugging over its nodes, keeping it valid and failing.

A removed node's outputs are replaced, for the nodes that still read them, either by one of its
own inputs of the same dtype and shape (a bypass: the graph gets smaller upstream too) or by a
new graph input fed with exactly the value the original graph computed there (a cut: whatever
came before may then die). Dead nodes, constants and inputs go after every step (dead nodes stay when the failure needs
them: a pass may crash on dead code). First each graph
output alone is tried, then chunks of nodes in the ddmin manner (halves, quarters, ... single
nodes), restarting with coarser chunks after each success. A candidate counts only when it is
still a valid model onnxruntime runs (`generator.validate`) and `fails` still says yes.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable

import numpy as np
import onnx  # noqa: TID251 - the minimizer edits ONNX models
from onnx import helper  # noqa: TID251

from mlc.fuzzing.case import Case
from mlc.fuzzing.generator import reference_run, validate


class _Budget:
    def __init__(self, max_checks: int, seconds: float | None) -> None:
        self.left = max_checks
        self.until = None if seconds is None else time.monotonic() + seconds

    @property
    def spent(self) -> bool:
        return self.left <= 0 or (self.until is not None and time.monotonic() > self.until)


def minimize(case: Case, fails: Callable[[Case], bool], *, max_checks: int = 300, seconds: float | None = None,
             log: Callable[[str], None] | None = None) -> Case:
    """The smallest case found (by node count) for which `fails` still holds."""
    budget = _Budget(max_checks, seconds)

    def still_fails(candidate: Case) -> bool:
        if budget.spent or validate(candidate) is not None:
            return False
        budget.left -= 1
        return fails(candidate)

    current, clean = _clean(case), True
    if current.node_count < case.node_count and not still_fails(current):
        current, clean = case, False  # the failure needs dead code (a pass crashing on it): keep it
    outputs = [o.name for o in current.model.graph.output]
    if len(outputs) > 1:
        for name in outputs:
            candidate = _keep_outputs(current, [name], clean)
            if still_fails(candidate):
                current = candidate
                break
    chunks = 2
    while not budget.spent:
        nodes = len(current.model.graph.node)
        if nodes == 0:
            break
        chunks = min(chunks, nodes)
        values = _all_values(current)
        progressed = False
        for chunk in reversed(list(_split(nodes, chunks))):
            candidate = _remove(current, chunk, values, clean)
            if candidate is not None and candidate.node_count < current.node_count and still_fails(candidate):
                current = candidate
                chunks = max(chunks - 1, 2)
                progressed = True
                if log:
                    log(f"minimize: {current.node_count} nodes")
                break
        if not progressed:
            if chunks >= nodes:
                break
            chunks = min(nodes, chunks * 2)
    return current


def _split(count: int, parts: int) -> Iterable[list[int]]:
    bounds = np.linspace(0, count, parts + 1).round().astype(int)
    for lo, hi in itertools.pairwise(bounds):
        if hi > lo:
            yield list(range(int(lo), int(hi)))


def _all_values(case: Case) -> dict[str, np.ndarray]:
    """Every value of the main graph, as onnxruntime computes it on the case's feeds."""
    exposed = onnx.ModelProto()
    exposed.CopyFrom(case.model)
    have = {o.name for o in exposed.graph.output}
    for node in exposed.graph.node:
        for name in node.output:
            if name and name not in have:
                exposed.graph.output.append(onnx.ValueInfoProto(name=name))
                have.add(name)
    try:
        return {**case.feeds, **reference_run(Case(exposed, case.feeds))}
    except Exception:  # noqa: BLE001 - without values only bypasses of known types are possible
        return dict(case.feeds)


def value_shapes(case: Case) -> dict[str, tuple[int, ...]]:
    """The shape of every value of the main graph (feeds, initializers, node outputs)."""
    shapes = {name: tuple(int(d) for d in value.shape) for name, value in _all_values(case).items()}
    shapes.update({t.name: tuple(int(d) for d in t.dims) for t in case.model.graph.initializer})
    return shapes


def _remove(case: Case, indices: list[int], values: dict[str, np.ndarray], clean: bool = True) -> Case | None:
    model = onnx.ModelProto()
    model.CopyFrom(case.model)
    graph = model.graph
    feeds = dict(case.feeds)
    doomed = [graph.node[i] for i in indices]
    rename: dict[str, str] = {}
    promote: dict[str, str] = {}  # a graph output whose producer goes: one of the producer's inputs instead
    cut: dict[str, np.ndarray] = {}
    outputs = {o.name for o in graph.output}
    for node in doomed:
        for name in node.output:
            if not name:
                continue
            value = values.get(name)
            source = _bypass(node, value, values) if value is not None else None
            if source is not None:
                rename[name] = source
            elif value is not None and name not in outputs:
                cut[name] = value
            elif name in outputs:
                alternatives = [i for i in node.input if i and i in values and i not in outputs]
                if alternatives:
                    promote[name] = alternatives[0]
            else:
                return None
    keep = [n for i, n in enumerate(graph.node) if i not in set(indices)]
    del graph.node[:]
    graph.node.extend(keep)

    def resolve(name: str) -> str:
        seen = set()
        while name in rename and name not in seen:
            seen.add(name)
            name = rename[name]
        return name

    _rename_inputs(graph, resolve)
    survivors: list[onnx.ValueInfoProto] = []
    for out in graph.output:
        target = resolve(out.name)
        if target == out.name and out.name in promote:
            target = resolve(promote[out.name])
            if target in {o.name for o in survivors} or target in {o.name for o in graph.output}:
                continue
            survivors.append(_info(target, values[target]) if target in values else out)
            continue
        if target == out.name and any(out.name in n.output for n in doomed):
            continue  # the producer is gone and nothing replaces it: drop this output
        if target != out.name:
            if target in {o.name for o in survivors} or target in cut:
                continue
            out = helper.make_tensor_value_info(target, out.type.tensor_type.elem_type, None) \
                if target not in values else _info(target, values[target])
        survivors.append(out)
    if not survivors:
        return None
    del graph.output[:]
    graph.output.extend(survivors)
    used = _used_names(graph)
    for name, value in cut.items():
        if name in used:
            graph.input.append(_info(name, value))
            feeds[name] = value
    return _clean(Case(model, feeds, case.seed, list(case.features)), nodes=clean)


def _bypass(node: onnx.NodeProto, value: np.ndarray, values: dict[str, np.ndarray]) -> str | None:
    for name in node.input:
        other = values.get(name)
        if name and other is not None and other.dtype == value.dtype and other.shape == value.shape:
            return name
    return None


def _info(name: str, value: np.ndarray) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(value.dtype), list(value.shape))


def _rename_inputs(graph: onnx.GraphProto, resolve: Callable[[str], str]) -> None:
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name:
                node.input[i] = resolve(name)
        for attr in node.attribute:
            for sub in [attr.g] if attr.type == attr.GRAPH else list(attr.graphs):
                _rename_inputs(sub, resolve)


def _used_names(graph: onnx.GraphProto) -> set[str]:
    """Names read by the graph's nodes (sub-graphs included) and its outputs."""
    used = {o.name for o in graph.output}
    for node in graph.node:
        used.update(i for i in node.input if i)
        for attr in node.attribute:
            for sub in [attr.g] if attr.type == attr.GRAPH else list(attr.graphs):
                used |= _used_names(sub)
    return used


def _clean(case: Case, nodes: bool = True) -> Case:
    """Without dead nodes (unless not `nodes`), unread initializers and unread inputs (their feeds
    dropped too)."""
    model = onnx.ModelProto()
    model.CopyFrom(case.model)
    graph = model.graph
    while nodes:
        used = _used_names(graph)
        alive = [n for n in graph.node if any(o in used for o in n.output if o)]
        if len(alive) == len(graph.node):
            break
        del graph.node[:]
        graph.node.extend(alive)
    used = _used_names(graph)
    inits = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(inits)
    inputs = [i for i in graph.input if i.name in used]
    del graph.input[:]
    graph.input.extend(inputs)
    names = {i.name for i in inputs}
    feeds = {k: v for k, v in case.feeds.items() if k in names}
    return Case(model, feeds, case.seed, list(case.features))


def _keep_outputs(case: Case, names: list[str], clean: bool = True) -> Case:
    model = onnx.ModelProto()
    model.CopyFrom(case.model)
    kept = [o for o in model.graph.output if o.name in names]
    del model.graph.output[:]
    model.graph.output.extend(kept)
    return _clean(Case(model, dict(case.feeds), case.seed, list(case.features)), nodes=clean)
