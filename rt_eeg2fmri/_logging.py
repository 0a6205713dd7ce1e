"""The package logger.

One logger, ``rt_eeg2fmri``; its level comes from :func:`set_log_level` or the
``RT_EEG2FMRI_LOG_LEVEL`` environment variable (default ``INFO``).
"""

from __future__ import annotations

import logging
import os
import sys

logger = logging.getLogger("rt_eeg2fmri")


def _init_logger() -> None:
    if logger.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    logger.propagate = False
    set_log_level(os.environ.get("RT_EEG2FMRI_LOG_LEVEL", "INFO"))


def set_log_level(level: str | int) -> None:
    """Set the package's log level.

    Parameters
    ----------
    level : str | int
        A :mod:`logging` level name (``"DEBUG"``, ``"INFO"``, ``"WARNING"``, ...) or number.
    """
    if isinstance(level, str):
        name = level.upper()
        if name not in logging.getLevelNamesMapping():
            raise ValueError(
                f"'level' must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL, got {level=}."
            )
        level = logging.getLevelNamesMapping()[name]
    logger.setLevel(level)


_init_logger()


_LOGGED_ONCE: set = set()


def log_once(key, message: str, *args, level: int = logging.WARNING) -> None:
    """Log ``message`` the first time ``key`` is seen in this process.

    For facts about a file that several readers meet (a run's headers are read by
    ``header()`` and ``load()``, a pooled TR by every run of a cache).
    """
    if key not in _LOGGED_ONCE:
        _LOGGED_ONCE.add(key)
        logger.log(level, message, *args)
