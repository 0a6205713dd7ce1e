"""Whole-file outputs are replaced atomically: a failed write leaves the earlier file."""

from __future__ import annotations

import pytest

from rt_eeg2fmri._io import atomic_path, write_text_atomic


def test_a_failed_write_leaves_the_earlier_file_and_no_temporary(tmp_path):
    path = write_text_atomic(tmp_path / "report.md", "the earlier report\n")
    with pytest.raises(RuntimeError), atomic_path(path) as tmp:
        tmp.write_text("half a new rep")
        raise RuntimeError("disk full")  # anything that stops the writer midway
    assert path.read_text() == "the earlier report\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.md"]
    write_text_atomic(path, "the new report\n")
    assert path.read_text() == "the new report\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.md"]


def test_a_full_disk_mid_write_is_an_error_and_loses_nothing(tmp_path):
    """`ulimit -f` in a child: the report cannot be written; the earlier one stays whole."""
    import subprocess
    import sys

    path = write_text_atomic(tmp_path / "metrics.json", '{"r": 0.05}\n')
    code = (
        "import resource, sys\n"
        "from rt_eeg2fmri._io import write_text_atomic\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (64, resource.RLIM_INFINITY))\n"
        "write_text_atomic(sys.argv[1], 'x' * 10000)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True)
    assert proc.returncode != 0 and "File too large" in proc.stderr
    assert path.read_text() == '{"r": 0.05}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]
