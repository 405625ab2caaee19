"""Fixtures of the reliability tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.reliability.support import ForkServer


@pytest.fixture(scope="module")
def forkserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ForkServer]:
    """`mlc` processes started by forking one that has imported mlc (see forkserver.py)."""
    server = ForkServer(tmp_path_factory.mktemp("forkserver"))
    yield server
    server.close()
