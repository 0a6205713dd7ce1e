"""Run the BIDS validator (``bids-validator-deno``, from the test extra) on a folder."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def validator() -> str | None:
    """The ``bids-validator-deno`` executable (beside this Python first), or ``None``."""
    here = Path(sys.executable).with_name("bids-validator-deno")
    return str(here) if here.is_file() else shutil.which("bids-validator-deno")


def bids_errors(folder: Path) -> list[str]:
    """The validator's errors for the dataset at ``folder`` (skips the test without it)."""
    exe = validator()
    if exe is None:
        pytest.skip("bids-validator-deno is not installed (pip install bids-validator-deno)")
    proc = subprocess.run(
        [exe, str(folder), "--format", "json"], capture_output=True, text=True, timeout=300
    )
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"the validator gave no JSON (rc {proc.returncode}): {proc.stderr[-2000:]}")
    return [
        f"{i['code']} {i.get('subCode') or ''} {i.get('location') or ''}".strip()
        for i in report["issues"]["issues"]
        if i["severity"] == "error"
    ]
