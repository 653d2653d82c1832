"""Fixtures of the media-node tests: real Janus processes on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.media.janus_process import JanusProcess


@pytest.fixture
def janus(tmp_path: Path) -> Iterator[JanusProcess]:
    node = JanusProcess(tmp_path / "janus-a", "node-a").start()
    try:
        yield node
    finally:
        node.stop()
