"""Share equal constants.

    c1 = const T;  c2 = const T (same dtype, shape and bytes)   ->   c2's readers read c1

Candidates are grouped by dtype and shape first (when the driver starts a graph), so only tensors
that could be equal are hashed; the first of equal constants stays.
Graph inputs with defaults are overridable and never merged, nor constants that are graph outputs.
"""

from __future__ import annotations

from mlc.ir.core import Graph, Value
from mlc.ir.tensor import Tensor
from mlc.pass_api import Numerics, register_pass
from mlc.rewrite import IRBuilder, RulePass, ValueMatch, ValueRule


class EqualConstant(ValueRule):
    name = "equal-constant"
    law = "c1 = const T; c2 = const T (same dtype, shape and bytes) -> c2's readers read c1"

    def start(self, graph: Graph) -> None:
        interface = {id(v) for v in graph.inputs} | {id(v) for v in graph.outputs}  # never merged
        shared = [(v, t) for v in graph.initializers.values()
                  if isinstance(t := v.const, Tensor) and id(v) not in interface]
        sizes: dict[tuple[object, ...], int] = {}
        for _, tensor in shared:
            sizes[tensor.dtype, tensor.shape] = sizes.get((tensor.dtype, tensor.shape), 0) + 1
        self.tensors = {id(v): t for v, t in shared if sizes[t.dtype, t.shape] > 1}  # only these can match
        self.offered = [v for v, _ in shared if id(v) in self.tensors]
        self.by_digest: dict[tuple[object, ...], Value] = {}

    def candidates(self, graph: Graph) -> list[Value]:
        return self.offered

    def match(self, value: Value) -> ValueMatch | None:
        tensor = self.tensors.get(id(value))
        if tensor is None:
            return None
        first = self.by_digest.setdefault((tensor.dtype, tensor.shape, tensor.digest()), value)
        if first is value or value.type != first.type or not isinstance(first.const, Tensor) \
                or not tensor.equals(first.const):
            return None
        return ValueMatch(value, facts={"first": first})

    def rewrite(self, match: ValueMatch, builder: IRBuilder) -> None:
        value = match.value
        assert isinstance(value.const, Tensor)
        value.replace_all_uses_with(match.facts["first"])
        builder.graph.remove_initializer(value)
        builder.ctx.stats["merged"] += 1
        builder.ctx.stats["bytes_saved"] += value.const.nbytes


@register_pass
class DedupeConstants(RulePass):
    name = "dedupe-constants"
    description = "Make equal constants one shared constant"
    numerics = Numerics.EXACT
    statistics = ("merged", "bytes_saved")

    def rule_set(self) -> tuple[EqualConstant]:
        return (EqualConstant(),)
