"""The Preprocessing record: validation, plain values, resolution."""

from __future__ import annotations

import json

import pytest

from rt_eeg2fmri.data import Preprocessing


def test_defaults_roundtrip_and_resolve():
    pre = Preprocessing(l_freq=1.0, h_freq=40.0, fwhm=6, target="median_ratio")
    d = pre.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert Preprocessing.from_dict(d) == pre and pre.fwhm == 6.0
    assert pre.sfreq is None and pre.bandpass
    resolved = pre.resolve(250.0)
    assert resolved.sfreq == 250.0 and resolved.n_times == 7500
    assert resolved.resolve(100.0) is resolved  # a set rate stays
    assert "band-pass 1-40 Hz" in resolved.describe()
    with pytest.raises(ValueError, match="not resolved"):
        pre.n_times  # noqa: B018
    with pytest.raises(AttributeError):
        pre.sfreq = 100.0  # frozen


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"sfreq": -1}, "'sfreq' must be positive"),
        ({"winsize": 0}, "'winsize' must be positive"),
        ({"l_freq": 40.0, "h_freq": 1.0}, "'l_freq' must be below 'h_freq'"),
        ({"sfreq": 100.0, "h_freq": 50.0}, "'h_freq' must be below the Nyquist frequency"),
        ({"norm": "minmax"}, "'norm' must be one of"),
        ({"target": "zscore"}, "'target' must be one of"),
        ({"fwhm": 0.0}, "'fwhm' must be positive"),
    ],
)
def test_validate_names_the_field(fields, match):
    with pytest.raises(ValueError, match=match):
        Preprocessing(**fields)


def test_from_dict_refuses_unknown_fields():
    with pytest.raises(ValueError, match=r"checkpoint: unknown field\(s\) \['lfreq'\]"):
        Preprocessing.from_dict({"lfreq": 1.0}, where="checkpoint")
    with pytest.raises(TypeError, match="expected a dict"):
        Preprocessing.from_dict([1, 2])
