"""Symbolic dims: `Expr`, a polynomial with integer coefficients over named dims, canonical.

A dim is an `Expr` such as `batch`, `2*batch*sequence` or `17`. Expressions are canonical, so two
dims are provably equal exactly when their expressions are equal. Atoms are the symbolic names of
the graph's types (`batch`, `sequence`, the `unk__N` names onnx's shape inference makes up), and
one fresh atom per unknown dim (`?N`), equal only to itself. This is the algebra alone: what a
graph's values hold is `mlc.ir.shape_analysis`.
"""

from __future__ import annotations

from collections.abc import Iterable

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


__all__ = ["ONE", "ZERO", "Expr", "Mono"]
