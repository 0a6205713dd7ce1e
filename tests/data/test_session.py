from __future__ import annotations

import numpy as np
import pytest

from rt_eeg2fmri.data.session import Session
from tests.conftest import make_session


def test_valid_session_properties(small_session):
    s = small_session
    assert s.eeg.dtype == np.float32
    assert s.n_chans == 4 and s.n_volumes == 20
    assert s.volume_onsets[1] == pytest.approx(2.0)
    assert "sub-01" in repr(s)


def test_eeg_shorter_than_bold_names_the_file():
    eeg = np.zeros((4, 100 * 30), np.float32)  # 30 s of EEG, 40 s of BOLD
    with pytest.raises(ValueError, match=r"run\.vhdr.*EEG shorter than the BOLD run"):
        make_session(eeg=eeg, source={"eeg": "run.vhdr"})


def test_nan_samples_name_channel_and_time():
    s = make_session()
    eeg = s.eeg.copy()
    eeg[2, 150] = np.nan
    with pytest.raises(
        ValueError, match=r"NaN/Inf samples \(first in channel 'EEG02' at 1.500 s\)"
    ):
        make_session(eeg=eeg)


def test_duplicate_channel_names():
    with pytest.raises(ValueError, match=r"duplicate channel name 'fz'"):
        make_session(ch_names=["Fz", "Cz", "fz", "Pz"])


def test_bold_must_be_4d():
    with pytest.raises(ValueError, match=r"BOLD must be 4-D"):
        make_session(bold=np.zeros((5, 6, 4), np.float32))


def test_mismatched_tr():
    with pytest.raises(ValueError, match=r"mismatched TR"):
        make_session(volume_onsets=np.arange(20) * 2.5, eeg=np.zeros((4, 6000), np.float32))


def test_onsets_must_increase():
    onsets = np.arange(20) * 2.0
    onsets[5] = onsets[4]
    with pytest.raises(ValueError, match="strictly increasing"):
        make_session(volume_onsets=onsets)


def test_events_sorted_and_typed():
    s = make_session(events={"onset": [3.0, 1.0], "duration": [0, 0], "trial_type": ["b", "a"]})
    assert list(s.events["trial_type"]) == ["a", "b"]
    with pytest.raises(ValueError, match="lacks column"):
        make_session(events={"onset": [1.0]})


def test_bad_spans_must_be_finite_and_ordered():
    with pytest.raises(ValueError, match=r"bad spans must be finite \[start, stop\) pairs"):
        Session(eeg=np.zeros((2, 100)), sfreq=100.0, ch_names=["Fz", "Cz"],
                bad_spans=[[0.5, 0.2]])  # fmt: skip
    ok = Session(eeg=np.zeros((2, 100)), sfreq=100.0, ch_names=["Fz", "Cz"], bad_spans=[0.1, 0.3])
    np.testing.assert_array_equal(ok.bad_spans, [[0.1, 0.3]])
