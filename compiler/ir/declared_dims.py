"""Declared dims read as symbolic `Expr`s, and derived dims reconciled with them.

A type spells a dim as an int, a name (`batch`, onnx's made-up `unk__N`) or None. Read as an
`Expr`, an int is a constant, a name is an atom and None a fresh atom (`?N`) equal only to itself.
Where a shape rule derives a dim the declared type calls by another name (onnx makes up a fresh
`unk__N` for every Reshape output), that name becomes an alias of the derived expression, so that
later types that use it agree; names of the graph inputs' dims are never aliased, nor names
already read as atoms. A declared static dim wins over a contradicting rule (the model says so;
the numeric checks judge it). `mlc.ir.shape_analysis` builds on this.
"""

from __future__ import annotations

from mlc.ir.core import Graph, Value
from mlc.ir.dtypes import DType
from mlc.ir.symbolic_dims import Expr
from mlc.ir.symbolic_shapes import Shape
from mlc.ir.types import Dim, TensorType


def declared_dims(value: Value | None) -> tuple[Dim, ...] | None:
    if value is None or not isinstance(value.type, TensorType):
        return None
    return value.type.shape


def tensor_dtype(value: Value | None) -> DType | None:
    if value is None or not isinstance(value.type, TensorType):
        return None
    return value.type.dtype


class DeclaredDims:
    """The symbolic reading of a graph's declared dims, with the aliases derived dims give names."""

    def __init__(self, graph: Graph) -> None:
        self.alias: dict[str, Expr] = {}
        self._used: set[str] = set()  # declared names read as atoms (no longer free to alias)
        self._fresh = 0
        self.protected: set[str] = set()  # names of graph-input dims: never aliased
        for g in graph.root.all_graphs():
            for value in g.inputs:
                for d in declared_dims(value) or ():
                    if isinstance(d, str):
                        self.protected.add(d)

    def to_dim(self, e: Expr | None) -> Dim:
        """How a type spells a dim: an int, a declared name, an expression over names, or None."""
        if e is None:
            return None
        if e.is_const:
            return e.value
        if any(a.startswith("?") for a in e.atoms):
            return None
        return str(e)

    def _dim_expr(self, d: Dim) -> Expr:
        if isinstance(d, int):
            return Expr.const(d)
        if isinstance(d, str):
            if d in self.alias:
                return self.alias[d]
            self._used.add(d)
            return Expr.atom(d)
        self._fresh += 1
        return Expr.atom(f"?{self._fresh}")

    def declared_shape(self, value: Value) -> Shape | None:
        """The value's declared dims as expressions."""
        dims = declared_dims(value)
        if dims is None:
            return None
        return tuple(self._dim_expr(d) for d in dims)

    def reconciled_shape(self, value: Value, derived: Shape | None) -> Shape | None:
        """The dims a rule derived for `value`, merged with its declared ones (see the module docstring)."""
        declared = declared_dims(value)
        if derived is None:
            return self.declared_shape(value)
        if declared is None:
            return tuple(d if d is not None else self._dim_expr(None) for d in derived)
        if len(declared) != len(derived):
            return self.declared_shape(value)
        merged: list[Expr] = []
        for d, e in zip(declared, derived, strict=True):
            if isinstance(d, int):
                merged.append(Expr.const(d))  # the declared static dim wins
            elif e is None:
                merged.append(self._dim_expr(d))
            else:
                if isinstance(d, str) and d not in self.protected and d not in self._used and d not in self.alias:
                    if not (len(e.terms) == 1 and e.terms[0] == ((d,), 1)):
                        self.alias[d] = e
                merged.append(e)
        return tuple(merged)


__all__ = ["DeclaredDims", "declared_dims", "tensor_dtype"]
