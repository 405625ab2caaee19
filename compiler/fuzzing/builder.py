"""The graph under construction: tensors with what the generator knows of them, nodes, feeds.

Each `Tensor` carries more than its ONNX type, so that every op the generator emits stays inside
its domain for the feeds it generates:

* `shape` are the concrete dims of this case's feeds; `dims` the declared ones, where a symbolic
  dim is a string (`N`, or a derived name such as `N+2`): two dims are provably equal only when
  they are the same int or the same string, so broadcasting never pairs a symbolic dim with a
  number that happens to equal it in this case;
* `bound` is an upper bound of |value| (integer ops never overflow, Exp never reaches inf, the
  float16 range is never left);
* `exact` says no op that may round differently in another implementation was applied on the
  way (reordered sums, fused multiply-adds, approximated transcendentals): only exact values reach
  a discontinuous op (Floor, a comparison, a cast to an integer, ArgMax), where one ulp of
  difference would flip the result and say nothing about a bug;
* `value` is the array of a constant (constant subgraphs are built from it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx  # noqa: TID251 - the fuzzer writes ONNX models: protobuf is its subject
from onnx import helper, numpy_helper  # noqa: TID251

Dim = int | str

FLOATS = (np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.float16))
INTS = (np.dtype(np.int32), np.dtype(np.int64))
BOOL = np.dtype(np.bool_)
INT_LIMIT = float(2 ** 24)  # integer values stay below this (no overflow, exact as float32)
FLOAT_LIMIT = {np.dtype(np.float32): 1e5, np.dtype(np.float64): 1e5, np.dtype(np.float16): 200.0}
# Ops onnxruntime 1.31's CPU provider has no kernel for, by element type (measured).
UNSUPPORTED = {
    np.dtype(np.float64): {"Erf", "Softsign", "Atan", "Softplus", "Elu", "Selu", "HardSigmoid", "HardSwish",
                           "LeakyRelu", "Celu", "ThresholdedRelu", "Mish", "GlobalAveragePool", "GlobalMaxPool",
                           "Gelu", "PRelu", "Mean", "AveragePool", "Conv", "ConvTranspose", "InstanceNormalization",
                           "Resize"},
    np.dtype(np.float16): {"Celu", "IsInf", "Resize"},
}
OPSET_MIN = {"HardSwish": 14, "Mish": 18, "Celu": 12, "Gelu": 20, "LayerNormalization": 17}
SPECIAL_FLOATS = (0.0, -0.0, 0.5, -0.5, 1.5, -2.5, 1.0, -1.0, 2.0)


class Skip(Exception):
    """An action does not apply to the graph as it is (no operand fits): try another."""


@dataclass
class Tensor:
    name: str
    dtype: np.dtype
    shape: tuple[int, ...]
    dims: tuple[Dim, ...]
    bound: float
    exact: bool = True
    value: np.ndarray | None = None

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def is_float(self) -> bool:
        return self.dtype in FLOATS

    @property
    def is_int(self) -> bool:
        return self.dtype in INTS

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def symbolic(self) -> bool:
        return any(isinstance(d, str) for d in self.dims)

    def static_axes(self) -> list[int]:
        return [i for i, d in enumerate(self.dims) if isinstance(d, int)]


def limit_of(dtype: np.dtype) -> float:
    return FLOAT_LIMIT.get(dtype, INT_LIMIT)


def broadcast_dims(a: Sequence[Dim], b: Sequence[Dim]) -> tuple[Dim, ...] | None:
    """Multidirectional broadcast of declared dims; None where equality cannot be proven."""
    rank = max(len(a), len(b))
    pa = [1] * (rank - len(a)) + list(a)
    pb = [1] * (rank - len(b)) + list(b)
    out: list[Dim] = []
    for x, y in zip(pa, pb, strict=True):
        if x == y:
            out.append(x)
        elif x == 1:
            out.append(y)
        elif y == 1:
            out.append(x)
        else:
            return None
    return tuple(out)


def concrete(dims: Sequence[Dim], symbols: dict[str, int]) -> tuple[int, ...]:
    return tuple(d if isinstance(d, int) else symbols[d] for d in dims)


@dataclass
class Builder:
    """Nodes, initializers, inputs and feeds of one generated graph, with a pool of tensors the
    next op may read."""

    rng: np.random.Generator
    opset: int
    float_type: np.dtype
    symbols: dict[str, int] = field(default_factory=dict)
    nodes: list[onnx.NodeProto] = field(default_factory=list)
    initializers: list[onnx.TensorProto] = field(default_factory=list)
    inputs: list[Tensor] = field(default_factory=list)
    feeds: dict[str, np.ndarray] = field(default_factory=dict)
    pool: list[Tensor] = field(default_factory=list)
    uses: dict[str, int] = field(default_factory=dict)
    features: list[str] = field(default_factory=list)
    counter: int = 0
    constants: list[Tensor] = field(default_factory=list)
    constant_only: bool = False  # inside a constant chain: no new inputs

    # ------------------------------------------------------------------ names and randomness
    def fresh(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}_{self.counter}"

    def chance(self, p: float) -> bool:
        return bool(self.rng.random() < p)

    def pick(self, items: Sequence[Any]) -> Any:
        return items[int(self.rng.integers(len(items)))]

    def feature(self, name: str) -> None:
        if name not in self.features:
            self.features.append(name)

    def symbol_for(self, name: str, size: int) -> str:
        self.symbols.setdefault(name, size)
        return name

    # ------------------------------------------------------------------ values
    def random_floats(self, shape: tuple[int, ...], bound: float, dtype: np.dtype,
                      special: bool = True) -> np.ndarray:
        data = self.rng.uniform(-bound, bound, size=shape)
        if special and data.size and self.chance(0.3):
            mask = self.rng.random(shape) < 0.15
            picks = self.rng.choice(np.array([s for s in SPECIAL_FLOATS if abs(s) <= bound]), size=shape)
            data = np.where(mask, picks, data)
        return np.asarray(data, dtype=dtype)

    def random_ints(self, shape: tuple[int, ...], low: int, high: int, dtype: np.dtype) -> np.ndarray:
        return np.asarray(self.rng.integers(low, high + 1, size=shape), dtype=dtype)

    def input(self, dtype: np.dtype, dims: Sequence[Dim], bound: float | None = None,
              low: int | None = None, high: int | None = None, pool: bool = True) -> Tensor:
        """A graph input with a feed: floats uniform in ±bound (with some 0, ±0.5, 1.5, ...),
        integers in [low, high] (default ±bound), bools at random."""
        if self.constant_only:
            raise Skip("a constant chain takes no input")
        dims = tuple(dims)
        shape = concrete(dims, self.symbols)
        name = self.fresh("in")
        if dtype == BOOL:
            feed = self.rng.random(shape) < 0.5
            bound = 1.0
        elif dtype in INTS:
            b = int(bound if bound is not None else 8)
            lo, hi = (-b if low is None else low), (b if high is None else high)
            feed = self.random_ints(shape, lo, hi, dtype)
            bound = float(max(abs(lo), abs(hi)))
        else:
            bound = float(bound if bound is not None else self.pick([1.0, 2.0, 3.0]))
            feed = self.random_floats(shape, bound, dtype)
        tensor = Tensor(name, np.dtype(dtype), shape, dims, bound, True)
        self.inputs.append(tensor)
        self.feeds[name] = np.asarray(feed, dtype=dtype)
        if pool:
            self.pool.append(tensor)
        return tensor

    def const(self, array: np.ndarray | float | int | Sequence[Any], dtype: Any = None, *,
              node: bool | None = None, pool: bool = False, name: str | None = None) -> Tensor:
        """A constant: an initializer, or (sometimes) a Constant node. Now and then the same
        bytes again under another name (dedupe-constants), or a constant computed by nodes
        from constants (fold-constants) when `node` is None."""
        value = np.asarray(array, dtype=dtype) if dtype is not None else np.asarray(array)
        if value.dtype == np.float64 and dtype is None and not isinstance(array, np.ndarray):
            value = value.astype(self.float_type)
        bound = float(np.max(np.abs(value.astype(np.float64)))) if value.size and value.dtype != BOOL else 1.0
        tensor = Tensor(name or self.fresh("c"), value.dtype, value.shape, value.shape, bound, True, value)
        as_node = self.chance(0.15) if node is None else node
        if as_node:
            self.feature("constant-node")
            self.nodes.append(helper.make_node("Constant", [], [tensor.name],
                                               value=numpy_helper.from_array(value, tensor.name)))
        else:
            self.initializers.append(numpy_helper.from_array(value, tensor.name))
            if node is None and self.chance(0.2):
                self.feature("duplicate-constant")
                twin = Tensor(self.fresh("c"), value.dtype, value.shape, value.shape, bound, True, value)
                self.initializers.append(numpy_helper.from_array(value.copy(), twin.name))
                self.constants.append(twin)
                tensor = twin if self.chance(0.5) else tensor
        self.constants.append(tensor)
        if pool:
            self.pool.append(tensor)
        return tensor

    def ints(self, values: Sequence[int] | int) -> Tensor:
        """An int64 constant (shapes, axes, pads, indices): never folded twice the same way."""
        return self.const(np.asarray(values, dtype=np.int64), node=self.chance(0.1))

    # ------------------------------------------------------------------ undo
    def snapshot(self) -> tuple[int, int, int, int, int, dict[str, int], int]:
        return (len(self.nodes), len(self.initializers), len(self.inputs), len(self.pool), len(self.constants),
                dict(self.uses), len(self.features))

    def rollback(self, snap: tuple[int, int, int, int, int, dict[str, int], int]) -> None:
        """Undo everything made since `snap` (an action that raised Skip half way)."""
        nodes, inits, inputs, pool, constants, uses, features = snap
        del self.nodes[nodes:]
        del self.initializers[inits:]
        for t in self.inputs[inputs:]:
            self.feeds.pop(t.name, None)
        del self.inputs[inputs:]
        del self.pool[pool:]
        del self.constants[constants:]
        self.uses = uses
        del self.features[features:]

    # ------------------------------------------------------------------ nodes
    def node(self, op: str, inputs: Sequence[Tensor | None], outputs: Sequence[Tensor | dict[str, Any]],
             domain: str = "", pool: bool = True, **attrs: Any) -> list[Tensor]:
        """Emit `op`; each output is a Tensor spec (its name is made here) or a dict of Tensor
        fields. Outputs join the pool unless `pool` is false."""
        first = next((t for t in inputs if t is not None), None)
        if first is not None and op in UNSUPPORTED.get(first.dtype, ()):
            raise Skip(f"onnxruntime has no {op} for {first.dtype}")
        if self.opset < OPSET_MIN.get(op, 0):
            raise Skip(f"{op} needs opset {OPSET_MIN[op]}")
        made: list[Tensor] = []
        for spec in outputs:
            fields = spec if isinstance(spec, dict) else dict(spec.__dict__)
            fields = {**fields, "name": self.fresh(op.lower())}
            fields.setdefault("exact", False)
            fields.setdefault("value", None)
            fields["value"] = None
            made.append(Tensor(**fields))
        names = [t.name if t is not None else "" for t in inputs]
        for t in inputs:
            if t is not None:
                self.uses[t.name] = self.uses.get(t.name, 0) + 1
        self.nodes.append(helper.make_node(op, names, [t.name for t in made], name=self.fresh("n"),
                                           domain=domain, **attrs))
        if pool:
            self.pool.extend(made)
        return made

    def like(self, t: Tensor, **changes: Any) -> dict[str, Any]:
        """Output fields equal to `t`'s except `changes` (never its value or name)."""
        fields = {k: v for k, v in t.__dict__.items() if k not in ("name", "value")}
        fields.update(changes)
        return fields

    def operands(self, predicate: Callable[[Tensor], bool], prefer_fresh: float = 0.0) -> list[Tensor]:
        """Pool tensors that satisfy `predicate`, the ones nothing reads yet first (half the
        time), so that most of what is built ends up used."""
        found = [t for t in self.pool if predicate(t)]
        if not found or self.chance(prefer_fresh):
            return []
        unused = [t for t in found if not self.uses.get(t.name)]
        if unused and self.chance(0.6):
            return unused
        return found

    def choose(self, predicate: Callable[[Tensor], bool], make: Callable[[], Tensor] | None = None,
               prefer_fresh: float = 0.1) -> Tensor:
        """A pool tensor satisfying `predicate`; else `make()` (a new input), else Skip."""
        found = self.operands(predicate, prefer_fresh)
        if found:
            return self.pick(found)  # type: ignore[no-any-return]
        if make is None:
            raise Skip("no operand")
        return make()
