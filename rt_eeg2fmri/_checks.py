"""Small validators shared by the package; errors name the parameter, the expectation and the value."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np


def check_positive(value: float, name: str) -> float:
    """Return ``value`` as float if it is finite and > 0, else raise ``ValueError``."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"'{name}' must be a number, got {value!r}.") from None
    if not np.isfinite(out) or out <= 0:
        raise ValueError(f"'{name}' must be positive and finite, got {name}={value!r}.")
    return out


def check_option(value: str, name: str, allowed: Iterable[str]) -> str:
    """Raise ``ValueError`` unless ``value`` is one of ``allowed``."""
    allowed = tuple(allowed)
    if value not in allowed:
        raise ValueError(f"'{name}' must be one of {', '.join(map(repr, allowed))}, got {value!r}.")
    return value


def check_file(path: str | Path, what: str) -> Path:
    """Return ``path`` as a ``Path`` if it is an existing file, else raise ``FileNotFoundError``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: '{path}'.")
    return path


def check_ch_names(ch_names: Iterable[str], *, source: str = "ch_names") -> list[str]:
    """Return channel names as a list; raise on empty, non-string or duplicate (case-insensitive)."""
    names = list(ch_names)
    if not names:
        raise ValueError(f"{source}: expected at least one channel name, got none.")
    seen: dict[str, str] = {}
    for name in names:
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"{source}: channel names must be non-empty strings, got {name!r}.")
        key = name.strip().lower()
        if key in seen:
            raise ValueError(
                f"{source}: duplicate channel name {name!r} (same as {seen[key]!r}, "
                "compared case-insensitively)."
            )
        seen[key] = name
    return names


def check_bids_label(value, name: str) -> str:
    """A BIDS label (letters and digits only), else ``ValueError`` naming ``name``."""
    import re

    value = str(value)
    if not re.fullmatch(r"[A-Za-z0-9]+", value):
        raise ValueError(f"'{name}' must be a BIDS label (letters and digits only), got {value!r}.")
    return value
