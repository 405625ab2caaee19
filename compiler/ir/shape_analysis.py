"""`ShapeAnalysis`: symbolic shapes and shape values of a graph's values, by per-op rules.

It walks the graph in order and gives every tensor value

* its shape: a tuple of `Expr | None` (None: unknown), derived from the shapes and shape values
  of the node's inputs by the op's shape rule, and otherwise (ops without a rule) read from the
  value's declared type (`mlc.ir.declared_dims`, which also reconciles the two);
* for small integer and boolean tensors (shape computations: Shape, Gather, Concat, Slice, ...),
  its values: a flat tuple of `Expr | None`.

The engine knows no op: a subclass supplies `rules`, op type -> `ShapeRule` (the standard ops'
table is `mlc.passes._symbolic.ShapeInfo`'s). A rule answers (shapes, values) per output, or None;
a rule that fails on a malformed node leaves the declared types standing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from mlc.ir.core import STANDARD_DOMAINS, Graph, Node, Value
from mlc.ir.declared_dims import DeclaredDims, tensor_dtype
from mlc.ir.symbolic_dims import Expr
from mlc.ir.symbolic_shapes import INT_DTYPES, MAX_ELEMENTS, Elems, Shape, product
from mlc.ir.tensor import Tensor, TensorDataUnavailable

ShapeResult = tuple[list[Shape | None], list[Elems | None]] | None
ShapeRule = Callable[["ShapeAnalysis", Node], ShapeResult]


class ShapeAnalysis(DeclaredDims):
    """Symbolic shapes and shape values of a graph's values (see the module docstring)."""

    rules: Mapping[str, ShapeRule] = {}

    def __init__(self, graph: Graph) -> None:
        super().__init__(graph)
        self.graph = graph
        self._shapes: dict[Value, Shape | None] = {}
        self._elems: dict[Value, Elems | None] = {}
        for node in graph:
            self._infer(node)

    # ---------------------------------------------------------------- queries
    def shape(self, value: Value | None) -> Shape | None:
        if value is None:
            return None
        if value not in self._shapes:
            self._shapes[value] = self.declared_shape(value)
        return self._shapes[value]

    def rank(self, value: Value | None) -> int | None:
        shape = self.shape(value)
        return None if shape is None else len(shape)

    def elems(self, value: Value | None) -> Elems | None:
        if value is None:
            return None
        if value not in self._elems:
            self._elems[value] = _const_elems(value)
        return self._elems[value]

    def ints(self, value: Value | None) -> list[int] | None:
        """The values when every one is known and constant."""
        elems = self.elems(value)
        if elems is None or any(e is None or not e.is_const for e in elems):
            return None
        return [e.value for e in elems]  # type: ignore[union-attr]

    # ---------------------------------------------------------------- inference
    def _derive(self, node: Node) -> ShapeResult:
        rule = self.rules.get(node.op_type) if node.domain in STANDARD_DOMAINS else None
        if rule is None:
            return None
        try:
            return rule(self, node)
        except (IndexError, ValueError, TypeError, ZeroDivisionError, OverflowError):
            return None  # a malformed node: its declared types stand

    def _infer(self, node: Node) -> None:
        outputs = node.outputs
        derived: list[Shape | None] = [None] * len(outputs)
        elems: list[Elems | None] = [None] * len(outputs)
        result = self._derive(node)
        if result is not None:
            shapes, values = result
            derived[:len(shapes)] = shapes
            elems[:len(values)] = values
        for i, out in enumerate(outputs):
            if out is None:
                continue
            shape = self._shapes[out] = self.reconciled_shape(out, derived[i])
            self._elems[out] = _fitting_elems(elems[i], out, shape)


def _fitting_elems(vals: Elems | None, out: Value, shape: Shape | None) -> Elems | None:
    """Derived values, kept for a small integer tensor whose element count they match."""
    if vals is not None and (len(vals) > MAX_ELEMENTS or tensor_dtype(out) not in INT_DTYPES):
        return None
    if vals is not None and shape is not None:
        count = product(shape)
        if count is None or not count.is_const or count.value != len(vals):
            return None
    return vals


def _const_elems(value: Value) -> Elems | None:
    tensor = value.const if value.is_constant else None
    if not isinstance(tensor, Tensor) or tensor.dtype not in INT_DTYPES or tensor.size > MAX_ELEMENTS:
        return None
    try:
        array = tensor.numpy()
    except TensorDataUnavailable:
        return None
    return tuple(Expr.const(int(v)) for v in array.reshape(-1))


def first_sources(info: ShapeAnalysis, candidates: Iterable[Value]) -> dict[Expr, tuple[Value, int]]:
    """Where each symbolic dim can be read: (tensor, axis) of the first candidate that has it."""
    found: dict[Expr, tuple[Value, int]] = {}
    for value in candidates:
        shape = info.shape(value)
        for axis, d in enumerate(shape or ()):
            if d is not None and not d.is_const and d not in found:
                found[d] = (value, axis)
    return found


__all__ = ["STANDARD_DOMAINS", "ShapeAnalysis", "ShapeResult", "ShapeRule", "first_sources"]
