"""``simulate --artifacts gradient,bcg``: in-scanner artifacts over a clean EEG kept as truth."""

from __future__ import annotations

import json
import re
import warnings

import mne
import numpy as np
import pandas as pd
import pytest

from rt_eeg2fmri.sim import simulate_dataset
from rt_eeg2fmri.sim.artifacts import (
    Acquisition,
    SampleGrid,
    gradient_artifact,
    parse_artifacts,
    slice_waveforms,
)

SFREQ, T_R = 5000.0, 2.0
STEM = "sub-01_task-auditory_run-1"


def _read(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mne.io.read_raw_brainvision(path, preload=True, verbose="error")


@pytest.fixture(scope="module")
def scanner(tmp_path_factory):
    """24 volumes at 5 kHz with both artifacts (EEG clock locked to the scanner's), and
    the same seed without them."""
    base = tmp_path_factory.mktemp("artifacts")
    kw = dict(preset="tiny", seed=4, subjects=1, runs=1, volumes=24, sfreq=SFREQ)
    art = simulate_dataset(base / "art", artifacts="gradient,bcg", **kw)
    plain = simulate_dataset(base / "plain", **kw)
    return art, plain


def test_slice_waveforms_play_an_epi_readout():
    acq = Acquisition(t_r=T_R, n_slices=52)
    t = np.arange(0, acq.slice_s, 1e-5)
    z, x, y = slice_waveforms(t, acq)
    assert z[: int(1e-4 / 1e-5)].min() == 1.0  # the slice-select ramp comes first
    lobes = np.flatnonzero(np.diff(np.sign(x[x != 0])))  # readout lobes alternate in sign
    assert len(lobes) >= 20
    assert np.count_nonzero(y) > 0 and np.abs(y).max() < 1


def test_locked_clocks_repeat_every_volume_and_drifting_ones_do_not():
    onsets = np.arange(12) * T_R
    n = round(12 * T_R * SFREQ)
    waves = {}
    for sync in (True, False):
        acq = Acquisition(t_r=T_R, n_slices=52, sync=sync)
        waves[sync] = gradient_artifact(onsets, acq, SampleGrid(SFREQ, 0.0, n))[1]
    per = round(T_R * SFREQ)
    on, off = waves[True].reshape(12, per), waves[False].reshape(12, per)
    np.testing.assert_allclose(on[10], on[1], atol=1e-5)  # the same sub-sample phase
    assert np.corrcoef(off[1], off[10])[0, 1] < 0.9  # 37 ppm: ~3 samples off after 9 TRs


def test_with_drifting_clocks_the_markers_follow_the_scanner(tmp_path):
    """``--scanner-sync off``: the scanner clock runs 37 ppm fast, so its volume markers land
    ever earlier than the nominal grid on the EEG clock — where each volume's gradient
    artifact begins, not where a locked scanner's would."""
    kw = dict(preset="tiny", seed=4, subjects=1, runs=1, volumes=24, sfreq=SFREQ,
              artifacts="gradient", progress=False)  # fmt: skip
    drift = simulate_dataset(tmp_path / "off", scanner_sync=False, **kw)
    raw = _read(drift / "sub-01" / "eeg" / f"{STEM}_eeg.vhdr")
    events, ids = mne.events_from_annotations(raw, verbose="error")
    marks = events[events[:, 2] == ids["Response/R128"], 0] - raw.first_samp
    nominal = marks[0] + np.round(np.arange(24) * T_R * SFREQ).astype(int)
    late = nominal - marks  # samples the nominal grid is late by: 23 TRs × 37 ppm × 5 kHz
    assert (
        late[0] == 0 and late[-1] == round(23 * T_R * 37e-6 * SFREQ) and (np.diff(late) >= 0).all()
    )
    # each marker starts its volume's artifact: the last volume cut at its marker is like
    # the second one (up to the sub-sample phases the drift gives every slice: r 0.36);
    # cut on the nominal grid, 8 samples off, it is not (r -0.10)
    x, n = raw.get_data(picks=[0])[0], round(T_R * SFREQ)

    def r(a, b):
        return np.corrcoef(x[a : a + n], x[b : b + n])[0, 1]

    at_marks, at_grid = r(marks[1], marks[-1]), r(nominal[1], nominal[-1])
    assert at_marks > at_grid + 0.3, (at_marks, at_grid)


def test_the_clean_eeg_is_the_truth_under_the_artifacts(scanner):
    art, plain = scanner
    raw = _read(art / "sub-01" / "eeg" / f"{STEM}_eeg.vhdr")
    clean = _read(
        art / "derivatives" / "simulation" / "sub-01" / "eeg" / f"{STEM}_desc-clean_eeg.vhdr"
    )
    same_seed = _read(plain / "sub-01" / "eeg" / f"{STEM}_eeg.vhdr")
    # the artifacts draw from their own random stream: the EEG under them is the plain run's
    np.testing.assert_array_equal(clean.get_data(), same_seed.get_data())
    assert raw.ch_names == [*clean.ch_names, "ECG"]
    table = pd.read_csv(art / "sub-01" / "eeg" / f"{STEM}_channels.tsv", sep="\t")
    assert table["type"].iloc[-1] == "ECG" and (table["type"].iloc[:-1] == "EEG").all()
    sidecar = json.loads((art / "sub-01" / "eeg" / f"{STEM}_eeg.json").read_text())
    assert sidecar["ECGChannelCount"] == 1 and sidecar["SamplingFrequency"] == SFREQ
    artifact = raw.get_data(picks=clean.ch_names) - clean.get_data()
    assert 2e-4 < np.abs(artifact).max() < 2e-2  # hundreds of µV to mV
    assert np.abs(artifact).max() > 3 * np.abs(clean.get_data()).max()  # blinks included


def test_mne_average_artifact_subtraction_removes_the_gradient(scanner):
    """The offline reference a live correction will be held to: MNE's AAS on the volume
    markers takes the gradient artifact down to the EEG's level where it has neighbours."""
    art, _ = scanner
    raw = _read(art / "sub-01" / "eeg" / f"{STEM}_eeg.vhdr")
    clean = _read(
        art / "derivatives" / "simulation" / "sub-01" / "eeg" / f"{STEM}_desc-clean_eeg.vhdr"
    )
    events, ids = mne.events_from_annotations(raw, verbose="error")
    trs = events[events[:, 2] == ids["Response/R128"], 0]
    assert len(trs) == 24
    eeg = raw.copy().pick(clean.ch_names)
    fixed = mne.preprocessing.remove_fmri_gradient_artifact(
        eeg, trs, window=(4, 4), verbose="error"
    )
    mid = slice(trs[8], trs[16])  # volumes with four neighbours on each side
    before = (eeg.get_data()[:, mid] - clean.get_data()[:, mid]).std()
    after = (fixed.get_data()[:, mid] - clean.get_data()[:, mid]).std()
    assert 20 * np.log10(before / after) > 15  # the pulse artifact is still there


def test_the_pulse_artifact_follows_the_heartbeats(scanner):
    art, _ = scanner
    raw = _read(art / "sub-01" / "eeg" / f"{STEM}_eeg.vhdr")
    clean = _read(
        art / "derivatives" / "simulation" / "sub-01" / "eeg" / f"{STEM}_desc-clean_eeg.vhdr"
    )
    raw.set_channel_types({"ECG": "ecg"})
    peaks, _, _ = mne.preprocessing.find_ecg_events(raw, ch_name="ECG", verbose="error")
    assert 35 <= len(peaks) <= 70  # 55–80 bpm over the run
    residue = raw.get_data(picks=clean.ch_names) - clean.get_data()
    low = mne.filter.filter_data(residue, SFREQ, None, 20.0, verbose="error")  # no gradient
    epochs = np.stack(
        [low[:, p : p + round(0.9 * SFREQ)] for p in peaks[:, 0] if p + 4500 < low.shape[1]]
    )
    wave = epochs.mean(0)
    ptp = wave.max(1) - wave.min(1)
    assert 30e-6 < ptp.max() < 250e-6  # 50–200 µV peak to peak, larger on some channels
    assert np.argmax(np.abs(wave).max(0)) > 0.2 * SFREQ  # after the R-peak, not on it


def test_unknown_artifacts_are_refused():
    assert parse_artifacts("bcg, gradient") == ("gradient", "bcg")
    assert parse_artifacts(None) == ()
    with pytest.raises(ValueError, match=r"unknown artifact\(s\) \['helium'\]"):
        parse_artifacts("gradient,helium")


def test_the_correct_command_brings_the_eeg_back(scanner, tmp_path, capsys):
    """``rt-eeg2fmri correct``: MNE's AAS (with the end volumes too) and OBS on the ECG's
    R-peaks; the output keeps every marker and is far closer to the clean EEG."""
    from apps.cli import main

    art, _ = scanner
    path = art / "sub-01" / "eeg" / f"{STEM}_eeg.vhdr"
    out = tmp_path / "fixed.vhdr"
    assert main(["correct", str(path), "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "gradient on 24 volumes (8 at the ends with a shifted template, 0 aligned" in said
    assert "pulse artifact on" in said and "of 'ECG'" in said
    raw, fixed = _read(path), _read(out)
    clean = _read(
        art / "derivatives" / "simulation" / "sub-01" / "eeg" / f"{STEM}_desc-clean_eeg.vhdr"
    )
    assert fixed.ch_names == raw.ch_names
    assert (fixed.annotations.description == raw.annotations.description).all()
    events, ids = mne.events_from_annotations(raw, verbose="error")
    trs = events[events[:, 2] == ids["Response/R128"], 0]
    span = slice(trs[0], trs[-1] + round(T_R * SFREQ))

    def error_db(rec):
        band = lambda a: mne.filter.filter_data(a[:, span], SFREQ, 1.0, 40.0, verbose="error")  # noqa: E731
        truth = band(clean.get_data())
        return 10 * np.log10(((band(rec.get_data(picks=clean.ch_names)) - truth) ** 2).mean()
                             / (truth**2).mean())  # fmt: skip

    before, after = error_db(raw), error_db(fixed)
    assert before > 5 and after < before - 8, (before, after)  # ~9 dB → ~-1 dB
    # the ECG lead carries the gradient artifact too (its R-peaks lie under it): corrected
    # with the EEG, it is back to its size before the first volume (562 → 166 µV, 159 µV)
    ecg_raw, ecg_fixed = raw.get_data(picks=["ECG"])[0], fixed.get_data(picks=["ECG"])[0]
    lead_in = ecg_raw[: trs[0]].std()
    assert ecg_raw[span].std() > 2 * lead_in and ecg_fixed[span].std() < 1.2 * lead_in
    # refused: an existing output, a file name that is not BrainVision, no ECG for --bcg
    assert main(["correct", str(path), "--out", str(out)]) == 1
    assert "exists; nothing was written" in capsys.readouterr().err
    assert main(["correct", str(path), "--out", str(tmp_path / "x.edf")]) == 1
    assert "expected a BrainVision .vhdr" in capsys.readouterr().err
    plain = art / "derivatives" / "simulation" / "sub-01" / "eeg" / f"{STEM}_desc-clean_eeg.vhdr"
    assert main(["correct", str(plain), "--out", str(tmp_path / "y.vhdr"), "--bcg"]) == 1
    assert "needs an ECG channel" in capsys.readouterr().err


def test_both_layouts_record_the_artifacts(tmp_path):
    """The ds000116 copy of an in-scanner run holds the same artifact-laden EEG as the BIDS one."""
    from rt_eeg2fmri.data.dataset import find_runs

    root = simulate_dataset(tmp_path / "both", preset="tiny", seed=2, subjects=1, runs=1,
                            volumes=12, channels=34, layout="both", artifacts="gradient")  # fmt: skip
    (bids,) = find_runs(root, layout="bids")
    (legacy,) = find_runs(root, layout="ds000116", sfreq=250.0)
    a, b = bids.load(), legacy.load()
    start = round(a.volume_onsets[0] * a.sfreq)
    ref = a.eeg[:, start:] - a.eeg[:, start:].mean(axis=0)
    np.testing.assert_allclose(b.eeg, ref, atol=1e-9)
    assert np.abs(b.eeg).max() > 2e-4  # the gradient artifact's hundreds of µV, not clean EEG


def test_the_bids_reader_reads_in_scanner_eeg_corrected(scanner, capsys):
    """Reader option ``correct`` (``--correct`` of info/train/evaluate/replay/calibrate):
    the run's EEG as ``rt-eeg2fmri correct`` writes it; a bad value names what is allowed."""
    from apps.cli import main
    from rt_eeg2fmri.data import read_session
    from rt_eeg2fmri.data.correct import correct_raw

    art, _ = scanner
    raw = read_session(art, subject="01")
    fixed = read_session(art, subject="01", correct="gradient,bcg")
    want, _ = correct_raw(_read(art / "sub-01" / "eeg" / f"{STEM}_eeg.vhdr"))
    np.testing.assert_allclose(fixed.eeg, want.get_data(picks=fixed.ch_names), atol=1e-9)
    assert fixed.ch_names == raw.ch_names and not np.allclose(fixed.eeg, raw.eeg)
    with pytest.raises(ValueError, match="corrections must be 'gradient', 'bcg'"):
        read_session(art, subject="01", correct="gradients")
    assert main(["info", str(art), "--correct", "bcg,gradient"]) == 0
    capsys.readouterr()


def test_correct_live_is_what_the_stream_would_have_given(scanner, tmp_path, capsys):
    """``correct --live`` (and reader option ``correct=live``): the stream's causal
    corrections over a recording — far closer to the clean EEG once their templates are
    ready, the first samples flagged; the reader gives the same EEG."""
    from apps.cli import main
    from rt_eeg2fmri.data import read_session
    from rt_eeg2fmri.data.correct import parse_corrections
    from rt_eeg2fmri.data.eeg_io import bad_spans

    assert parse_corrections("live") == ("gradient", "bcg", "live")
    assert parse_corrections("bcg,live") == ("bcg", "live")
    art, _ = scanner
    path = art / "sub-01" / "eeg" / f"{STEM}_eeg.vhdr"
    out = tmp_path / "live.vhdr"
    assert main(["correct", str(path), "--out", str(out), "--live"]) == 0
    said = capsys.readouterr().out
    flagged = int(re.search(r"live, (\d+) samples flagged", said).group(1))
    raw, fixed = _read(path), _read(out)
    # flagged: before the first volume and after the last, and while the templates fill
    # (8 volumes: 16 s; 30 beats: ~25 s after 2 s of learning the ECG)
    onsets = np.array([a["onset"] for a in raw.annotations if a["description"].endswith("R128")])
    outside = raw.n_times - round(24 * T_R * SFREQ)
    assert outside + 16 * SFREQ < flagged < outside + 30 * SFREQ, said
    clean = _read(
        art / "derivatives" / "simulation" / "sub-01" / "eeg" / f"{STEM}_desc-clean_eeg.vhdr"
    )
    ready = slice(round((onsets[0] + 30) * SFREQ), round((onsets[-1] + T_R) * SFREQ))

    def error_db(rec):
        band = lambda a: mne.filter.filter_data(a, SFREQ, 1.0, 40.0, verbose="error")[:, ready]  # noqa: E731
        truth = band(clean.get_data())
        return 10 * np.log10(((band(rec.get_data(picks=clean.ch_names)) - truth) ** 2).mean()
                             / (truth**2).mean())  # fmt: skip

    before, after = error_db(raw), error_db(fixed)
    assert before > 5 and after < before - 5, (before, after)
    # the flagged samples are annotated BAD_uncorrected (BrainVision: Comment/BAD_uncorrected)
    spans = bad_spans(fixed)
    assert spans[0, 0] == 0 and spans[-1, 1] == raw.n_times / SFREQ
    assert abs(round((spans[:, 1] - spans[:, 0]).sum() * SFREQ) - flagged) <= len(spans)
    session = read_session(art, subject="01", correct="live")
    np.testing.assert_allclose(session.eeg, fixed.get_data(picks=session.ch_names), atol=2e-7)
    np.testing.assert_allclose(session.bad_spans, spans, atol=1 / SFREQ)


def test_a_dataset_replay_keeps_the_ecg_channel(scanner):
    """``replay DATASET`` publishes a BIDS run's ECG channel (typed ECG in channels.tsv)
    after its EEG, so the stream's pulse correction finds it; training reads EEG only."""
    from rt_eeg2fmri.data import read_session
    from rt_eeg2fmri.data.channels import ecg_column
    from rt_eeg2fmri.replay.sources import load_recording

    art, _ = scanner
    eeg = read_session(art, subject="01")
    played = load_recording(art, subject="01")
    assert "ECG" not in eeg.ch_names and played.ch_names == [*eeg.ch_names, "ECG"]
    np.testing.assert_array_equal(played.eeg[:-1], eeg.eeg)
    want = _read(art / "sub-01" / "eeg" / f"{STEM}_eeg.vhdr").get_data(picks=["ECG"])[0]
    np.testing.assert_allclose(played.eeg[-1], want, atol=1e-9)
    assert ecg_column(played.ch_names) == (len(eeg.ch_names), "ECG")
    assert played.ch_types == ["EEG"] * len(eeg.ch_names) + ["ECG"]  # published typed ECG


def test_triggers_on_a_stim_channel_time_the_correction_as_markers_do(scanner, tmp_path, capsys):
    """The same in-scanner run as a FIF whose volume triggers are on a stim channel
    (``STI 014``, no annotations): ``--marker "eeg:STI 014"`` finds the volumes the
    ``R128`` markers give, and ``correct`` writes the same EEG, with them as ``R128``
    markers; without it the error says where the triggers may be."""
    from apps.cli import main
    from rt_eeg2fmri.data.eeg_io import read_eeg, scanner_onsets

    art, _ = scanner
    path = art / "sub-01" / "eeg" / f"{STEM}_eeg.vhdr"
    raw = _read(path)
    onsets = scanner_onsets(raw, "R128")
    stim = np.zeros((1, raw.n_times))
    stim[0, np.round(onsets * SFREQ).astype(int)[:, None] + np.arange(10)] = 1.0
    fif = raw.copy().set_annotations(None)
    fif.add_channels([mne.io.RawArray(stim, mne.create_info(["STI 014"], SFREQ, "stim"),
                                      verbose="error")], force_update_info=True)  # fmt: skip
    fif.save(tmp_path / "scan_raw.fif", verbose="error")
    session = read_eeg(tmp_path / "scan_raw.fif", marker="eeg:STI 014")
    np.testing.assert_allclose(session.volume_onsets, onsets, atol=0.5 / SFREQ)
    assert "STI 014" not in session.ch_names and list(session.stim) == ["STI 014"]
    by_markers, by_channel = tmp_path / "markers.vhdr", tmp_path / "channel.vhdr"
    assert main(["correct", str(path), "--out", str(by_markers), "--gradient"]) == 0
    assert main(["correct", str(tmp_path / "scan_raw.fif"), "--out", str(by_channel),
                 "--gradient", "--marker", "eeg:STI 014"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "gradient on 24 volumes" in out and "the 24 volume onsets of 'eeg:STI 014' marked" in out
    a, b = _read(by_markers), _read(by_channel)
    np.testing.assert_allclose(b.get_data(picks=a.ch_names), a.get_data(), atol=1e-9)
    # the corrected copy carries them as R128 markers: the next tool needs no --marker
    np.testing.assert_allclose(scanner_onsets(b, "R128"), onsets, atol=0.5 / SFREQ)
    assert "Response,R128," in by_channel.with_suffix(".vmrk").read_text()
    assert main(["correct", str(tmp_path / "scan_raw.fif"), "--out", str(tmp_path / "c.vhdr"),
                 "--gradient"]) == 1  # fmt: skip
    err = capsys.readouterr().err
    assert "the gradient correction needs the scanner's volume markers ('R128'); found 0" in err
    assert "it has stim channel(s) ['STI 014']" in err and "marker 'eeg:STI 014'" in err
    assert main(["correct", str(tmp_path / "scan_raw.fif"), "--out", str(tmp_path / "d.vhdr"),
                 "--gradient", "--marker", "eeg:STI 014:mask=x"]) == 1  # fmt: skip
    assert "'--marker' eeg:CHANNEL[:LEVEL|:mask=BITS]: the mask must be an integer" in (
        capsys.readouterr().err
    )


@pytest.fixture(scope="module")
def drifting(tmp_path_factory):
    """40 volumes at 5 kHz with the gradient artifact only, the EEG clock 37 ppm off the
    scanner's (the markers, on the scanner's clock, fall on whole samples N and N − 1
    apart), and the same with locked clocks."""
    base = tmp_path_factory.mktemp("drift")
    kw = dict(preset="tiny", seed=4, subjects=1, runs=1, volumes=40, sfreq=SFREQ,
              artifacts="gradient")  # fmt: skip
    return {
        sync: simulate_dataset(base / str(sync), scanner_sync=sync, **kw) for sync in (True, False)
    }


def _residual_db(data, clean, span):
    """(corrected − clean) against the clean EEG over ``span`` (dB): in the 1–40 Hz band of
    the whole run, and broadband."""
    band = lambda a: mne.filter.filter_data(a, SFREQ, 1.0, 40.0, verbose="error")[:, span]  # noqa: E731
    truth, wide = band(clean), clean[:, span]
    return (10 * np.log10(((band(data) - truth) ** 2).mean() / (truth**2).mean()),
            10 * np.log10(((data[:, span] - wide) ** 2).mean() / (wide**2).mean()))  # fmt: skip


def test_the_offline_template_is_gated_and_aligned_to_a_fraction_of_a_sample(drifting):
    """Against the clean EEG, between the end volumes MNE leaves, the 1–40 Hz band of the
    whole run and broadband. ``gated=False`` with locked clocks is MNE's AAS to the last
    sample. The gated template leaves far less in the band the model sees (MNE's mean of 8
    volumes subtracts 1/8 of the EEG back, and its per-volume detrend steps at every
    volume's edge). With the EEG clock drifting, MNE's whole-sample template leaves the
    artifact; aligned to a fraction of a sample (every volume), it is mostly gone."""
    from mne.preprocessing import GradientRemover

    from rt_eeg2fmri.data.correct import correct_raw
    from rt_eeg2fmri.data.eeg_io import scanner_onsets

    db = {}
    for sync, root in drifting.items():
        raw = _read(root / "sub-01" / "eeg" / f"{STEM}_eeg.vhdr")
        clean = _read(root / "derivatives" / "simulation" / "sub-01" / "eeg"
                      / f"{STEM}_desc-clean_eeg.vhdr")  # fmt: skip
        names = clean.ch_names
        samples = np.round(scanner_onsets(raw, "R128") * SFREQ).astype(int)
        inner = slice(samples[4], samples[-4])  # where MNE corrects
        mne_aas = GradientRemover(raw.get_data(picks=names), samples, window=(4, 4),
                                  tr_tol=2).corrected  # fmt: skip
        plain, plain_report = correct_raw(raw, gradient=True, bcg=False, gated=False)
        gated, report = correct_raw(raw, gradient=True, bcg=False)
        db[sync] = {k: _residual_db(v if isinstance(v, np.ndarray) else v.get_data(picks=names),
                                    clean.get_data(), inner)
                    for k, v in (("mne", mne_aas), ("plain", plain), ("gated", gated))}  # fmt: skip
        assert report.aligned_volumes == plain_report.aligned_volumes == (0 if sync else 40)
        if sync:
            np.testing.assert_array_equal(plain.get_data(picks=names)[:, inner], mne_aas[:, inner])
    locked, drift = db[True], db[False]
    assert locked["gated"][0] < locked["mne"][0] - 6, db  # 1–40 Hz: −19 vs −9 dB
    assert locked["gated"][1] < locked["mne"][1] - 4, db  # broadband: −15 vs −7 dB
    assert drift["mne"][1] > locked["mne"][1] + 20, db  # whole samples: 21 vs −7 dB
    assert drift["plain"][1] < drift["mne"][1] - 8, db  # aligned: 8 dB
    assert drift["gated"][0] < drift["mne"][0] - 8, db  # 1–40 Hz: −22 vs −9 dB
