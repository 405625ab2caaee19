"""The minimizer on planted failures: a fake oracle that fails when a given op is present."""

from __future__ import annotations

from mlc.fuzzing import Case, generate, minimize, validate


def _ops(case: Case) -> list[str]:
    return [n.op_type for n in case.model.graph.node]


def _seed_with(op: str, nodes: int = 12) -> Case:
    for seed in range(500):
        case = generate(seed)
        if op in _ops(case) and case.node_count >= nodes:
            return case
    raise AssertionError(f"no seed below 500 has {op} among {nodes}+ nodes")


def test_shrinks_to_the_planted_op() -> None:
    case = _seed_with("Erf")
    calls = []

    def fails(candidate: Case) -> bool:
        calls.append(candidate.node_count)
        return "Erf" in _ops(candidate)

    small = minimize(case, fails)
    assert validate(small) is None
    assert "Erf" in _ops(small)
    assert small.node_count <= 2, _ops(small)  # Erf alone (a Constant at most beside it)
    assert small.node_count < case.node_count
    assert calls and max(calls) < case.node_count + 1


def test_keeps_a_failure_that_needs_two_ops_in_sequence() -> None:
    """A failure that needs a Softmax reading a MatMul keeps both (the cut feeds the rest)."""
    def chained(candidate: Case) -> bool:
        producers = {o: n.op_type for n in candidate.model.graph.node for o in n.output}
        return any(n.op_type == "Softmax" and producers.get(n.input[0]) == "MatMul"
                   for n in candidate.model.graph.node)

    case = next(c for c in (generate(s) for s in range(2000)) if chained(c) and c.node_count >= 10)
    small = minimize(case, chained)
    assert validate(small) is None and chained(small)
    assert sorted(_ops(small)) == ["MatMul", "Softmax"], _ops(small)


def test_a_case_that_never_fails_is_returned_whole() -> None:
    case = generate(3)
    small = minimize(case, lambda c: False)
    assert small.model_bytes() == case.model_bytes() or small.node_count == case.node_count


def test_budget_bounds_the_checks() -> None:
    case = _seed_with("Relu", nodes=8)
    calls = []

    def fails(candidate: Case) -> bool:
        calls.append(1)
        return True

    minimize(case, fails, max_checks=5)
    assert len(calls) <= 5
