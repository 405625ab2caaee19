"""One target's op support table: (domain, op_type) -> the opset ranges it builds, and the verdict
for one node at the model's opset.

A table answers `check(domain, op_type, opset, node)` with a `Verdict`: supported, conditional (it
builds if a stated restriction holds that mlc could not verify), unsupported (with the reason), or
unknown (the facts are not available on this machine). The base class looks the op up in `ops`;
a target's subclass adds what its library tells (element types, attributes, constant operands).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from mlc.ir.core import Node
from mlc.ir.dtypes import DType
from mlc.ir.types import TensorType

OPEN = None  # an open upper bound of an opset range


class Status(enum.StrEnum):
    SUPPORTED = "supported"
    CONDITIONAL = "conditional"  # builds if a restriction holds that mlc did not verify
    UNSUPPORTED = "unsupported"
    UNKNOWN = "unknown"  # the facts are not available here

    @property
    def blocks(self) -> bool:
        """Whether a backend refuses the node before building."""
        return self is Status.UNSUPPORTED


# worst first: the order in which a mixed op type reports its nodes
SEVERITY = (Status.UNSUPPORTED, Status.UNKNOWN, Status.CONDITIONAL, Status.SUPPORTED)


@dataclass(frozen=True)
class Verdict:
    status: Status
    reason: str = ""  # why not, or the condition / how it is built

    @classmethod
    def ok(cls, note: str = "") -> Verdict:
        return cls(Status.SUPPORTED, note)

    @classmethod
    def no(cls, reason: str) -> Verdict:
        return cls(Status.UNSUPPORTED, reason)


@dataclass(frozen=True)
class OpRange:
    """Opsets `since..until` (inclusive; until None: open) in which the op builds, with a note on
    conditions (element types, restrictions) where the source states one."""

    since: int
    until: int | None = OPEN
    note: str = ""

    def covers(self, version: int) -> bool:
        return self.since <= version and (self.until is None or version <= self.until)

    def text(self) -> str:
        return f"{self.since}.." if self.until is None else f"{self.since}..{self.until}"


def domain_name(domain: str) -> str:
    return "ai.onnx" if domain in ("", "ai.onnx") else domain


def op_text(domain: str, op_type: str) -> str:
    """`Conv` for an ai.onnx op, `com.microsoft Foo` for another domain's."""
    return op_type if domain in ("", "ai.onnx") else f"{domain} {op_type}"


def tensor_dtype(value: object) -> DType | None:
    t = getattr(value, "type", None)
    return t.dtype if isinstance(t, TensorType) and t.dtype != DType.UNDEFINED else None


@dataclass
class SupportTable:
    """The facts of one target. `opsets`: per domain, the model opsets the target accepts at all
    (low, high or None); `known` False: no facts here (every node is unknown, `unknown_reason` says
    why); `inlines_functions`: model-local functions are inlined (their bodies are checked) rather
    than refused."""

    target: str
    source: str
    ops: dict[tuple[str, str], tuple[OpRange, ...]] = field(default_factory=dict)
    opsets: dict[str, tuple[int, int | None]] = field(default_factory=dict)
    known: bool = True
    unknown_reason: str = ""
    inlines_functions: bool = True
    notes: list[str] = field(default_factory=list)

    def check(self, domain: str, op_type: str, opset: int | None, node: Node | None = None) -> Verdict:
        """The verdict for `op_type` of `domain` at the model's `opset` of that domain (`node`, when
        given, lets the table check element types, attributes and constant operands)."""
        domain = "" if domain == "ai.onnx" else domain
        if not self.known:
            return Verdict(Status.UNKNOWN, self.unknown_reason)
        if opset is None:
            return Verdict(Status.UNKNOWN, f"the model imports no {domain_name(domain)} opset")
        accepted = self.opsets.get(domain)
        if accepted is not None:
            low, high = accepted
            if opset < low:
                return Verdict.no(f"{domain_name(domain)} opset {opset} below {low}")
            if high is not None and opset > high:
                return Verdict.no(f"{domain_name(domain)} opset {opset} above {high}{self.opset_hint(domain)}")
        return self.check_op(domain, op_type, opset, node)

    def opset_hint(self, domain: str) -> str:
        """Added to an `opset above` refusal (a later release that takes it, say)."""
        return ""

    def check_op(self, domain: str, op_type: str, opset: int, node: Node | None) -> Verdict:
        ranges = self.ops.get((domain, op_type))
        if not ranges:
            return Verdict.no(self.missing(domain, op_type))
        for r in ranges:
            if r.covers(opset):
                return Verdict(Status.CONDITIONAL if r.note else Status.SUPPORTED, r.note)
        return Verdict.no(out_of_range(opset, ranges))

    def missing(self, domain: str, op_type: str) -> str:
        return "not in table"


def out_of_range(opset: int, ranges: tuple[OpRange, ...]) -> str:
    first = min(r.since for r in ranges)
    if opset < first:
        return f"opset {opset} below {first}"
    return f"opset {opset} outside {', '.join(r.text() for r in ranges)}"
