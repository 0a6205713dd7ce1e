"""Fixtures for the real-time tests."""

from __future__ import annotations

import uuid

import pytest


@pytest.fixture
def uid() -> str:
    """A unique stream name / source id, so parallel tests never cross."""
    return f"test-{uuid.uuid4().hex[:12]}"
