from __future__ import annotations

import pytest

from rt_eeg2fmri.sim import PRESETS, resolve_config, simulate_dataset
from rt_eeg2fmri.sim.presets import CHANNELS_16, CHANNELS_34


def test_presets_have_the_documented_shapes():
    tiny, small, odd = (resolve_config(p) for p in ("tiny", "small", "oddball"))
    assert (tiny.n_subjects, tiny.n_runs, tiny.n_volumes, len(tiny.ch_names), tiny.sfreq) == (
        2, 2, 40, 16, 250.0,
    )  # fmt: skip
    assert (small.n_subjects, small.n_runs, small.n_volumes, len(small.ch_names)) == (4, 2, 120, 34)
    assert (odd.n_subjects, odd.n_runs, odd.n_volumes, odd.sfreq) == (16, 6, 170, 1000.0)
    assert all(resolve_config(p).t_r == 2.0 for p in PRESETS)
    assert odd.runs() == [
        ("auditory", 1), ("visual", 1), ("auditory", 2), ("visual", 2), ("auditory", 3),
        ("visual", 3),
    ]  # fmt: skip


def test_overrides_and_channel_sets():
    cfg = resolve_config("tiny", subjects=3, runs=1, volumes=7, sfreq=500, channels="fp1, CZ,oz")
    assert (cfg.n_subjects, cfg.n_runs, cfg.n_volumes, cfg.sfreq) == (3, 1, 7, 500.0)
    assert cfg.ch_names == ("Fp1", "Cz", "Oz")  # montage spelling
    assert resolve_config("tiny", channels=34).ch_names == CHANNELS_34
    assert resolve_config("small", channels="16").ch_names == CHANNELS_16
    assert resolve_config("tiny", volumes=None).n_volumes == 40  # None = keep the preset's


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        (dict(preset="huge"), ValueError, "unknown simulation preset 'huge'"),
        (dict(sfreq=0), ValueError, "'sfreq' must be positive"),
        (dict(sfreq=-250), ValueError, "'sfreq' must be positive"),
        (dict(sfreq=50), ValueError, "'sfreq' must be at least 100 Hz"),
        (dict(channels=["Fp1", "Cz", "Foo9"]), ValueError, r"unknown channel name\(s\) \['Foo9'\]"),
        (dict(channels=["Fp1", "fp1"]), ValueError, "duplicate channel name"),
        (dict(channels=20), ValueError, "no built-in set of 20 channels"),
        (dict(subjects=0), ValueError, "'subjects' must be at least 1"),
        (dict(volumes=2.5), TypeError, "'volumes' must be an integer"),
        (dict(t_r=0), ValueError, "'t_r' must be positive"),
        (dict(lead_in=-1), ValueError, "'lead_in' must be >= 0"),
        (dict(mat_version="6"), ValueError, "'mat_version' must be one of"),
        (dict(colour="red"), TypeError, "unknown simulation override 'colour'"),
    ],
)
def test_bad_config_errors_name_the_input(kwargs, exc, match):
    preset = kwargs.pop("preset", "tiny")
    with pytest.raises(exc, match=match):
        resolve_config(preset, **kwargs)


def test_simulate_dataset_checks_before_writing(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="'layout' must be one of"):
        simulate_dataset(out, preset="tiny", layout="bidz")
    with pytest.raises(ValueError, match="'seed' must be a non-negative integer"):
        simulate_dataset(out, preset="tiny", seed=-1)
    with pytest.raises(ValueError, match="unknown simulation preset 'x'"):
        simulate_dataset(out, preset="x")
    assert not out.exists()
