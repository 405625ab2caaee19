"""Every test runs with IR verification after every pass run (STYLE.md: verifier always on in tests)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mlc.testing import set_verify_after_every_run


@pytest.fixture(autouse=True)
def verify_after_every_pass() -> Iterator[None]:
    previous = set_verify_after_every_run(True)
    yield
    set_verify_after_every_run(previous)
