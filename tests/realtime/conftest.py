"""Fixtures for the real-time tests."""

from __future__ import annotations

import logging
import uuid

import pytest

from rt_eeg2fmri._logging import logger


@pytest.fixture
def uid() -> str:
    """A unique stream name / source id, so parallel tests never cross."""
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def rt_log(caplog):
    """Records of the package logger (which does not propagate to the root logger)."""
    logger.addHandler(caplog.handler)
    caplog.set_level(logging.DEBUG, logger="rt_eeg2fmri")
    yield caplog
    logger.removeHandler(caplog.handler)
