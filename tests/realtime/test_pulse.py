"""The live (causal) pulse-artifact correction: R-peaks found live, against MNE's offline OBS,
heart-rate jumps and an ECG lead that goes off."""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pytest

from rt_eeg2fmri.realtime.pulse import LivePulseCorrector, RPeakDetector
from rt_eeg2fmri.sim.artifacts import SampleGrid, pulse_artifact, pulse_topography
from rt_eeg2fmri.sim.eeg import ecg_trace

CH = 20  # samples per chunk at 1 kHz: 20 ms


def recording(beats, *, sfreq=1000.0, seconds=None, n_chans=6, seed=0):
    """(EEG with the pulse artifact, the clean EEG, the ECG lead) locked to ``beats`` (s)."""
    rng = np.random.default_rng(seed)
    n = int((seconds or beats[-1] + 1.0) * sfreq)
    ecg = ecg_trace(beats, t_start=0.0, n_times=n, sfreq=sfreq) + 20e-6 * rng.standard_normal(n)
    topo = pulse_topography(rng, rng.normal(size=(n_chans, 3)))
    bcg = pulse_artifact(rng, beats, topo, SampleGrid(sfreq, 0.0, n)).astype(float)
    eeg = np.cumsum(rng.standard_normal((n_chans, n)), axis=1)  # brown: most power low
    eeg = 10e-6 * (eeg - eeg.mean(axis=1, keepdims=True)) / eeg.std(axis=1, keepdims=True)
    eeg += 5e-6 * rng.standard_normal((n_chans, n))
    return eeg + bcg, eeg, ecg


def feed(corrector, x, ecg, chunk=CH):
    outs, flags = [], []
    for a in range(0, x.shape[1], chunk):
        out, clean = corrector.process(x[:, a : a + chunk], ecg[a : a + chunk])
        outs.append(out)
        flags.append(clean)
    return np.concatenate(outs, axis=1), np.concatenate(flags)


def detect(detector, ecg, chunk=CH):
    found = []
    for a in range(0, ecg.size, chunk):
        found += detector.process(ecg[a : a + chunk])
        detector.check_lead(a + chunk)
    return found


def test_every_beat_is_found_through_a_heart_rate_jump():
    """60 bpm, then 100 bpm from one beat to the next, then 50: every beat after the
    first (learning) seconds is found once, at the same offset from its R-peak (the
    band-pass's delay, under 50 ms), and confirmed within 60 ms of that."""
    beats = np.concatenate([np.arange(0.5, 30, 1.0), 30.0 + np.arange(0, 30, 0.6),
                            60.0 + np.arange(0, 30, 1.2)])  # fmt: skip
    _, _, ecg = recording(beats, seconds=91.0)
    det = RPeakDetector(1000.0)
    found = detect(det, ecg)
    peaks = np.array([p for p, _ in found])
    want = np.round(beats[beats > 2.1] * 1000).astype(int)
    assert peaks.size == want.size, (peaks.size, want.size)
    offset = peaks - want
    assert np.ptp(offset) <= 2 and 0 <= np.median(offset) <= 50, offset
    delay = np.array([c - p for p, c in found])
    assert delay.max() <= 60, delay.max()
    assert det.rejected == 0 and not det.lead_off


@pytest.mark.slow
def test_live_correction_is_within_3_db_of_mnes_offline_obs(tmp_path):
    """A simulated in-scanner run with the pulse artifact (varying beat to beat, stretching
    with RR): the causal moving-average template, chunk by chunk, against MNE's optimal
    basis sets on the R-peaks MNE finds (``rt-eeg2fmri correct --bcg``), both scored
    against the clean EEG after a 1-40 Hz band-pass where the live template is ready."""
    import mne

    from rt_eeg2fmri.data.correct import correct_raw
    from tests.realtime.engine_helpers import simulated_in_scanner

    sfreq = 1000.0
    raw, clean = simulated_in_scanner(tmp_path / "ds", seed=4, volumes=45, sfreq=sfreq,
                                      artifacts="bcg")  # fmt: skip
    picks = clean.ch_names
    x, ecg = raw.get_data(picks=picks), raw.get_data(picks=["ECG"])[0]
    c = LivePulseCorrector(len(picks), sfreq, n_template=20)
    online, flags = feed(c, x, ecg)
    assert c.counts.lead_off == 0 and c.counts.rejected == 0
    assert not flags[:15_000].any() and flags[-10_000:].all()  # 20 beats: ~17 s
    offline, report = correct_raw(raw, gradient=False)
    assert abs(report.beats - c.counts.beats) <= 4

    def band(a):
        return mne.filter.filter_data(a, sfreq, 1.0, 40.0, verbose="error")[:, flags]

    truth = band(clean.get_data())

    def db(a):
        return 10 * np.log10(((band(a) - truth) ** 2).mean() / (truth**2).mean())

    db_raw, db_off, db_on = db(x), db(offline.get_data(picks=picks)), db(online)
    assert db_off < db_raw - 5, (db_off, db_raw)
    assert db_on <= db_off + 3.0, (db_on, db_off)


def test_lost_samples_are_written_as_zero_and_their_beat_is_flagged_and_kept_out():
    """0.3 s of a stream lost mid-beat (zero-filled): those samples come out as 0, the beat
    is flagged from the loss to its end (its fit saw the zeros) and stays out of the past
    beats; the lead is held through the loss, so no beat is invented at its edges; the
    next beat is corrected and flagged clean again."""
    sfreq = 1000.0
    beats = np.arange(0.4, 40, 0.85)
    x, eeg, ecg = recording(beats, sfreq=sfreq, seconds=40.0)
    gone = np.zeros(x.shape[1], bool)
    gone[25_500:25_800] = True  # in the beat of the R-peak at 25.05 s
    ref = LivePulseCorrector(x.shape[0], sfreq, n_template=10)
    want, want_clean = feed(ref, x, ecg)
    c = LivePulseCorrector(x.shape[0], sfreq, n_template=10)
    outs, flags = [], []
    for a in range(0, x.shape[1], CH):
        k = slice(a, a + CH)
        out, clean = c.process(np.where(gone[k], 0.0, x[:, k]), np.where(gone[k], 0.0, ecg[k]),
                               gone[k])  # fmt: skip
        outs.append(out)
        flags.append(clean)
    out, clean = np.concatenate(outs, axis=1), np.concatenate(flags)
    assert not out[:, gone].any() and not clean[gone].any()
    assert c.counts.beats == ref.counts.beats and c.counts.rejected == ref.counts.rejected
    assert c.counts.lost_beats == 1 and c.counts.template_beats == ref.counts.template_beats - 1
    # flagged from the loss until the next beat's model starts (its R-peak confirmed)
    peaks = np.round(beats * sfreq).astype(int)
    next_peak = peaks[peaks > 25_800][0]
    assert want_clean[20_000:].all() and clean[20_000:25_500].all()
    assert not clean[25_500 : next_peak + 10].any() and clean[next_peak + 100 :].all()
    # corrected as well afterwards as without the loss (one beat fewer in the template)
    after = slice(next_peak + 100, None)
    resid = ((out[:, after] - eeg[:, after]) ** 2).mean()
    assert resid < 1.5 * ((want[:, after] - eeg[:, after]) ** 2).mean()
    assert resid < 0.5 * ((x[:, after] - eeg[:, after]) ** 2).mean()


@pytest.mark.parametrize("off", ["flat", "noise"])
def test_an_ecg_lead_off_stops_the_correction_until_beats_come_back(off, caplog):
    """The lead goes off from 40 s to 60 s (a flat line, or noise ten times the ECG):
    warned once, nothing subtracted and every sample flagged from then until beats come
    back; no beat is found in the noise; afterwards the correction resumes."""
    sfreq = 1000.0
    beats = np.arange(0.4, 100, 0.9)
    x, eeg, ecg = recording(beats, sfreq=sfreq, seconds=100.0)
    intact, lost = ecg.copy(), slice(40_000, 60_000)
    rng = np.random.default_rng(1)
    ecg[lost] = 0.0 if off == "flat" else 10e-3 * rng.standard_normal(20_000)
    c = LivePulseCorrector(x.shape[0], sfreq, n_template=10, source="test")
    with caplog.at_level(logging.WARNING, logger="rt_eeg2fmri"):
        out, clean = feed(c, x, ecg)
    assert c.counts.lead_off == 1
    assert sum("no heartbeat on the ECG" in r.getMessage() for r in caplog.records) == 1
    # the last beat before the lead went off was at 39.9 s; off is declared 2.25 s later
    # (2.5 intervals): from then until a beat after the lead is back nothing is corrected
    gone = slice(42_200, 60_000)
    np.testing.assert_array_equal(out[:, gone], x[:, gone])
    assert not clean[gone].any()
    found = [b for b in c.detector.heights]  # beats since the lead came back
    assert found and clean[-5_000:].all()
    assert c.counts.beats <= beats.size - (20 / 0.9) + 2  # no beat found in the noise
    # and corrects as well as where the lead never went off
    ref, _ = feed(LivePulseCorrector(x.shape[0], sfreq, n_template=10), x, intact)
    last = slice(-20_000, None)
    resid = ((out[:, last] - eeg[:, last]) ** 2).mean()
    assert resid < 1.2 * ((ref[:, last] - eeg[:, last]) ** 2).mean()
    assert resid < 0.5 * ((x[:, last] - eeg[:, last]) ** 2).mean()


def test_the_eeg_chain_corrects_on_the_sources_ecg_channel():
    """EEGChain(pulse=N) finds the ECG channel by its label (or --ecg), in its unit, and
    gives what the corrector alone gives; a source without one is refused by name."""
    from rt_eeg2fmri.data import EEGChain, Preprocessing

    sfreq = 500.0
    beats = np.arange(0.3, 60, 0.85)
    x, _, ecg = recording(beats, sfreq=sfreq, seconds=60.0, n_chans=3)
    names = ["Fz", "Cz", "Pz"]
    raw = np.vstack([x * 1e6, ecg * 1e6])  # microvolts, as LSL streams carry EEG
    chain = EEGChain(
        Preprocessing(sfreq=sfreq, winsize=4.0), ch_names=names, sfreq=sfreq,
        labels=[*names, "EKG1"], units=["uV"] * 4, pulse=10,
    )  # fmt: skip
    stamps = 50.0 + np.arange(raw.shape[1]) / sfreq
    outs, uncorrected = [], 0
    for a in range(0, raw.shape[1], 37):
        out, _, report = chain.process(raw[:, a : a + 37].T, stamps[a : a + 37])
        outs.append(np.array(out))
        uncorrected += report.uncorrected
        assert report.no_pulse == report.uncorrected
    want, clean = feed(LivePulseCorrector(3, sfreq, n_template=10), x, ecg, chunk=37)
    np.testing.assert_allclose(np.concatenate(outs, axis=1), want, rtol=1e-6, atol=1e-12)
    other, _ = feed(LivePulseCorrector(3, sfreq, n_template=10), x, ecg, chunk=101)
    np.testing.assert_allclose(other, want, rtol=1e-9, atol=1e-15)  # chunking changes nothing
    assert uncorrected == int((~clean).sum())
    pre = Preprocessing(sfreq=sfreq, winsize=4.0)
    with pytest.raises(ValueError, match=r"stream 'amp'.*needs an ECG channel.*--ecg NAME"):
        EEGChain(pre, ch_names=names, sfreq=sfreq, labels=[*names, "EOG"], units=["uV"] * 4,
                 pulse=10, source="stream 'amp'")  # fmt: skip
    with pytest.raises(ValueError, match=r"the ECG channel 'ECG2' is not among"):
        EEGChain(pre, ch_names=names, sfreq=sfreq, labels=[*names, "EKG1"], units=["uV"] * 4,
                 pulse=10, ecg="ECG2")  # fmt: skip
    with pytest.raises(ValueError, match="n_template"):
        LivePulseCorrector(3, sfreq, n_template=0)


def test_the_ecg_is_found_in_a_simulated_in_scanner_recording(tmp_path):
    """``simulate --artifacts bcg`` writes the ECG lead beside the EEG; the live detector
    finds the simulated heartbeats on it."""
    import mne

    from rt_eeg2fmri.sim import simulate_dataset

    root = simulate_dataset(tmp_path / "ds", preset="tiny", seed=2, subjects=1, runs=1,
                            volumes=20, sfreq=1000.0, artifacts="bcg", progress=False)  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw = mne.io.read_raw_brainvision(
            next((root / "sub-01" / "eeg").glob("*_eeg.vhdr")), preload=True, verbose="error"
        )
    ecg = raw.get_data(picks=["ECG"])[0]
    det = RPeakDetector(raw.info["sfreq"])
    found = detect(det, ecg)
    raw.set_channel_types({"ECG": "ecg"})
    ref, _, _ = mne.preprocessing.find_ecg_events(raw, ch_name="ECG", verbose="error")
    ref = (ref[:, 0] - raw.first_samp)[ref[:, 0] - raw.first_samp > 2100]  # after learning
    peaks = np.array([p for p, _ in found])
    # every beat MNE finds offline, found live at the same offset; none more between them
    d = peaks[None, :] - ref[:, None]
    match = np.abs(d).argmin(axis=1)
    offset = d[np.arange(ref.size), match]
    assert np.ptp(offset) <= 3 and np.abs(offset).max() <= 50, offset
    between = (peaks >= ref[0] - 50) & (peaks <= ref[-1] + 50)
    assert between.sum() == ref.size and det.rejected == 0


@pytest.mark.lsl
@pytest.mark.slow
def test_stream_corrects_both_artifacts_of_a_5_khz_replay(tmp_path):
    """A simulated in-scanner recording at 5 kHz (gradient and pulse artifacts, its ECG lead
    and scanner markers) replayed from its BrainVision file over LSL: the engine's EEG chain
    corrects both live; the EEG the model sees equals the same chain run offline on the file
    (nothing lost at 5 kHz); the heartbeats it found are those MNE finds offline; the timing
    log flags the windows from before the pulse template was ready; a pylsl inlet receives
    the corrected EEG with its clean flags."""

    import mne
    import pandas as pd

    from rt_eeg2fmri.checkpoint import load_checkpoint
    from rt_eeg2fmri.replay.sources import load_recording
    from rt_eeg2fmri.sim import simulate_dataset
    from tests.realtime.engine_helpers import chain_offline, stream_in_scanner, tiny_checkpoint

    root = simulate_dataset(
        tmp_path / "ds", preset="tiny", seed=6, subjects=1, runs=1, volumes=22, sfreq=5000.0,
        artifacts="gradient,bcg", progress=False,
    )  # fmt: skip
    vhdr = root / "sub-01" / "eeg" / "sub-01_task-auditory_run-1_eeg.vhdr"
    session = load_recording(vhdr)
    assert session.sfreq == 5000.0 and session.ch_names[-1] == "ECG"
    ckpt = load_checkpoint(tiny_checkpoint(tmp_path / "m.pt", winsize=4.0, t_r=2.0))
    summary, online, published = stream_in_scanner(
        session, ckpt, tmp_path, speed=3.0, max_volumes=18, duration=40.0,
        correct=("gradient", "bcg"), gradient_volumes=3, pulse_beats=6,
    )  # fmt: skip
    n = online.shape[1]
    assert summary["volumes"] == 18 and summary["samples_lost"] == 0, summary
    pulse, grad = summary["pulse"], summary["gradient"]
    assert grad["extra"] == 0 and grad["restarts"] == 0 and grad["markers"] >= 16, grad
    assert pulse["lead_off"] == 0 and pulse["rejected"] == 0, pulse

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw = mne.io.read_raw_brainvision(vhdr, preload=True, verbose="error")
    raw.set_channel_types({"ECG": "ecg"})
    ref, _, _ = mne.preprocessing.find_ecg_events(raw, ch_name="ECG", verbose="error")
    streamed_s = n / ckpt.sfreq  # the beats MNE finds in what was streamed, after learning
    ref_s = (ref[:, 0] - raw.first_samp) / raw.info["sfreq"]
    assert abs(pulse["beats"] - ((ref_s > 2.1) & (ref_s < streamed_s - 0.1)).sum()) <= 2, pulse

    timing = pd.read_csv(tmp_path / "timing.tsv", sep="\t")
    no_pulse, dirty = timing["no_pulse"].to_numpy(), timing["uncorrected"].to_numpy()
    assert no_pulse[0] == 1 and no_pulse[-1] == 0 and (np.diff(no_pulse) <= 0).all(), no_pulse
    assert (dirty >= no_pulse).all() and dirty[-1] == 0
    assert summary["no_pulse"] == no_pulse.sum() and summary["uncorrected"] == dirty.sum()

    assert published.shape[1] == len(ckpt.ch_names) + 1 and published.shape[0] >= n
    np.testing.assert_allclose(published[:n, :-1].T * 1e-6, online, rtol=1e-5, atol=1e-12)
    assert published[0, -1] == 0 and published[n - 1, -1] == 1

    want = chain_offline(session, ckpt, step=500, gradient=3, t_r=2.0, pulse=6)[:, :n]
    last = slice(n - ckpt.n_times, n)  # the last window: both templates ready
    np.testing.assert_allclose(online[:, last], want[:, last], rtol=1e-3, atol=1e-7)
