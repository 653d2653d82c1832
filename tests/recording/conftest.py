"""Fixtures of the recording tests: the real service (tests/integration) and a real
recording made once per session (tests/recording/media.py)."""

from __future__ import annotations

from tests.integration.conftest import run_service
from tests.recording.media import recorded

__all__ = ["recorded", "run_service"]
