"""The layer contract: a module imports only its own layer and the layers below, and no private
name (`_x`) of another module.

    core  <-  ir  <-  onnx_io  <-  numerics  <-  pass API  <-  passes  <-  pipeline  <-  backends
          <-  driver  <-  api  <-  cli

Every import counts, function-level ones too (mlc imports heavy libraries lazily, and a lazy
upward import is a cycle all the same). The package root `mlc/__init__.py` is the composition
root: it installs the hooks through which a lower layer reaches what a higher one provides (the
pass loader of `mlc.pass_api`, the target resolver of `mlc.pipelines`), so it is exempt.
import-linter cannot see this project's layout (`mlc.passes` and `mlc.backends` live outside the
`mlc` folder, mapped by setuptools' package-dir), so the contract is checked here, with `ast`.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"mlc": ROOT / "compiler", "mlc.passes": ROOT / "passes", "mlc.backends": ROOT / "backends"}

# lowest first; a module belongs to the layer of its longest listed prefix
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("core", ("mlc.errors", "mlc.hashing", "mlc.console", "mlc.atomic_rename", "mlc.flush", "mlc.gc_pause",
              "mlc.offline")),
    ("ir", ("mlc.ir",)),
    ("onnx_io", ("mlc.onnx_io",)),
    ("numerics", ("mlc.numerics",)),
    ("pass API", ("mlc.pass_api", "mlc.rewrite")),
    ("passes", ("mlc.passes", "mlc.pass_manager", "mlc.quantize", "mlc.prune", "mlc.output_guard",
                "mlc.temp_names", "mlc.progress")),
    ("pipeline", ("mlc.pipelines", "mlc.runner", "mlc.specialize", "mlc.instruments", "mlc.testing")),
    ("backends", ("mlc.backends", "mlc.targets", "mlc.op_support")),
    ("driver", ("mlc.driver", "mlc.debugger", "mlc.benchmark", "mlc.tuning", "mlc.conformance", "mlc.report",
                "mlc.summary", "mlc.artifact", "mlc.artifact_check", "mlc.feeds", "mlc.fuzzing",
                "mlc.quantize.search", "mlc.prune.search", "mlc.prune.latency", "mlc.prune.record")),
    ("api", ("mlc.api",)),
    ("cli", ("mlc.cli", "mlc.debug_view")),
]


def layer_of(module: str) -> int | None:
    best: tuple[int, int] | None = None
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and (best is None or len(prefix) > best[1]):
                best = (index, len(prefix))
    return None if best is None else best[0]


def sources() -> Iterator[tuple[str, str]]:
    """(module name, source) of every module of the three folders."""
    for package, folder in FOLDERS.items():
        for path in sorted(folder.rglob("*.py")):
            parts = [p for p in path.relative_to(folder).with_suffix("").parts if p != "__init__"]
            if package == "mlc" and parts and parts[0] in ("passes", "backends"):
                continue
            yield ".".join([package, *parts]), path.read_text()


def violations(modules: Iterator[tuple[str, str]]) -> list[str]:
    found = []
    for module, source in modules:
        mine = layer_of(module)
        if module == "mlc" or mine is None:
            continue
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
                private = [a.name for a in node.names if node.module.startswith("mlc") and node.module != module
                           and a.name.startswith("_") and not a.name.startswith("__")]
            elif isinstance(node, ast.Import):
                targets, private = [a.name for a in node.names], []
            else:
                continue
            for name in private:
                found.append(f"{module}:{node.lineno} imports the private name {name} of {node.module}")
            upward = [t for t in targets if t.startswith("mlc.") and (layer_of(t) or 0) > mine]
            if upward:
                target = upward[0]
                found.append(f"{module}:{node.lineno} ({LAYERS[mine][0]}) imports {target} "
                             f"({LAYERS[layer_of(target) or 0][0]}), a layer above")
    return found


def test_every_module_is_in_a_layer() -> None:
    assert [m for m, _ in sources() if m != "mlc" and layer_of(m) is None] == []


def test_no_module_imports_a_layer_above_or_a_private_name() -> None:
    assert violations(sources()) == []


def test_a_deliberate_upward_import_is_caught() -> None:
    """The contract fails on the very thing it forbids: the IR importing the CLI, lazily."""
    planted = dict(sources())
    planted["mlc.ir.core"] += "\n\ndef _late() -> None:\n    from mlc.cli import main  # noqa\n"
    found = violations(iter(planted.items()))
    assert len(found) == 1 and "mlc.ir.core" in found[0] and "(ir) imports mlc.cli (cli), a layer above" in found[0]
    planted = dict(sources())
    planted["mlc.numerics.compare"] += "\nfrom mlc.onnx_io.exporter import _private_helper  # noqa\n"
    assert any("private name _private_helper" in v for v in violations(iter(planted.items())))
