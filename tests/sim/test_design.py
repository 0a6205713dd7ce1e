from __future__ import annotations

import numpy as np

from rt_eeg2fmri.sim.design import NEURAL_SFREQ, neural_drive, oddball_events
from rt_eeg2fmri.sim.regions import REGIONS


def test_oddball_events_follow_the_paradigm():
    rng = np.random.default_rng(0)
    ev = oddball_events("visual", rng, duration=2000.0, sfreq=250.0, rt_median=0.45)
    stim = ev[ev.trial_type != "button_press"]
    kinds = stim.trial_type.to_numpy()
    assert set(kinds) == {"visual_standard", "visual_target"}
    is_target = kinds == "visual_target"
    assert 0.17 < is_target.mean() < 0.23
    assert not np.any(is_target[1:] & is_target[:-1])  # never two targets in a row
    isi = np.diff(stim.onset.to_numpy())
    assert isi.min() >= 2.0 - 0.005 and isi.max() <= 3.0 + 0.005
    np.testing.assert_allclose(ev.onset * 250.0, np.round(ev.onset * 250.0), atol=1e-6)
    presses = ev[ev.trial_type == "button_press"].onset.to_numpy()
    targets = stim[is_target]
    hits = targets.dropna(subset=["response_time"])
    assert len(hits) / len(targets) > 0.9
    assert np.all((hits.response_time >= 0.2) & (hits.response_time <= 1.2))
    answered = stim.dropna(subset=["response_time"])  # hits and false alarms
    np.testing.assert_allclose(
        np.sort(answered.onset + answered.response_time), np.sort(presses), atol=0.005
    )


def test_dmn_is_anticorrelated_with_the_attention_network():
    rng = np.random.default_rng(1)
    d = neural_drive(
        "auditory", rng, t_start=-5.0, t_stop=1200.0, scan_duration=1200.0, sfreq=250.0,
        rt_median=0.4,
    )  # fmt: skip
    names = [r.name for r in REGIONS]
    assert d.drive.shape == (len(REGIONS), d.times.size)
    assert np.isclose(d.times[1] - d.times[0], 1 / NEURAL_SFREQ)
    smooth = np.ones(int(20 * NEURAL_SFREQ)) / (20 * NEURAL_SFREQ)

    def slow(name):
        return np.convolve(d.drive[names.index(name)], smooth, "valid")

    assert np.corrcoef(slow("PCC"), slow("IPS_L"))[0, 1] < -0.1
    assert np.corrcoef(slow("A1_L"), slow("A1_R"))[0, 1] > 0.3  # shared network
