"""Golden replay (tests/golden_replay.py): what the pipelines produce for the bundled models and
onnx's light models is exactly the checked-in text; a change must come with its updated golden
file (`python -m tests.golden_replay --update`, then review the diff)."""

from __future__ import annotations

import pytest

from tests.golden_replay import cases, difference, golden_path


@pytest.mark.parametrize(("model", "pipeline"), cases())
def test_pipeline_output_is_the_golden_text(model: str, pipeline: str) -> None:
    assert golden_path(model, pipeline).is_file(), "no golden file: python -m tests.golden_replay --update"
    diff = difference(model, pipeline)
    assert diff is None, f"{model} {pipeline} changed (intended? python -m tests.golden_replay --update):\n{diff}"
