"""The pass contract enforced by the manager, the registry, pipelines and instruments."""

from __future__ import annotations

import io

import pytest

from mlc.errors import BadInputError, VerificationError
from mlc.instruments import IRDiff, IRDumper, PrintAfterChange
from mlc.ir.core import Graph, Node
from mlc.pass_api import Numerics, Pass, PassContext, PassOption, parse_pass_spec, registered_passes, split_pass_list
from mlc.pass_manager import PassFailedError, PassManager
from mlc.pipelines import PIPELINES, build_pipeline
from mlc.testing import as_graph, run_pass

GRAPH = '''graph "g" (%x: f32[2]) {
  %a: f32[2] = Identity(%x)
  %b: f32[2] = Identity(%a)
  %y: f32[2] = Relu(%b)
  return %y
}'''


class ReturnsNone(Pass):
    name = "test-returns-none"
    description = "returns None"

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        return None  # type: ignore[return-value]


class Raises(Pass):
    name = "test-raises"
    description = "raises"

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        raise KeyError("boom")


class BreaksIR(Pass):
    name = "test-breaks-ir"
    description = "reads a value before it is defined"

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        ctx.rewrite("break")
        last = graph.nodes[-1]
        graph.insert_before(graph.nodes[0], Node("Neg", [last.outputs[0]], ["early"], name="early"))
        return True


class Uncounted(Pass):
    name = "test-uncounted"
    description = "changes without counting"

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        return True


def test_manager_rejects_a_non_bool_result() -> None:
    manager = PassManager([parse_pass_spec("eliminate-identity"), ReturnsNone()])
    with pytest.raises(PassFailedError, match=r"pass #1 test-returns-none \(after eliminate-identity\) returned None"):
        manager.run(as_graph(GRAPH))


def test_exception_names_the_pass_and_the_ones_before() -> None:
    manager = PassManager([parse_pass_spec("cse"), parse_pass_spec("dce"), Raises()])
    with pytest.raises(PassFailedError, match=r"pass #2 test-raises \(after cse, dce\) raised KeyError"):
        manager.run(as_graph(GRAPH))
    assert PassFailedError.exit_code == 70


def test_broken_ir_is_caught_after_the_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    from mlc import pass_api

    monkeypatch.setattr(pass_api, "_VERIFY_AFTER_EVERY_RUN", False)  # let the manager catch it
    with pytest.raises(PassFailedError, match=r"test-breaks-ir .*broke the IR: .*node early"):
        PassManager([BreaksIR()]).run(as_graph(GRAPH))


def test_the_test_kit_verifies_every_direct_run() -> None:
    with pytest.raises(VerificationError, match="after pass test-breaks-ir"):
        BreaksIR().run(as_graph(GRAPH), PassContext("test-breaks-ir"))


def test_a_change_must_be_counted() -> None:
    with pytest.raises(PassFailedError, match="without counting a rewrite"):
        PassManager([Uncounted()]).run(as_graph(GRAPH))


def test_records_and_max_rewrites() -> None:
    graph = as_graph(GRAPH)
    records = PassManager(build_pipeline(passes="eliminate-identity,dce"), max_rewrites={0: 1}).run(graph)
    first = records[0]
    assert (first.name, first.changed, first.rewrites, first.rules, first.nodes_before, first.nodes_after) == (
        "eliminate-identity", True, 1, {"identity": 1}, 3, 2)
    assert first.last_rule == "identity"
    assert records[1].changed is False
    _, ctx = run_pass("eliminate-identity", graph)
    assert ctx.rewrites == 1


def test_registry_declarations_are_complete() -> None:
    passes = registered_passes()
    assert {"dce", "cse", "eliminate-identity", "dedupe-constants"} <= set(passes)
    for name, cls in passes.items():
        assert cls.name == name and cls.description and isinstance(cls.numerics, Numerics)
    for level, specs in PIPELINES.items():
        assert all(s in passes for s in specs), level


def test_pass_specs_and_options() -> None:
    class WithOption(Pass):
        name = "test-with-option"
        description = "has options"
        options = (PassOption("limit", int, 10, "a limit"), PassOption("on", bool, True, "a switch"))

        def run(self, graph: Graph, ctx: PassContext) -> bool:
            return False

    from mlc.pass_api import register_pass

    register_pass(WithOption)
    configured = parse_pass_spec("test-with-option{limit=3,on=false}")
    assert configured.values == {"limit": 3, "on": False}
    assert configured.spec() == "test-with-option{limit=3,on=False}"
    assert split_pass_list("a,test-with-option{limit=3,on=false},b") == ["a", "test-with-option{limit=3,on=false}", "b"]
    with pytest.raises(BadInputError, match="unknown pass 'nope'"):
        parse_pass_spec("nope")
    with pytest.raises(BadInputError, match="bad option"):
        parse_pass_spec("test-with-option{size=1}")
    with pytest.raises(BadInputError, match="expected int"):
        parse_pass_spec("test-with-option{limit=x}")
    built = build_pipeline(passes="cse,test-with-option", options=["test-with-option.limit=7"])
    assert built[1].values["limit"] == 7


def test_pipeline_flags() -> None:
    assert [p.name for p in build_pipeline("O1", disabled=["cse"])] == [
        s for s in PIPELINES["O1"] if s != "cse"]
    assert build_pipeline("O0") == []
    with pytest.raises(BadInputError, match="unknown pipeline"):
        build_pipeline("O9")
    with pytest.raises(BadInputError, match="not in the pipeline"):
        build_pipeline("O1", disabled=["nope"])
    with pytest.raises(BadInputError, match="either"):
        build_pipeline("O1", "cse")


def test_instruments_dump_print_and_diff(tmp_path) -> None:
    out, diff = io.StringIO(), io.StringIO()
    graph = as_graph(GRAPH)
    PassManager(build_pipeline(passes="eliminate-identity,cse"),
                [IRDumper(tmp_path), PrintAfterChange(out), IRDiff(diff)]).run(graph)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["000_input.onnx", "000_input.txt", "001_eliminate-identity.onnx", "001_eliminate-identity.txt",
                     "002_cse.onnx", "002_cse.txt"]
    assert "Identity" not in (tmp_path / "001_eliminate-identity.txt").read_text()
    assert "IR after pass #0 eliminate-identity" in out.getvalue() and "pass #1" not in out.getvalue()
    assert "-  %a: f32[2] = Identity(%x)" in diff.getvalue()


def test_shorthand_flags_apply_only_where_their_pass_runs() -> None:
    from mlc.cli import _pass_options, build_parser

    args = build_parser().parse_args(["debug", "m.onnx", "--fold-limit", "10", "--prune-inputs"])
    options = _pass_options(args)
    pipeline = build_pipeline("O1", None, (), options)
    fold = next(p for p in pipeline if p.name == "fold-constants")
    dce = next(p for p in pipeline if p.name == "dce")
    assert fold.option("limit") == 10 and dce.option("prune_inputs") is True
    assert [p.name for p in build_pipeline(None, "cse", (), options)] == ["cse"]  # no error without them


def test_list_options_may_use_commas() -> None:
    from mlc.pass_api import parse_pass_spec

    assert parse_pass_spec("expand-functions{ops=Celu,Mish}").option("ops") == "Celu,Mish"
    values = parse_pass_spec("fold-constants{limit=10,growth=0}").values
    assert (values["limit"], values["growth"]) == (10, 0)
