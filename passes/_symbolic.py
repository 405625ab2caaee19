"""Symbolic shapes and shape values, shared by `infer-shapes` and `simplify-shapes`.

A dim is an `Expr`: a polynomial with integer coefficients over named dims (atoms), such as
`batch`, `2*batch*sequence` or `17`. Expressions are canonical, so two dims are provably equal
exactly when their expressions are equal. Atoms are the symbolic names of the graph's types
(`batch`, `sequence`, and the `unk__N` names onnx's shape inference makes up), and one fresh atom
per unknown (`None`) dim, equal only to itself.

`ShapeInfo(graph)` walks the graph in order and gives every tensor value

* its shape: a tuple of `Expr | None` (None: unknown), derived from the shapes and shape values
  of the node's inputs by the op's shape rule, and otherwise (ops without a rule here) read from
  the value's declared type;
* for small integer and boolean tensors (shape computations: Shape, Gather, Concat, Slice, ...),
  its values: a flat tuple of `Expr | None`. `Shape(x)` holds x's dims, arithmetic on them stays
  symbolic, and `Equal(batch, -1)` is known false (a dim is never negative).

Where a rule derives a dim the declared type calls by another name (onnx makes up a fresh
`unk__N` for every Reshape output), that name becomes an alias of the derived expression, so that
later types that use it agree; names of the graph inputs' dims are never aliased. A declared
static dim wins over a contradicting rule (the model says so; the numeric checks judge it).

The rules assume a valid model: every op's inputs have shapes the op accepts (so in
`Add(a[batch], b[64])` batch is 1 or 64 and the result is 64), and dims are never negative.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from mlc.ir.core import Graph, Node, Value
from mlc.ir.dtypes import DType
from mlc.ir.tensor import Tensor, TensorDataUnavailable
from mlc.ir.types import Dim, TensorType
from mlc.passes._slicing import slice_indices

MAX_ELEMENTS = 64  # shape values are tracked for tensors of at most this many elements
HUGE = 2**62  # a Slice bound at least this large means "to the end", whatever the dim
INT_DTYPES = {DType.INT64, DType.INT32, DType.INT16, DType.INT8, DType.UINT8, DType.UINT16, DType.UINT32,
               DType.UINT64, DType.BOOL}
_STANDARD = ("", "ai.onnx")

Mono = tuple[str, ...]


_CONSTS: dict[int, Expr] = {}
_ATOMS: dict[str, Expr] = {}


class Expr:
    """A polynomial over dim names with integer coefficients, in canonical form (immutable)."""

    __slots__ = ("_hash", "is_const", "terms", "value")

    def __init__(self, terms: dict[Mono, int] | Iterable[tuple[Mono, int]]) -> None:
        items = terms.items() if isinstance(terms, dict) else terms
        self._set(tuple(sorted((m, c) for m, c in items if c != 0)))

    def _set(self, terms: tuple[tuple[Mono, int], ...]) -> None:
        self.terms: tuple[tuple[Mono, int], ...] = terms
        self._hash = hash(terms)
        self.is_const: bool = not terms or (len(terms) == 1 and terms[0][0] == ())
        self.value: int = terms[0][1] if self.is_const and terms else 0  # the constant's value

    @staticmethod
    def _raw(terms: tuple[tuple[Mono, int], ...]) -> Expr:
        expr = Expr.__new__(Expr)
        expr._set(terms)
        return expr

    @staticmethod
    def const(value: int) -> Expr:
        value = int(value)
        cached = _CONSTS.get(value)
        if cached is None:
            cached = Expr._raw((((), value),) if value else ())
            if -1024 <= value <= 1 << 20:
                _CONSTS[value] = cached
        return cached

    @staticmethod
    def atom(name: str) -> Expr:
        cached = _ATOMS.get(name)
        if cached is None:
            cached = Expr._raw((((name,), 1),))
            if len(_ATOMS) < 1 << 16:
                _ATOMS[name] = cached
        return cached

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Expr) and self.terms == other.terms

    def __hash__(self) -> int:
        return self._hash

    def __repr__(self) -> str:
        return f"Expr({self})"

    def __str__(self) -> str:
        if not self.terms:
            return "0"
        parts = []
        for mono, coef in self.terms:
            body = "*".join(mono)
            if not mono:
                parts.append(str(coef))
            elif coef == 1:
                parts.append(body)
            elif coef == -1:
                parts.append("-" + body)
            else:
                parts.append(f"{coef}*{body}")
        return "+".join(parts).replace("+-", "-")

    @property
    def atoms(self) -> set[str]:
        return {a for mono, _ in self.terms for a in mono}

    @property
    def nonnegative(self) -> bool:
        """Provably >= 0 (every dim is): all coefficients are non-negative."""
        return all(c >= 0 for _, c in self.terms)

    def __add__(self, other: Expr) -> Expr:
        if self.is_const and other.is_const:
            return Expr.const(self.value + other.value)
        terms = dict(self.terms)
        for mono, coef in other.terms:
            terms[mono] = terms.get(mono, 0) + coef
        return Expr(terms)

    def __neg__(self) -> Expr:
        return Expr((m, -c) for m, c in self.terms)

    def __sub__(self, other: Expr) -> Expr:
        return self + (-other)

    def __mul__(self, other: Expr) -> Expr:
        if self.is_const and other.is_const:
            return Expr.const(self.value * other.value)
        if other.is_const and other.value == 1:
            return self
        if self.is_const and self.value == 1:
            return other
        terms: dict[Mono, int] = {}
        for m1, c1 in self.terms:
            for m2, c2 in other.terms:
                mono = tuple(sorted(m1 + m2))
                terms[mono] = terms.get(mono, 0) + c1 * c2
        return Expr(terms)

    def divide(self, other: Expr) -> Expr | None:
        """self / other when other is a single term dividing every term of self exactly."""
        if len(other.terms) != 1:
            return None
        (dmono, dcoef), = other.terms
        if dcoef == 0:
            return None
        terms: dict[Mono, int] = {}
        for mono, coef in self.terms:
            rest = list(mono)
            for atom in dmono:
                if atom not in rest:
                    return None
                rest.remove(atom)
            if coef % dcoef:
                return None
            terms[tuple(rest)] = coef // dcoef
        return Expr(terms)


ONE = Expr.const(1)
ZERO = Expr.const(0)
Shape = tuple[Expr | None, ...]
Elems = tuple[Expr | None, ...]


def product(dims: Iterable[Expr | None]) -> Expr | None:
    result = ONE
    for d in dims:
        if d is None:
            return None
        result = result * d
    return result


def as_int(e: Expr | None) -> int | None:
    return e.value if e is not None and e.is_const else None


def _is_std(node: Node) -> bool:
    return node.domain in _STANDARD


def _broadcast_dim(dims: Sequence[Expr | None]) -> Expr | None:
    """The broadcast of dims that a valid model makes compatible."""
    known = [d for d in dims if d is not None and d != ONE]
    unknown = any(d is None for d in dims)
    distinct = list(dict.fromkeys(known))
    consts = [d for d in distinct if d.is_const]
    if len(distinct) == 1 and not unknown:
        return distinct[0]
    if not distinct and not unknown:
        return ONE
    if len(consts) == 1:
        return consts[0]  # a symbolic dim beside a static one (> 1) is 1 or equal to it
    return None


def broadcast(shapes: Sequence[Shape | None]) -> Shape | None:
    if any(s is None for s in shapes):
        return None
    rank = max((len(s) for s in shapes if s is not None), default=0)
    result = []
    for i in range(rank):
        column = [s[len(s) - rank + i] for s in shapes if s is not None and len(s) - rank + i >= 0]
        result.append(_broadcast_dim(column))
    return tuple(result)


class ShapeInfo:
    """Symbolic shapes and shape values of a graph's values (see the module docstring)."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self._shapes: dict[Value, Shape | None] = {}
        self._elems: dict[Value, Elems | None] = {}
        self.alias: dict[str, Expr] = {}
        self._used: set[str] = set()  # declared names read as atoms (no longer free to alias)
        self._fresh = 0
        self.protected: set[str] = set()  # names of graph-input dims: never aliased
        root = graph.root
        for g in root.all_graphs():
            for value in g.inputs:
                for d in _declared(value) or ():
                    if isinstance(d, str):
                        self.protected.add(d)
        for node in graph:
            self._infer(node)

    # ---------------------------------------------------------------- queries
    def shape(self, value: Value | None) -> Shape | None:
        if value is None:
            return None
        if value not in self._shapes:
            self._shapes[value] = self._from_type(value)
        return self._shapes[value]

    def rank(self, value: Value | None) -> int | None:
        shape = self.shape(value)
        return None if shape is None else len(shape)

    def elems(self, value: Value | None) -> Elems | None:
        if value is None:
            return None
        if value not in self._elems:
            self._elems[value] = self._const_elems(value)
        return self._elems[value]

    def ints(self, value: Value | None) -> list[int] | None:
        """The values when every one is known and constant."""
        elems = self.elems(value)
        if elems is None or any(e is None or not e.is_const for e in elems):
            return None
        return [e.value for e in elems]  # type: ignore[union-attr]

    def to_dim(self, e: Expr | None) -> Dim:
        """How a type spells a dim: an int, a declared name, an expression over names, or None."""
        if e is None:
            return None
        if e.is_const:
            return e.value
        if any(a.startswith("?") for a in e.atoms):
            return None
        return str(e)

    # ---------------------------------------------------------------- declared types
    def _dim_expr(self, d: Dim, value: Value, axis: int) -> Expr:
        if isinstance(d, int):
            return Expr.const(d)
        if isinstance(d, str):
            if d in self.alias:
                return self.alias[d]
            self._used.add(d)
            return Expr.atom(d)
        self._fresh += 1
        return Expr.atom(f"?{self._fresh}")

    def _from_type(self, value: Value) -> Shape | None:
        dims = _declared(value)
        if dims is None:
            return None
        return tuple(self._dim_expr(d, value, i) for i, d in enumerate(dims))

    def _const_elems(self, value: Value) -> Elems | None:
        tensor = value.const if value.is_constant else None
        if not isinstance(tensor, Tensor) or tensor.dtype not in INT_DTYPES or tensor.size > MAX_ELEMENTS:
            return None
        try:
            array = tensor.numpy()
        except TensorDataUnavailable:
            return None
        return tuple(Expr.const(int(v)) for v in array.reshape(-1))

    # ---------------------------------------------------------------- inference
    def _infer(self, node: Node) -> None:
        outputs = node.outputs
        rule = _RULES.get(node.op_type) if _is_std(node) else None
        derived: list[Shape | None] = [None] * len(outputs)
        elems: list[Elems | None] = [None] * len(outputs)
        if rule is not None:
            try:
                result = rule(self, node)
            except (IndexError, ValueError, TypeError, ZeroDivisionError, OverflowError):
                result = None  # a malformed node: its declared types stand
            if result is not None:
                shapes, values = result
                derived[:len(shapes)] = shapes
                elems[:len(values)] = values
        for i, out in enumerate(outputs):
            if out is None:
                continue
            self._shapes[out] = self._merge(out, derived[i])
            vals = elems[i]
            if vals is not None and (len(vals) > MAX_ELEMENTS or _dtype(out) not in INT_DTYPES):
                vals = None
            shape = self._shapes[out]
            if vals is not None and shape is not None:
                count = product(shape)
                if count is None or not count.is_const or count.value != len(vals):
                    vals = None
            self._elems[out] = vals

    def _merge(self, value: Value, derived: Shape | None) -> Shape | None:
        declared = _declared(value)
        if derived is None:
            return self._from_type(value)
        if declared is None:
            return tuple(d if d is not None else self._dim_expr(None, value, i) for i, d in enumerate(derived))
        if len(declared) != len(derived):
            return self._from_type(value)
        merged: list[Expr] = []
        for i, (d, e) in enumerate(zip(declared, derived, strict=True)):
            if isinstance(d, int):
                merged.append(Expr.const(d))  # the declared static dim wins
            elif e is None:
                merged.append(self._dim_expr(d, value, i))
            else:
                if isinstance(d, str) and d not in self.protected and d not in self._used and d not in self.alias:
                    if not (len(e.terms) == 1 and e.terms[0] == ((d,), 1)):
                        self.alias[d] = e
                merged.append(e)
        return tuple(merged)


def _declared(value: Value | None) -> tuple[Dim, ...] | None:
    if value is None or not isinstance(value.type, TensorType):
        return None
    return value.type.shape


def _dtype(value: Value | None) -> DType | None:
    if value is None or not isinstance(value.type, TensorType):
        return None
    return value.type.dtype


# ===================================================================== rules
Result = tuple[list[Shape | None], list[Elems | None]] | None
Rule = Callable[[ShapeInfo, Node], Result]
_RULES: dict[str, Rule] = {}


def _rule(*ops: str) -> Callable[[Rule], Rule]:
    def register(fn: Rule) -> Rule:
        for op in ops:
            _RULES[op] = fn
        return fn
    return register


def _in(node: Node, i: int) -> Value | None:
    return node.inputs[i] if i < len(node.inputs) else None


def _axes_of(info: ShapeInfo, node: Node, index: int) -> list[int] | None:
    """Axes from the attribute (older opsets) or the input `index` (a constant)."""
    if "axes" in node.attributes:
        return [int(a) for a in node.attr("axes")]
    value = _in(node, index)
    if value is None:
        return None
    return info.ints(value)


def _norm(axis: int, rank: int) -> int:
    axis = axis + rank if axis < 0 else axis
    if not 0 <= axis < rank:
        raise ValueError(f"axis {axis} out of range for rank {rank}")
    return axis


@_rule("Identity", "Abs", "Acos", "Acosh", "Asin", "Asinh", "Atan", "Atanh", "Ceil", "Celu", "Clip", "Cos", "Cosh",
       "Elu", "Erf", "Exp", "Floor", "Gelu", "HardSigmoid", "HardSwish", "Hardmax", "IsInf", "IsNaN", "LeakyRelu",
       "Log", "LogSoftmax", "LpNormalization", "Mish", "Neg", "Not", "Reciprocal", "Relu", "Round", "Selu",
       "Shrink", "Sigmoid", "Sign", "Sin", "Sinh", "Softmax", "Softplus", "Softsign", "Sqrt", "Tan", "Tanh",
       "ThresholdedRelu", "Trilu", "CumSum", "Cast", "CastLike", "Dropout", "LayerNormalization",
       "BatchNormalization", "InstanceNormalization", "BitwiseNot", "QuantizeLinear", "DequantizeLinear",
       "GroupNormalization", "RMSNormalization", "SimplifiedLayerNormalization")
def _unary(info: ShapeInfo, node: Node) -> Result:
    x = node.inputs[0]
    shape = info.shape(x)
    elems = None
    if node.op_type in ("Identity", "Neg", "Cast", "CastLike"):
        elems = info.elems(x)
        if elems is not None and node.op_type == "Neg":
            elems = tuple(None if e is None else -e for e in elems)
        if elems is not None and node.op_type in ("Cast", "CastLike"):
            elems = _cast_elems(elems, _dtype(node.outputs[0]))
    return [shape], [elems]


def _cast_elems(elems: Elems, to: DType | None) -> Elems | None:
    if to == DType.BOOL:
        return tuple(None if e is None else (Expr.const(int(e.value != 0)) if e.is_const else None) for e in elems)
    if to in INT_DTYPES:
        return elems
    return None


_BINARY_ARITH = {"Add": lambda a, b: a + b, "Sub": lambda a, b: a - b, "Mul": lambda a, b: a * b}


@_rule("Add", "Sub", "Mul", "Div", "Pow", "Mod", "Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual",
       "And", "Or", "Xor", "Where", "Max", "Min", "Sum", "Mean", "PRelu", "BitShift", "BitwiseAnd", "BitwiseOr",
       "BitwiseXor")
def _elementwise(info: ShapeInfo, node: Node) -> Result:
    inputs = [v for v in node.inputs if v is not None]
    shape = broadcast([info.shape(v) for v in inputs])
    elems = _elementwise_elems(info, node, inputs, shape)
    return [shape], [elems]


def _elementwise_elems(info: ShapeInfo, node: Node, inputs: list[Value], shape: Shape | None) -> Elems | None:
    """The values of an elementwise op over small tensors of known values, numpy-broadcast."""
    dims = static(shape)
    if dims is None or math.prod(dims) > MAX_ELEMENTS:
        return None
    operands = []
    for v in inputs:
        grid = _grid(info, v)
        if grid is None:
            return None
        operands.append(np.broadcast_to(grid, dims).reshape(-1))
    op = node.op_type
    fmod = bool(node.attr("fmod", 0))
    return tuple(_elementwise_one(op, tuple(column), fmod) for column in zip(*operands, strict=True))


def _grid(info: ShapeInfo, value: Value | None) -> np.ndarray | None:
    """A value's known elements as a numpy object array of its (static) shape, to index,
    transpose and broadcast as the op would."""
    elems, dims = info.elems(value), static(info.shape(value))
    if elems is None or dims is None or math.prod(dims) != len(elems):
        return None
    grid = np.empty(len(elems), dtype=object)
    grid[:] = list(elems)
    return grid.reshape(dims)


def _flat(grid: np.ndarray) -> Elems:
    return tuple(grid.reshape(-1).tolist())


def _mod(a: Expr, b: Expr, fmod: bool) -> Expr | None:
    """a mod b: Python's floor remainder (the divisor's sign), or C's fmod (the dividend's sign);
    zero whenever b divides a (a symbolic dim that is a multiple of a constant window size)."""
    if b.is_const and b.value == 0:
        return None
    if a.is_const and b.is_const:
        return Expr.const(int(math.fmod(a.value, b.value)) if fmod else a.value % b.value)
    if a.divide(b) is not None:
        return ZERO
    return None


def _elementwise_one(op: str, column: tuple[Expr | None, ...], fmod: bool = False) -> Expr | None:
    if op == "Where":
        cond, a, b = column
        if cond is None or not cond.is_const:
            return a if a is not None and a == b else None
        return a if cond.value else b
    if any(c is None for c in column):
        return None
    a, b = column[0], column[1] if len(column) > 1 else None
    assert a is not None
    if op in _BINARY_ARITH and b is not None and len(column) == 2:
        return _BINARY_ARITH[op](a, b)
    if op == "Div" and b is not None:
        if a.is_const and b.is_const:
            if b.value == 0:
                return None
            q = abs(a.value) // abs(b.value)
            return Expr.const(q if (a.value >= 0) == (b.value >= 0) else -q)  # truncates toward zero
        return a.divide(b) if a.nonnegative and b.nonnegative else None
    if op in ("Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual") and b is not None:
        diff = a - b
        if diff.is_const:
            v = diff.value
            truth = {"Equal": v == 0, "Less": v < 0, "LessOrEqual": v <= 0, "Greater": v > 0,
                     "GreaterOrEqual": v >= 0}[op]
            return Expr.const(int(truth))
        if op == "Equal" and ((a.nonnegative and b.is_const and b.value < 0)
                              or (b.nonnegative and a.is_const and a.value < 0)):
            return ZERO  # a dim (or a sum of dims) is never negative
        return None
    if op == "Mod" and b is not None:
        return _mod(a, b, fmod)
    if op in ("Max", "Min") and all(c is not None and c.is_const for c in column):
        values = [c.value for c in column if c is not None]
        return Expr.const(max(values) if op == "Max" else min(values))
    if op in ("And", "Or") and b is not None and a.is_const and b.is_const:
        return Expr.const(int(bool(a.value) and bool(b.value)) if op == "And" else int(bool(a.value) or bool(b.value)))
    return None


@_rule("MatMul", "MatMulInteger")
def _matmul(info: ShapeInfo, node: Node) -> Result:
    a, b = info.shape(node.inputs[0]), info.shape(node.inputs[1])
    if a is None or b is None or not a or not b:
        return None
    a2 = a if len(a) > 1 else (ONE, *a)
    b2 = b if len(b) > 1 else (*b, ONE)
    batch = broadcast([a2[:-2], b2[:-2]])
    if batch is None:
        return None
    out = [*batch, a2[-2], b2[-1]]
    if len(a) == 1:
        out.pop(-2)
    if len(b) == 1:
        out.pop(-1)
    return [tuple(out)], []


@_rule("Gemm")
def _gemm(info: ShapeInfo, node: Node) -> Result:
    a, b = info.shape(node.inputs[0]), info.shape(node.inputs[1])
    if a is None or b is None or len(a) != 2 or len(b) != 2:
        return None
    m = a[1] if node.attr("transA", 0) else a[0]
    n = b[0] if node.attr("transB", 0) else b[1]
    return [(m, n)], []


@_rule("Transpose")
def _transpose(info: ShapeInfo, node: Node) -> Result:
    x = info.shape(node.inputs[0])
    if x is None:
        return None
    perm = node.attr("perm")
    perm = list(perm) if perm is not None else list(reversed(range(len(x))))
    grid = _grid(info, node.inputs[0])
    elems = _flat(grid.transpose(perm)) if grid is not None else None
    return [tuple(x[p] for p in perm)], [elems]


def reshape_dims(in_shape: Shape | None, target: Elems, allowzero: bool) -> Shape | None:
    """The output dims of Reshape(x, target) (None entries: unknown)."""
    out: list[Expr | None] = []
    solve: int | None = None
    for i, t in enumerate(target):
        if t is not None and t.is_const and t.value == 0 and not allowzero:
            out.append(in_shape[i] if in_shape is not None and i < len(in_shape) else None)
        elif t is not None and t.is_const and t.value == -1:
            if solve is not None:
                return None
            solve = i
            out.append(None)
        else:
            out.append(t)
    unknown = [i for i, d in enumerate(out) if d is None]
    if len(unknown) == 1 and in_shape is not None:
        total = product(in_shape)
        rest = product(d for i, d in enumerate(out) if i != unknown[0])
        if total is not None and rest is not None:
            out[unknown[0]] = total.divide(rest)
    return tuple(out)


@_rule("Reshape")
def _reshape(info: ShapeInfo, node: Node) -> Result:
    x = info.shape(node.inputs[0])
    target = info.elems(_in(node, 1))
    if target is None:
        length = info.shape(_in(node, 1))
        n = as_int(length[0]) if length is not None and len(length) == 1 else None
        return None if n is None else ([tuple([None] * n)], [])
    out = reshape_dims(x, target, bool(node.attr("allowzero", 0)))
    return [out], [info.elems(node.inputs[0])]


@_rule("Flatten")
def _flatten(info: ShapeInfo, node: Node) -> Result:
    x = info.shape(node.inputs[0])
    if x is None:
        return None
    axis = node.attr("axis", 1)
    axis = axis + len(x) if axis < 0 else axis
    return [(product(x[:axis]), product(x[axis:]))], [info.elems(node.inputs[0])]


@_rule("Squeeze")
def _squeeze(info: ShapeInfo, node: Node) -> Result:
    x = info.shape(node.inputs[0])
    if x is None:
        return None
    axes = _axes_of(info, node, 1)
    if axes is None:
        if any(d is None or not d.is_const for d in x):
            return None
        keep = [d for d in x if d != ONE]
    else:
        drop = {_norm(a, len(x)) for a in axes}
        keep = [d for i, d in enumerate(x) if i not in drop]
    return [tuple(keep)], [info.elems(node.inputs[0])]


@_rule("Unsqueeze")
def _unsqueeze(info: ShapeInfo, node: Node) -> Result:
    x = info.shape(node.inputs[0])
    axes = _axes_of(info, node, 1)
    if x is None or axes is None:
        return None
    rank = len(x) + len(axes)
    positions = sorted(_norm(a, rank) for a in axes)
    out = list(x)
    for p in positions:
        out.insert(p, ONE)
    return [tuple(out)], [info.elems(node.inputs[0])]


@_rule("Concat")
def _concat(info: ShapeInfo, node: Node) -> Result:
    shapes = [info.shape(v) for v in node.inputs if v is not None]
    if not shapes or any(s is None for s in shapes):
        return None
    rank = len(shapes[0])  # type: ignore[arg-type]
    if any(len(s) != rank for s in shapes):  # type: ignore[arg-type]
        return None
    axis = _norm(node.attr("axis", 0), rank)
    out: list[Expr | None] = []
    for i in range(rank):
        column = [s[i] for s in shapes]  # type: ignore[index]
        if i == axis:
            out.append(_sum(column))
        else:
            known = [d for d in column if d is not None]
            out.append(known[0] if known else None)
    elems: Elems | None = None
    if rank == 1:
        parts = [info.elems(v) for v in node.inputs if v is not None]
        if all(p is not None for p in parts):
            elems = tuple(e for p in parts for e in p)  # type: ignore[union-attr]
    return [tuple(out)], [elems]


def _sum(dims: Sequence[Expr | None]) -> Expr | None:
    total = ZERO
    for d in dims:
        if d is None:
            return None
        total = total + d
    return total


def _slice_params(info: ShapeInfo, node: Node, rank: int) -> list[tuple[int, Expr, Expr, int]] | None:
    """(axis, start, end, step) per sliced axis, start/end as given (symbolic allowed)."""
    if len(node.inputs) >= 3:
        starts, ends = info.elems(node.inputs[1]), info.elems(node.inputs[2])
        axes = info.ints(_in(node, 3)) if _in(node, 3) is not None else None
        steps = info.ints(_in(node, 4)) if _in(node, 4) is not None else None
        if starts is None or ends is None or (_in(node, 3) is not None and axes is None) or (
                _in(node, 4) is not None and steps is None):
            return None
    else:
        starts_a, ends_a = node.attr("starts"), node.attr("ends")
        if starts_a is None or ends_a is None:
            return None
        starts = tuple(Expr.const(int(s)) for s in starts_a)
        ends = tuple(Expr.const(int(e)) for e in ends_a)
        axes = list(node.attr("axes")) if node.attr("axes") is not None else None
        steps = None
    axes = list(range(len(starts))) if axes is None else axes
    steps = [1] * len(starts) if steps is None else steps
    if not len(starts) == len(ends) == len(axes) == len(steps) or any(s is None for s in (*starts, *ends)):
        return None
    return [(_norm(a, rank), s, e, st) for a, s, e, st in zip(axes, starts, ends, steps, strict=True)
            if s is not None and e is not None]


def slice_range(dim: Expr | None, start: Expr, end: Expr, step: int) -> tuple[Expr, Expr] | None:
    """The clamped [lo, hi) of a step-1 slice of a dim, when provable (lo, hi as expressions)."""
    if step != 1:
        return None
    lo = _clamp(dim, start)
    hi = _clamp(dim, end)
    if lo is None or hi is None:
        return None
    return lo, hi


def _clamp(dim: Expr | None, bound: Expr) -> Expr | None:
    """A slice bound resolved against the dim (negative counts from the end, clamped to [0, dim])."""
    if bound.is_const:
        b = bound.value
        if dim is not None and dim.is_const:
            d = dim.value
            return Expr.const(min(max(b + d if b < 0 else b, 0), d))
        if b >= HUGE:
            return dim
        if b == 0:
            return ZERO
        if b <= -HUGE:
            return ZERO
        return None  # 0 < b < huge or a negative offset: depends on how large the symbolic dim is
    if dim is not None and bound == dim:
        return dim
    return None


@_rule("Slice")
def _slice(info: ShapeInfo, node: Node) -> Result:
    x = info.shape(node.inputs[0])
    if x is None:
        return None
    params = _slice_params(info, node, len(x))
    if params is None:
        return None
    out: list[Expr | None] = list(x)
    ranges: dict[int, tuple[Expr, Expr] | None] = {}
    for axis, start, end, step in params:
        r = None
        if step == 1:
            r = slice_range(x[axis], start, end, step)
        elif x[axis] is not None and x[axis].is_const and start.is_const and end.is_const and step != 0:  # type: ignore[union-attr]
            n = len(slice_indices(start.value, end.value, step, x[axis].value))  # type: ignore[union-attr]
            out[axis] = Expr.const(n)
            continue
        ranges[axis] = r
        out[axis] = None if r is None else r[1] - r[0]
    elems: Elems | None = None
    grid = _grid(info, node.inputs[0])
    if grid is not None and all(st.is_const and en.is_const and step != 0 for _, st, en, step in params):
        for axis, start, end, step in params:  # a range, not a slice: a negative step may end before 0
            picked = slice_indices(start.value, end.value, step, grid.shape[axis])
            grid = grid.take(list(picked), axis=axis)
        elems = _flat(grid)
    return [tuple(out)], [elems]


@_rule("Gather")
def _gather(info: ShapeInfo, node: Node) -> Result:
    data, indices = info.shape(node.inputs[0]), info.shape(node.inputs[1])
    if data is None or indices is None:
        return None
    axis = _norm(node.attr("axis", 0), len(data))
    out = (*data[:axis], *indices, *data[axis + 1:])
    elems: Elems | None = None
    values, picks = info.elems(node.inputs[0]), info.ints(node.inputs[1])
    if values is not None and picks is not None and len(data) == 1:
        n = len(values)
        if all(-n <= p < n for p in picks):
            elems = tuple(values[p] for p in picks)
    return [out], [elems]


@_rule("GatherElements")
def _gather_elements(info: ShapeInfo, node: Node) -> Result:
    return [info.shape(node.inputs[1])], []


@_rule("ScatterElements", "ScatterND", "Scatter")
def _scatter(info: ShapeInfo, node: Node) -> Result:
    return [info.shape(node.inputs[0])], []


@_rule("Expand")
def _expand(info: ShapeInfo, node: Node) -> Result:
    x, target = info.shape(node.inputs[0]), info.elems(_in(node, 1))
    if x is None or target is None:
        return None
    out = broadcast([x, target])
    elems = None
    if out is not None and len(out) <= 1:
        values = info.elems(node.inputs[0])
        size = as_int(out[0]) if out else 1
        if values is not None and len(values) == 1 and size is not None and size <= MAX_ELEMENTS:
            elems = values * size
        elif values is not None and size is not None and len(values) == size:
            elems = values
    return [out], [elems]


@_rule("ConstantOfShape")
def _constant_of_shape(info: ShapeInfo, node: Node) -> Result:
    target = info.elems(node.inputs[0])
    if target is None:
        return None
    elems = None
    fill = node.attr("value")
    count = product(target)
    if count is not None and count.is_const and count.value <= MAX_ELEMENTS:
        value = 0
        if isinstance(fill, Tensor) and fill.has_data and fill.dtype in INT_DTYPES:
            value = int(fill.numpy().reshape(-1)[0])
        if fill is None or (isinstance(fill, Tensor) and fill.dtype in INT_DTYPES):
            elems = (Expr.const(value),) * count.value
    return [tuple(target)], [elems]


@_rule("Constant")
def _constant(info: ShapeInfo, node: Node) -> Result:
    attr = node.attributes.get("value")
    if attr is not None and attr.ref is None and isinstance(attr.value, Tensor):
        tensor = attr.value
        elems = None
        if tensor.dtype in INT_DTYPES and tensor.size <= MAX_ELEMENTS and tensor.has_data:
            elems = tuple(Expr.const(int(v)) for v in tensor.numpy().reshape(-1))
        return [tuple(Expr.const(d) for d in tensor.shape)], [elems]
    for name in ("value_int", "value_ints"):
        attr = node.attributes.get(name)
        if attr is not None and attr.ref is None:
            values = [attr.value] if name == "value_int" else list(attr.value)
            shape = () if name == "value_int" else (Expr.const(len(values)),)
            return [shape], [tuple(Expr.const(int(v)) for v in values)]
    return None


@_rule("Shape")
def _shape(info: ShapeInfo, node: Node) -> Result:
    x = info.shape(node.inputs[0])
    if x is None:
        return None
    rank = len(x)
    start = node.attr("start", 0)
    end = node.attr("end", rank)
    start = min(max(start + rank if start < 0 else start, 0), rank)
    end = min(max(end + rank if end < 0 else end, 0), rank)
    picked = x[start:end]
    return [(Expr.const(len(picked)),)], [picked]


@_rule("Size")
def _size(info: ShapeInfo, node: Node) -> Result:
    x = info.shape(node.inputs[0])
    return [()], [(product(x) if x is not None else None,)]


@_rule("Range")
def _range(info: ShapeInfo, node: Node) -> Result:
    start, limit, delta = (info.elems(v) for v in node.inputs[:3])
    if start is None or limit is None or delta is None or len(start) != 1 or len(limit) != 1 or len(delta) != 1:
        return None
    s, lim, d = start[0], limit[0], delta[0]
    if s is None or lim is None or d is None or not d.is_const or d.value == 0:
        return None
    if s.is_const and lim.is_const:
        values = list(range(s.value, lim.value, d.value))
        elems = tuple(Expr.const(v) for v in values) if len(values) <= MAX_ELEMENTS else None
        return [(Expr.const(len(values)),)], [elems]
    if d.value == 1 and s == ZERO and lim.nonnegative:
        return [(lim,)], []
    return None


@_rule("Split")
def _split(info: ShapeInfo, node: Node) -> Result:
    x = info.shape(node.inputs[0])
    if x is None:
        return None
    axis = _norm(node.attr("axis", 0), len(x))
    outputs = len(node.outputs)
    if "split" in node.attributes:
        sizes: list[Expr | None] = [Expr.const(int(s)) for s in node.attr("split")]
    elif _in(node, 1) is not None:
        values = info.elems(node.inputs[1])
        if values is None:
            return None
        sizes = list(values)
    else:
        dim = x[axis]
        if dim is None:
            return None
        if dim.is_const:
            chunk = -(-dim.value // outputs)
            sizes = [Expr.const(min(chunk, dim.value - i * chunk)) for i in range(outputs)]
        else:
            part = dim.divide(Expr.const(outputs))
            sizes = [part] * outputs
    if len(sizes) != outputs:
        return None
    return [tuple(s if i == axis else d for i, d in enumerate(x)) for s in sizes], []


@_rule("Tile")
def _tile(info: ShapeInfo, node: Node) -> Result:
    x, repeats = info.shape(node.inputs[0]), info.elems(node.inputs[1])
    if x is None or repeats is None or len(repeats) != len(x):
        return None
    return [tuple(None if d is None or r is None else d * r for d, r in zip(x, repeats, strict=True))], []


@_rule("ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2", "ReduceLogSum",
       "ReduceLogSumExp", "ReduceSumSquare")
def _reduce(info: ShapeInfo, node: Node) -> Result:
    x = info.shape(node.inputs[0])
    if x is None:
        return None
    axes = _axes_of(info, node, 1)
    keep = node.attr("keepdims", 1)
    if axes is None or not axes:
        if _in(node, 1) is not None or (axes is not None and not axes and node.attr("noop_with_empty_axes", 0)):
            if axes is None:
                return None
            return [x], []
        axes = list(range(len(x)))
    drop = {_norm(a, len(x)) for a in axes}
    out = [ONE if i in drop else d for i, d in enumerate(x)] if keep else [d for i, d in enumerate(x) if i not in drop]
    return [tuple(out)], []


@_rule("ArgMax", "ArgMin")
def _argmax(info: ShapeInfo, node: Node) -> Result:
    x = info.shape(node.inputs[0])
    if x is None:
        return None
    axis = _norm(node.attr("axis", 0), len(x))
    keep = node.attr("keepdims", 1)
    out = [ONE if i == axis else d for i, d in enumerate(x)] if keep else [d for i, d in enumerate(x) if i != axis]
    return [tuple(out)], []


@_rule("Conv", "ConvTranspose", "MaxPool", "AveragePool", "LpPool")
def _windowed(info: ShapeInfo, node: Node) -> Result:
    """Batch passes through; channels from the weight (Conv) or the input (pools); each spatial dim
    from the window arithmetic where it is exact: static dims, or stride 1 over a symbolic dim."""
    x = info.shape(node.inputs[0])
    if x is None or len(x) < 3:
        return None
    spatial = len(x) - 2
    out: list[Expr | None] = [x[0], None, *([None] * spatial)]
    w = info.shape(_in(node, 1)) if node.op_type in ("Conv", "ConvTranspose") else None
    if node.op_type == "Conv" and w:
        out[1] = w[0]
    elif node.op_type == "ConvTranspose" and w and len(w) > 1 and w[1] is not None and w[1].is_const:
        out[1] = w[1] * Expr.const(int(node.attr("group", 1)))
    elif node.op_type != "Conv" and node.op_type != "ConvTranspose":
        out[1] = x[1]
    kernel = node.attr("kernel_shape")
    if kernel is None and w is not None and len(w) == len(x) and all(d is not None and d.is_const for d in w[2:]):
        kernel = [d.value for d in w[2:]]  # type: ignore[union-attr]
    auto_pad = node.attr("auto_pad", "NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    if kernel is None or len(kernel) != spatial or auto_pad not in ("NOTSET", "VALID") or node.attr("output_shape"):
        return [tuple(out)], []
    strides = list(node.attr("strides", [1] * spatial))
    dilations = list(node.attr("dilations", [1] * spatial))
    pads = list(node.attr("pads", [0] * 2 * spatial)) if auto_pad == "NOTSET" else [0] * 2 * spatial
    extra = list(node.attr("output_padding", [0] * spatial))
    ceil = bool(node.attr("ceil_mode", 0))
    for i in range(spatial):
        d = x[2 + i]
        if d is None:
            continue
        span = dilations[i] * (kernel[i] - 1) + 1
        padded = pads[i] + pads[i + spatial]
        if node.op_type == "ConvTranspose":
            out[2 + i] = (d - ONE) * Expr.const(strides[i]) + Expr.const(extra[i] + span - padded)
        elif ceil:
            continue  # runtimes differ on a last window that starts in the padding: as declared
        elif d.is_const:
            out[2 + i] = Expr.const((d.value + padded - span) // strides[i] + 1)
        elif strides[i] == 1:
            out[2 + i] = d + Expr.const(padded - span + 1)
    return [tuple(out)], []


@_rule("Pad")
def _pad(info: ShapeInfo, node: Node) -> Result:
    """Each padded dim grows by its two pads (negative pads crop), pads from the attribute (opset
    < 11) or a shape value, also when computed from the input's own dims."""
    x = info.shape(node.inputs[0])
    if x is None:
        return None
    rank = len(x)
    if "pads" in node.attributes:
        pads: Elems | None = tuple(Expr.const(int(v)) for v in node.attr("pads"))
    else:
        pads = info.elems(_in(node, 1))
    axes = info.ints(_in(node, 3)) if _in(node, 3) is not None else list(range(rank))
    if pads is None or axes is None or len(pads) != 2 * len(axes):
        return None
    out = list(x)
    for k, axis in enumerate(_norm(a, rank) for a in axes):
        begin, end = pads[k], pads[k + len(axes)]
        out[axis] = None if out[axis] is None or begin is None or end is None else out[axis] + begin + end  # type: ignore[operator]
    return [tuple(out)], []


@_rule("Resize", "Upsample")
def _resize(info: ShapeInfo, node: Node) -> Result:
    """Output dims from `sizes` (symbolic allowed), or from integral `scales` (exact for any dim)."""
    x = info.shape(node.inputs[0])
    if x is None:
        return None
    rank = len(x)
    axes = [_norm(int(a), rank) for a in node.attr("axes", list(range(rank)))]
    out: list[Expr | None] = [x[0], *([None] * (rank - 1))] if rank else []
    sizes = info.elems(_in(node, 3)) if node.op_type == "Resize" else None
    if sizes is not None and len(sizes) == len(axes):
        out = list(x)
        for axis, size in zip(axes, sizes, strict=True):
            out[axis] = size
        return [tuple(out)], []
    scales_value = _in(node, 2) if node.op_type == "Resize" else _in(node, 1)
    scales = _float_constant(scales_value)
    if scales is None and "scales" in node.attributes:
        scales = [float(v) for v in node.attr("scales")]
    if scales is None or len(scales) != len(axes):
        return [tuple(out)], []
    out = list(x)
    for axis, scale in zip(axes, scales, strict=True):
        d = x[axis]
        if d is None:
            out[axis] = None
        elif d.is_const:
            out[axis] = Expr.const(math.floor(d.value * scale))
        elif float(scale).is_integer() and scale > 0:
            out[axis] = d * Expr.const(int(scale))
        else:
            out[axis] = None
    return [tuple(out)], []


def _float_constant(value: Value | None) -> list[float] | None:
    if value is None or not value.is_constant or not isinstance(value.const, Tensor) or not value.const.has_data:
        return None
    try:
        array = value.const.numpy()
    except TensorDataUnavailable:
        return None
    return [float(v) for v in array.reshape(-1)] if array.size else None


@_rule("GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool")
def _global_pool(info: ShapeInfo, node: Node) -> Result:
    x = info.shape(node.inputs[0])
    if x is None or len(x) < 2:
        return None
    return [(x[0], x[1], *([ONE] * (len(x) - 2)))], []


@_rule("LSTM", "GRU", "RNN")
def _rnn(info: ShapeInfo, node: Node) -> Result:
    x = info.shape(node.inputs[0])
    hidden = node.attr("hidden_size")
    if x is None or len(x) != 3 or hidden is None:
        return None
    direction = node.attr("direction", "forward")
    direction = direction.decode() if isinstance(direction, bytes) else direction
    dirs = Expr.const(2 if direction == "bidirectional" else 1)
    h = Expr.const(int(hidden))
    if node.attr("layout", 0):
        batch, seq = x[0], x[1]
        y: Shape = (batch, seq, dirs, h)
        state: Shape = (batch, dirs, h)
    else:
        seq, batch = x[0], x[1]
        y = (seq, dirs, batch, h)
        state = (dirs, batch, h)
    return [y, state, state], []


def first_sources(info: ShapeInfo, candidates: Iterable[Value]) -> dict[Expr, tuple[Value, int]]:
    """Where each symbolic dim can be read: (tensor, axis) of the first candidate that has it."""
    found: dict[Expr, tuple[Value, int]] = {}
    for value in candidates:
        shape = info.shape(value)
        for axis, d in enumerate(shape or ()):
            if d is not None and not d.is_const and d not in found:
                found[d] = (value, axis)
    return found


def known_count(shape: Shape | None) -> int | None:
    """The element count when static."""
    total = product(shape or ()) if shape is not None else None
    return total.value if total is not None and total.is_const else None


def static(shape: Shape | None) -> tuple[int, ...] | None:
    if shape is None or any(d is None or not d.is_const for d in shape):
        return None
    return tuple(d.value for d in shape)  # type: ignore[union-attr]


def elems_array(elems: Elems, dtype: DType, shape: Shape) -> np.ndarray | None:
    """A constant holding `elems` when all are known constants and the shape is static."""
    dims = static(shape)
    if dims is None or any(e is None or not e.is_const for e in elems) or math.prod(dims) != len(elems):
        return None
    values = [e.value for e in elems]  # type: ignore[union-attr]
    return np.array(values, dtype=dtype.numpy).reshape(dims)
