from __future__ import annotations

import mne
import numpy as np
import pandas as pd
from scipy.signal import butter, hilbert, sosfiltfilt

from rt_eeg2fmri.sim import REGIONS, load_truth
from rt_eeg2fmri.sim.eeg import head_model, mni_to_head
from rt_eeg2fmri.sim.presets import CHANNELS_34
from rt_eeg2fmri.sim.regions import draw_subject
from tests.sim.conftest import VOLUMES


def _raw(root, task):
    path = root / "sub-01" / "eeg" / f"sub-01_task-{task}_run-1_eeg.vhdr"
    return mne.io.read_raw_brainvision(path, preload=True, verbose="error")


def test_brainvision_markers_and_timing(bids_root):
    raw = _raw(bids_root, "auditory")
    assert raw.info["sfreq"] == 250.0 and len(raw.ch_names) == 16
    desc = np.asarray(raw.annotations.description)
    onsets = np.asarray(raw.annotations.onset)
    r128 = onsets[desc == "Response/R128"]
    assert r128.size == VOLUMES
    np.testing.assert_allclose(r128, 5.0 + 2.0 * np.arange(VOLUMES), atol=1e-9)
    assert raw.times[-1] >= r128[-1] + 2.0 + 2.0 - 1 / 250  # one TR and the tail after
    events = pd.read_csv(bids_root / "sub-01/eeg/sub-01_task-auditory_run-1_events.tsv", sep="\t")
    np.testing.assert_allclose(events.onset[events.trial_type == "Response/R128"], r128, atol=1e-9)
    events = events[events.trial_type != "Response/R128"]
    stim = onsets[np.isin(desc, ["Stimulus/S  1", "Stimulus/S  2"])]
    np.testing.assert_allclose(stim, events.onset[events.trial_type != "button_press"], atol=1e-9)
    targets = onsets[desc == "Stimulus/S  2"]
    np.testing.assert_allclose(targets, events.onset[events.trial_type == "auditory_target"])
    presses = onsets[desc == "Response/R  1"]
    np.testing.assert_allclose(presses, events.onset[events.trial_type == "button_press"])
    data = raw.get_data()
    rms = data.std(axis=1) * 1e6
    assert np.all((rms > 2) & (rms < 80)), rms  # µV, plausible scalp EEG
    fp1 = raw.ch_names.index("Fp1")
    assert data[fp1].max() - np.median(data[fp1]) > 60e-6  # blinks on frontal channels


def test_alpha_power_follows_the_visual_drive(bids_root):
    raw = _raw(bids_root, "visual")
    sf = raw.info["sfreq"]
    sos = butter(4, [8, 12], "bandpass", fs=sf, output="sos")
    picks = [raw.ch_names.index(c) for c in ("O1", "Oz", "O2")]
    env = np.abs(hilbert(sosfiltfilt(sos, raw.get_data(picks=picks), axis=-1), axis=-1)).mean(0)
    env = np.convolve(env, np.ones(int(sf)) / sf, "same")
    truth = load_truth(bids_root, subject="01", task="visual", run=1)
    names = list(truth["regions"])
    t_eeg = raw.times - 5.0
    t = truth["drive_times"]
    keep = (t > t_eeg[0] + 2) & (t < t_eeg[-1] - 2)
    alpha = np.interp(t[keep], t_eeg, env)
    v1 = truth["drive"][names.index("V1_L")][keep]
    a1 = truth["drive"][names.index("A1_L")][keep]
    r_v1 = np.corrcoef(alpha, v1)[0, 1]
    assert r_v1 < -0.25, r_v1  # alpha suppression where visual cortex is driven
    assert r_v1 < np.corrcoef(alpha, a1)[0, 1] - 0.15  # not driven in visual runs


def test_evoked_responses(bids_root):
    raw = _raw(bids_root, "auditory")
    ev = pd.read_csv(bids_root / "sub-01/eeg/sub-01_task-auditory_run-1_events.tsv", sep="\t")
    data = raw.get_data() * 1e6
    pz = raw.ch_names.index("Pz")

    def erp(kind):
        idx = ev["sample"][ev.trial_type == kind].to_numpy()
        ep = np.stack([data[pz, i - 25 : i + 150] for i in idx])
        return (ep - ep[:, :25].mean(axis=1, keepdims=True)).mean(axis=0)

    win = slice(25 + 70, 25 + 110)  # 280-440 ms
    target, standard = erp("auditory_target")[win].mean(), erp("auditory_standard")[win].mean()
    assert target > 2.0 and target > standard + 2.0, (target, standard)  # P300 to targets


def test_head_model_is_a_real_forward_model():
    rng = np.random.default_rng(0)
    subject = draw_subject(rng, "01")
    model = head_model(CHANNELS_34, subject, rng)
    n_visible = sum(r.eeg_visible for r in REGIONS)
    assert model.gain.shape == (35, n_visible)  # 34 channels + FCz reference
    assert model.reference == "FCz"
    r0, radius = model.sphere
    assert 0.08 < radius < 0.11
    dist = np.linalg.norm(model.positions - r0, axis=1)
    np.testing.assert_allclose(dist, radius, rtol=0.15)
    # MNI → head: Cz-ish top of the head maps near the Cz electrode's direction
    top = mni_to_head(np.array([[0.0, -15.0, 75.0]]))[0]
    cz = model.positions[CHANNELS_34.index("Cz")]
    assert np.linalg.norm(top - cz) < 0.035
    # the occipital sources project most strongly to occipital electrodes
    v1 = [r.name for r in REGIONS if r.eeg_visible].index("V1_L")
    g = np.abs(model.gain[:-1, v1] - model.gain[-1, v1])
    assert CHANNELS_34[int(np.argmax(g))] in ("O1", "Oz", "O2", "PO9", "PO10")
