"""The pass API: declaration, options, numerics contract, rewrite counting, registry.

A pass declares itself once (MLIR's Passes.td is the model)::

    @register_pass
    class EliminateIdentity(Pass):
        name = "eliminate-identity"
        description = "Remove Identity and inference-mode Dropout nodes"
        numerics = Numerics.EXACT
        statistics = ("removed",)

        def run(self, graph: Graph, ctx: PassContext) -> bool:
            ...
            if not ctx.rewrite("identity"):   # counted; False once --max-rewrites is reached
                return changed

`mlc passes`, `--help`, reports and `mlc debug` all read these declarations. Every pattern
application goes through `ctx.rewrite(rule)`, which counts it and lets the debugger stop a pass
after N rewrites to find the first one that breaks the numbers. Nodes a pass creates are stamped
with their provenance through `ctx.created(...)`.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from mlc.errors import BadInputError, InternalError, VerificationError, did_you_mean
from mlc.ir.core import Graph, Node
from mlc.ir.verifier import verify
from mlc.numerics.contract import Numerics  # declared by every pass; defined where checks interpret it

# When set (the test kit's autouse fixture does), every Pass.run verifies the IR on return, even
# when a test calls run() directly instead of going through the PassManager.
_VERIFY_AFTER_EVERY_RUN = False


def set_verify_after_every_run(enabled: bool) -> bool:
    """Turn verification after every pass run on or off; returns the previous setting."""
    global _VERIFY_AFTER_EVERY_RUN
    previous, _VERIFY_AFTER_EVERY_RUN = _VERIFY_AFTER_EVERY_RUN, enabled
    return previous


@dataclass(frozen=True)
class PassOption:
    """A typed option with a default and help text (`--pass-option NAME.OPTION=VALUE`)."""

    name: str
    type: type
    default: Any
    help: str

    def parse(self, text: str) -> Any:
        if self.type is bool:
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise BadInputError(f"option {self.name}: expected true/false, got {text!r}")
        try:
            return self.type(text)
        except ValueError:
            raise BadInputError(f"option {self.name}: expected {self.type.__name__}, got {text!r}") from None


@dataclass
class PassContext:
    """Per-run state handed to a pass: rewrite budget and counts, statistics, remarks."""

    pass_name: str
    max_rewrites: int | None = None
    rewrites: int = 0
    rules: Counter[str] = field(default_factory=Counter)
    stats: Counter[str] = field(default_factory=Counter)
    remarks: list[str] = field(default_factory=list)
    last_rule: str | None = None

    @property
    def exhausted(self) -> bool:
        return self.max_rewrites is not None and self.rewrites >= self.max_rewrites

    def rewrite(self, rule: str) -> bool:
        """Ask to apply one rewrite of `rule`: False (and nothing counted) once the budget is spent."""
        if self.exhausted:
            return False
        self.rewrites += 1
        self.rules[rule] += 1
        self.last_rule = rule
        return True

    def remark(self, message: str) -> None:
        """Why a rule did not apply (`mlc debug -v` shows these)."""
        self.remarks.append(message)

    def created(self, node: Node, replaced: Iterable[Node] = (), rule: str | None = None) -> Node:
        """Stamp provenance on a node the pass made: the source ONNX nodes of those it replaces,
        and `pass/rule` as its creator."""
        sources: dict[str, None] = {}
        for old in replaced:
            for src in old.source or ((old.name,) if old.name else ()):
                sources[src] = None
        node.source = tuple(sources)
        node.created_by = f"{self.pass_name}/{rule or self.last_rule or 'rewrite'}"
        return node


class Pass:
    """Base class of all passes. Subclasses set the class attributes and implement `run`."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    numerics: ClassVar[Numerics] = Numerics.EXACT
    options: ClassVar[tuple[PassOption, ...]] = ()
    statistics: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "run" in cls.__dict__:
            original = cls.__dict__["run"]

            @functools.wraps(original)
            def run(self: Pass, graph: Graph, ctx: PassContext) -> bool:
                changed = original(self, graph, ctx)
                if _VERIFY_AFTER_EVERY_RUN:
                    try:
                        verify(graph)
                    except VerificationError as error:
                        raise VerificationError(f"after pass {self.spec()}: {error}") from error
                return changed

            cls.run = run  # type: ignore[method-assign]

    def __init__(self, **values: Any) -> None:
        known = {o.name: o for o in self.options}
        for key in values:
            if key not in known:
                raise BadInputError(f"pass {self.name}: unknown option {key!r} "
                                    f"(options: {', '.join(known) or 'none'})")
        self.values: dict[str, Any] = {o.name: values.get(o.name, o.default) for o in self.options}

    def option(self, name: str) -> Any:
        return self.values[name]

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        """Mutate `graph` through the IR API; return whether anything changed."""
        raise NotImplementedError

    def spec(self) -> str:
        """`name` or `name{opt=value,...}` for options that differ from their default."""
        changed = {k: v for k, v in self.values.items()
                   if v != next(o.default for o in self.options if o.name == k)}
        if not changed:
            return self.name
        return self.name + "{" + ",".join(f"{k}={v}" for k, v in sorted(changed.items())) + "}"


_REGISTRY: dict[str, type[Pass]] = {}


def register_pass(cls: type[Pass]) -> type[Pass]:
    """Class decorator: make a pass available by its name."""
    if not cls.name or not cls.description:
        raise TypeError(f"{cls.__name__}: a pass declares a name and a one-line description")
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise TypeError(f"pass name {cls.name!r} is registered twice ({_REGISTRY[cls.name].__name__}, {cls.__name__})")
    if not isinstance(cls.numerics, Numerics):
        raise TypeError(f"{cls.__name__}: numerics must be a Numerics value")
    _REGISTRY[cls.name] = cls
    return cls


# How the built-in passes get registered: importing `mlc.passes` (a layer above this one, which
# imports this module) registers every pass module in it. The package root (`mlc/__init__.py`,
# the composition root) installs the loader, so that this module never imports the passes and
# they are imported only when a registry lookup first needs them.
_pass_loader: Callable[[], None] | None = None


def set_pass_loader(loader: Callable[[], None]) -> None:
    """Install what registers the built-in passes (called once, by the package root)."""
    global _pass_loader
    _pass_loader = loader


def _load_builtin_passes() -> None:
    if _pass_loader is None:
        raise InternalError("pass registry: no pass loader installed (mlc/__init__.py installs it)")
    _pass_loader()


def registered_passes() -> dict[str, type[Pass]]:
    _load_builtin_passes()
    return dict(sorted(_REGISTRY.items()))


def parse_pass_spec(spec: str) -> Pass:
    """`name` or `name{opt=value,opt=value}` → a configured pass instance."""
    _load_builtin_passes()
    spec = spec.strip()
    name, _, rest = spec.partition("{")
    cls = _REGISTRY.get(name.strip())
    if cls is None:
        raise BadInputError(f"unknown pass {name.strip()!r}" + (did_you_mean(name.strip(), _REGISTRY)
                                                                 or "; `mlc passes` lists them"))
    values: dict[str, Any] = {}
    if rest:
        if not rest.endswith("}"):
            raise BadInputError(f"pass spec {spec!r}: options end with '}}'")
        options = {o.name: o for o in cls.options}
        items: list[str] = []
        for part in filter(None, (p.strip() for p in rest[:-1].split(","))):
            if "=" not in part and items:  # a list value: `ops=Celu,Mish` continues the previous option
                items[-1] += "," + part
            else:
                items.append(part)
        for item in items:
            key, eq, text = item.partition("=")
            if not eq or key.strip() not in options:
                raise BadInputError(f"pass {cls.name}: bad option {item!r} (options: {', '.join(options) or 'none'})")
            values[key.strip()] = options[key.strip()].parse(text.strip())
    return cls(**values)


def split_pass_list(text: str) -> list[str]:
    """Split `a,b{x=1,y=2},c` at the commas that are not inside braces."""
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for char in text:
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if current:
        parts.append("".join(current))
    return [p.strip() for p in parts if p.strip()]
