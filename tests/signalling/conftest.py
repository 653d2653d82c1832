"""Signalling tests run every txaio timer (client side included) on the test's clock."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import txaio

from tests.signalling.harness import World


@pytest.fixture
def world() -> Iterator[World]:
    """A fresh in-memory world whose txaio timers use its fake clock."""
    old = txaio.config.loop  # type: ignore[attr-defined]
    w = World()
    txaio.config.loop = w.clock  # type: ignore[attr-defined]
    try:
        yield w
    finally:
        txaio.config.loop = old  # type: ignore[attr-defined]
