"""Fixtures of the recording tests: the real service's (tests/integration)."""

from __future__ import annotations

from tests.integration.conftest import run_service

__all__ = ["run_service"]
