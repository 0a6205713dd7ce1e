from __future__ import annotations

import numpy as np
import pytest

from rt_eeg2fmri.data import window_pairs


def test_founding_dataset_shape_gives_155_pairs():
    onsets = np.arange(170) * 2.0
    pairs = window_pairs(onsets, t_r=2.0, sfreq=1000.0, n_times=340_000)
    assert len(pairs) == 155
    assert pairs.volume[0] == 15
    # the window ends at the end of the volume's acquisition and is 30 s long
    assert pairs.stop[0] == 32_000 and pairs.start[0] == 2_000
    assert np.all(pairs.stop - pairs.start == 30_000)


def test_windows_outside_eeg_are_dropped():
    onsets = 5.0 + np.arange(20) * 2.0
    pairs = window_pairs(onsets, t_r=2.0, sfreq=100.0, n_times=4000, winsize=10.0, skip=0)
    assert pairs.start.min() >= 0 and pairs.stop.max() <= 4000
    assert pairs.volume[0] == 2 and pairs.volume[-1] == 16


def test_bad_parameters():
    with pytest.raises(ValueError, match="'winsize' must be positive"):
        window_pairs(np.arange(3.0), t_r=2.0, sfreq=100.0, n_times=10, winsize=0)
    with pytest.raises(ValueError, match="'skip' must be >= 0"):
        window_pairs(np.arange(3.0), t_r=2.0, sfreq=100.0, n_times=10, skip=-1)


def test_windows_overlapping_bad_spans_are_dropped():
    onsets = np.arange(10) * 2.0
    every = window_pairs(onsets, t_r=2.0, sfreq=100.0, n_times=2000, winsize=4.0)
    # window k: [2k - 2, 2k + 2) s
    wp = window_pairs(onsets, t_r=2.0, sfreq=100.0, n_times=2000, winsize=4.0,
                      bad_spans=[[6.0, 6.0], [13.5, 14.0]])  # fmt: skip
    assert set(every.volume) - set(wp.volume) == {3, 6, 7}
    # a span that touches a window's edge does not overlap it
    edge = window_pairs(onsets, t_r=2.0, sfreq=100.0, n_times=2000, winsize=4.0,
                        bad_spans=[[10.0, 12.0]])  # fmt: skip
    assert set(every.volume) - set(edge.volume) == {5, 6}
