"""The live (causal) gradient correction: against MNE's offline AAS, and its marker cases."""

from __future__ import annotations

import numpy as np
import pytest

from rt_eeg2fmri.data.triggers import TriggerChannel
from rt_eeg2fmri.realtime.gradient import LiveGradientCorrector

L = 200  # samples per volume in the synthetic cases


def synthetic(n_volumes=20, n_chans=3, length=L, lead=57, seed=0, noise=1.0):
    """EEG-like noise under a volume-locked artifact 100x larger, with an offset of 30; the
    onsets."""
    rng = np.random.default_rng(seed)
    art = 100 * rng.standard_normal((n_chans, length)) + 30
    n = lead + n_volumes * length + 31
    eeg = noise * rng.standard_normal((n_chans, n))
    x = eeg.copy()
    onsets = lead + length * np.arange(n_volumes)
    for o in onsets:
        x[:, o : o + length] += art
    return x, eeg, onsets


def run(corrector, x, markers, chunk=37, delay=0):
    """Feed ``x`` in chunks; each marker is given ``delay`` chunks after the one holding it."""
    outs, flags, given = [], [], set()
    markers = sorted(markers)
    for k, a in enumerate(range(0, x.shape[1], chunk)):
        b = min(x.shape[1], a + chunk)
        for m in markers:
            if m not in given and m < (k + 1 - delay) * chunk:
                corrector.add_marker(m)
                given.add(m)
        out, clean = corrector.process(x[:, a:b], a)
        outs.append(out)
        flags.append(clean)
    return np.concatenate(outs, axis=1), np.concatenate(flags)


@pytest.mark.parametrize("chunk", [1, 5, 16, 37, 211])
def test_where_the_scanner_stop_is_seen_does_not_depend_on_chunking(chunk):
    """After the last volume the next one is predicted, and the template is found not to
    fit (the scanner stopped) at the same sample however the stream is chunked: the output
    equals the one-shot run's to the last sample."""
    x, _, onsets = synthetic()
    whole = LiveGradientCorrector(3, L, n_template=4)
    want, want_clean = run(whole, x, onsets, chunk=x.shape[1])
    c = LiveGradientCorrector(3, L, n_template=4)
    out, clean = run(c, x, onsets, chunk=chunk)
    assert c.counts.stops == whole.counts.stops == 1
    np.testing.assert_array_equal(clean, want_clean)
    np.testing.assert_allclose(out, want, rtol=1e-12, atol=1e-9)
    end = onsets[-1] + L
    # seen on the 16th sample (the fewest it decides on), which is left as it came
    stopped = int(np.flatnonzero(out[0, end:] == x[0, end:])[0])
    assert stopped == 15 and (out[:, end + stopped :] == x[:, end + stopped :]).all()


def test_the_artifact_is_gone_once_the_template_is_ready_and_flagged_before():
    x, eeg, onsets = synthetic()
    c = LiveGradientCorrector(3, L, n_template=4)
    out, clean = run(c, x, onsets)
    ready_at = onsets[5]  # volume v's template is made from the volumes up to v - 2
    assert not clean[:ready_at].any() and clean[ready_at : onsets[-1] + L].all()
    # after the last volume the next is predicted; within its first 16 samples the template
    # is found not to fit (the scanner stopped) and nothing more is subtracted
    end = onsets[-1] + L
    assert not clean[end + 16 :].any() and c.counts.stops == 1
    np.testing.assert_array_equal(out[:, end + 16 :], x[:, end + 16 :])
    np.testing.assert_array_equal(out[:, : onsets[0]], x[:, : onsets[0]])  # before: as it came
    seg = slice(ready_at, onsets[-1] + L)
    # what is left: the EEG, less its mean over the template's volumes; the artifact's
    # offset is gone too (a model without a high-pass would see it)
    resid = out[:, seg] - eeg[:, seg]
    assert np.sqrt((resid**2).mean()) < 0.7  # noise 1, artifact 100
    assert np.abs(resid.mean(axis=1)).max() < 0.1
    assert c.counts.volumes == 20 and c.counts.markers == 20 and c.counts.predicted == 0


def test_late_missed_and_extra_markers_change_nothing():
    x, _, onsets = synthetic()
    ref, ref_clean = run(LiveGradientCorrector(3, L, n_template=4), x, onsets)
    missed = [o for k, o in enumerate(onsets) if k % 3 != 1]  # every third one lost
    extra = [int(onsets[6] + L // 2)]  # a spurious marker mid-volume
    c = LiveGradientCorrector(3, L, n_template=4)
    c.add_marker(onsets[0])  # the first on time: samples before a marker cannot wait for it
    out, clean = run(c, x, missed[1:] + extra, delay=2)  # the others two chunks late
    np.testing.assert_allclose(out, ref)
    # after the extra marker nothing is clean until a marker on the grid (that of volume 8:
    # volume 7's was lost), each given two chunks late
    doubt = slice(extra[0] + 2 * 37 - extra[0] % 37, onsets[8] + 2 * 37 - onsets[8] % 37)
    assert not clean[doubt].any() and ref_clean[doubt].all()
    rest = np.ones(clean.size, bool)
    rest[doubt] = False
    np.testing.assert_array_equal(clean[rest], ref_clean[rest])
    assert c.counts.predicted == len(onsets) - len(missed)
    assert c.counts.extra == 1 and c.counts.restarts == 0


def test_markers_ahead_of_their_samples_anchor_the_onsets():
    x, _, onsets = synthetic()
    ref, _ = run(LiveGradientCorrector(3, L, n_template=4), x, onsets)
    c = LiveGradientCorrector(3, L, n_template=4)
    c.add_marker(onsets[0])
    for o in onsets[1:]:  # every marker known before any sample
        c.add_marker(o)
    out, _ = run(c, x, [])
    np.testing.assert_allclose(out, ref)
    assert c.counts.predicted == 0


def test_a_tr_change_starts_the_template_over():
    a, _, on_a = synthetic(n_volumes=10, length=L, lead=40, seed=1)
    b, eeg_b, on_b = synthetic(n_volumes=12, length=150, lead=0, seed=2)
    x = np.concatenate([a[:, : on_a[-1] + L], b], axis=1)
    markers = [*on_a, *(on_b + on_a[-1] + L)]
    c = LiveGradientCorrector(3, L, n_template=3)
    out, clean = run(c, x, markers)
    assert c.counts.restarts == 1 and c.length == 150
    start_b = on_a[-1] + L
    # the new template is ready four whole volumes after the fourth new marker (volume v's
    # template is made from the volumes up to v - 2); from the first marker off the old grid
    # (the second new one, given with the chunk after it) no sample is flagged clean until then
    ready_at = start_b + (3 + 4) * 150
    first_doubt = (start_b + 150) // 37 * 37 + 37
    assert not clean[first_doubt:ready_at].any() and clean[ready_at : start_b + 12 * 150].all()
    seg = slice(ready_at, start_b + 12 * 150)
    resid = out[:, seg] - eeg_b[:, seg.start - start_b : seg.stop - start_b]
    assert np.sqrt(((resid - resid.mean(axis=1, keepdims=True)) ** 2).mean()) < 0.8


def test_lost_samples_are_written_as_zero_flagged_and_kept_out_of_the_template():
    """Samples a gap left out (zero-filled) at the start of a volume whose marker comes a
    chunk late: nothing to subtract the artifact from, so they come out as 0 and flagged
    (the template subtracted from zeros would put the artifact back in, flagged clean,
    and look like a stopped scanner); the rest of that volume is corrected, it does not
    join the template, and the volumes after it are corrected as without the loss."""
    x, eeg, onsets = synthetic()
    whole = LiveGradientCorrector(3, L, n_template=4)
    ref, ref_clean = run(whole, x, onsets, delay=1)
    gone = np.zeros(x.shape[1], bool)
    gone[onsets[9] : onsets[9] + 60] = True  # the first 60 samples of volume 9 never came
    x_lost = np.where(gone, 0.0, x)
    c = LiveGradientCorrector(3, L, n_template=4)
    outs, flags, given = [], [], 0
    for a in range(0, x.shape[1], 37):
        while given < onsets.size and onsets[given] < a:  # a chunk late
            c.add_marker(onsets[given])
            given += 1
        out, clean = c.process(x_lost[:, a : a + 37], a, gone[a : a + 37])
        outs.append(out)
        flags.append(clean)
    out, clean = np.concatenate(outs, axis=1), np.concatenate(flags)
    assert not out[:, gone].any() and not clean[gone].any()
    rest = ~gone
    np.testing.assert_array_equal(clean[rest], ref_clean[rest])
    # the volume's other samples: corrected with the same template
    v9 = slice(onsets[9] + 60, onsets[10])
    np.testing.assert_allclose(out[:, v9], ref[:, v9])
    assert c.counts.lost == 60 and c.counts.volumes == whole.counts.volumes - 1
    assert c.counts.stops == whole.counts.stops == 1  # where the run ends, not at the loss
    after = slice(onsets[10], onsets[-1] + L)
    resid = out[:, after] - eeg[:, after]
    assert np.sqrt((resid**2).mean()) < 0.7  # noise 1, artifact 100


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="volume_samples"):
        LiveGradientCorrector(3, 1)
    with pytest.raises(ValueError, match="n_template"):
        LiveGradientCorrector(3, 100, n_template=0)


@pytest.mark.slow
def test_live_correction_is_within_3_db_of_mnes_offline(tmp_path):
    """Simulated in-scanner EEG (locked clocks): the causal correction, chunk by chunk,
    against MNE's offline AAS (4 volumes before and 4 after), both scored against the clean
    EEG after a 1-40 Hz band-pass, on the volumes where the live template is ready."""
    import mne

    from rt_eeg2fmri.data.correct import correct_raw
    from tests.realtime.engine_helpers import simulated_in_scanner

    sfreq, n_template = 2500.0, 8
    raw, clean = simulated_in_scanner(tmp_path / "ds", seed=5, volumes=30, sfreq=sfreq,
                                      artifacts="gradient")  # fmt: skip
    picks = clean.ch_names
    onsets = np.round(
        np.array([a["onset"] for a in raw.annotations if a["description"].endswith("R128")]) * sfreq
    ).astype(int)
    length = int(np.median(np.diff(onsets)))
    offline, _ = correct_raw(raw, bcg=False)
    x = raw.get_data(picks=picks)
    live = LiveGradientCorrector(len(picks), length, n_template=n_template)
    online, flags = run(live, x, onsets, chunk=int(sfreq * 0.02), delay=1)  # 20 ms chunks
    # the first marker came a chunk late: the first volume is not whole, so the template
    # (volume v's from the volumes up to v - 2) is ready two volumes after n_template
    seg = slice(onsets[n_template + 2], onsets[-1] + length)
    assert flags[seg].all() and not flags[: onsets[n_template + 2]].any()

    def band(a):
        return mne.filter.filter_data(a[:, seg], sfreq, 1.0, 40.0, verbose="error")

    truth = band(clean.get_data())

    def db(a):
        return 10 * np.log10(((band(a) - truth) ** 2).mean() / (truth**2).mean())

    db_raw, db_off, db_on = db(x), db(offline.get_data(picks=picks)), db(online)
    assert db_off < db_raw - 5, (db_off, db_raw)
    assert db_on <= db_off + 3.0, (db_on, db_off)


def test_the_eeg_chain_corrects_with_markers_given_by_time():
    """EEGChain(gradient=N): volume markers by LSL time, chunks with timestamps, markers a
    chunk late (the first one before any sample) — the samples the corrector alone gives."""
    from rt_eeg2fmri.data import EEGChain, Preprocessing

    sfreq, t_r = 100.0, 2.0  # 200 samples per volume
    x, _, onsets = synthetic(n_volumes=12)
    names = ["Fz", "Cz", "Pz"]
    chain = EEGChain(
        Preprocessing(sfreq=sfreq, winsize=4.0), ch_names=names, sfreq=sfreq, labels=names,
        units=["V"] * 3, gradient=4, t_r=t_r,
    )  # fmt: skip
    t0 = 1000.0
    stamps = t0 + np.arange(x.shape[1]) / sfreq
    chain.add_volume_marker(t0 + onsets[0] / sfreq)
    outs, uncorrected, given = [], 0, 1
    for a in range(0, x.shape[1], 37):
        out, _, report = chain.process(x[:, a : a + 37].T, stamps[a : a + 37])
        outs.append(np.array(out))
        uncorrected += report.uncorrected
        while given < onsets.size and onsets[given] < a + 37:  # a chunk late
            chain.add_volume_marker(t0 + onsets[given] / sfreq)
            given += 1
    ref = LiveGradientCorrector(3, 200, n_template=4)
    ref.add_marker(onsets[0])
    want, clean = run(ref, x, onsets[1:], delay=1)
    np.testing.assert_allclose(np.concatenate(outs, axis=1), want)
    assert uncorrected == int((~clean).sum()) and chain.gradient.counts.markers == 12
    with pytest.raises(ValueError, match="needs the TR"):
        EEGChain(
            Preprocessing(sfreq=sfreq, winsize=4.0), ch_names=names, sfreq=sfreq, labels=names,
            units=["V"] * 3, gradient=4,
        )  # fmt: skip


def test_the_eeg_chain_gives_the_corrector_what_a_gap_or_a_nan_burst_left_out():
    """In the scanner a gap in the timestamps (the samples written as zeros) and a burst of
    NaN are samples lost: the chain's output is 0 there, flagged (``report.clean``,
    ``uncorrected``), and the same as the corrector told which samples were lost."""
    from rt_eeg2fmri.data import EEGChain, Preprocessing

    sfreq = 100.0
    x, _, onsets = synthetic(n_volumes=14)
    names = ["Fz", "Cz", "Pz"]
    chain = EEGChain(
        Preprocessing(sfreq=sfreq, winsize=4.0), ch_names=names, sfreq=sfreq, labels=names,
        units=["V"] * 3, gradient=4, t_r=2.0,
    )  # fmt: skip
    stamps = 7.0 + np.arange(x.shape[1]) / sfreq
    gone = np.zeros(x.shape[1], bool)
    gone[onsets[8] + 10 : onsets[8] + 40] = True  # never sent: a gap in the timestamps
    nan = slice(onsets[11] + 5, onsets[11] + 15)
    sent = x.copy()
    sent[:, nan] = np.nan
    outs, flags, uncorrected = [], [], 0
    for a in range(0, x.shape[1], 37):
        k = np.arange(a, min(a + 37, x.shape[1]))
        k = k[~gone[k]]
        for o in onsets:
            if a - 37 <= o < a:  # a chunk late
                chain.add_volume_marker(stamps[o])
        if k.size:
            out, _, report = chain.process(sent[:, k].T, stamps[k])
            outs.append(np.array(out))
            flags.append(report.clean)
            uncorrected += report.uncorrected
    out, clean = np.concatenate(outs, axis=1), np.concatenate(flags)
    lost = gone.copy()
    lost[nan] = True
    assert out.shape == x.shape and not out[:, lost].any() and not clean[lost].any()
    ref = LiveGradientCorrector(3, L, n_template=4)
    want, want_clean = [], []
    x0 = np.where(lost, 0.0, x)
    for a in range(0, x.shape[1], 37):
        for o in onsets:
            if a - 37 <= o < a:
                ref.add_marker(o)
        w, f = ref.process(x0[:, a : a + 37], a, lost[a : a + 37])
        want.append(w)
        want_clean.append(f)
    np.testing.assert_allclose(out, np.concatenate(want, axis=1))
    np.testing.assert_array_equal(clean, np.concatenate(want_clean))
    assert uncorrected == int((~clean).sum()) and chain.gradient.counts.lost == 40


def test_a_loss_longer_than_the_gap_fill_starts_the_templates_over(caplog):
    """3 s lost where gaps are filled for at most 0.5 s: the samples after it are no longer
    on the volume grid the template was made on, so the correction starts over (a warning,
    a restart), flags until the new template is ready, and then corrects as before."""
    import logging

    from rt_eeg2fmri.data import EEGChain, Preprocessing

    sfreq = 100.0
    x, eeg, onsets = synthetic(n_volumes=24)
    names = ["Fz", "Cz", "Pz"]
    chain = EEGChain(
        Preprocessing(sfreq=sfreq, winsize=4.0), ch_names=names, sfreq=sfreq, labels=names,
        units=["V"] * 3, gradient=4, t_r=2.0, max_fill=50,
    )  # fmt: skip
    stamps = 7.0 + np.arange(x.shape[1]) / sfreq
    gone = np.zeros(x.shape[1], bool)
    gone[onsets[8] + 10 : onsets[8] + 310] = True
    outs, flags = [], []
    with caplog.at_level(logging.WARNING, logger="rt_eeg2fmri"):
        for a in range(0, x.shape[1], 37):
            for o in onsets:
                if a - 37 <= o < a:  # a chunk late; the scanner's markers go on in the loss
                    chain.add_volume_marker(stamps[o])
            k = np.arange(a, min(a + 37, x.shape[1]))
            k = k[~gone[k]]
            if k.size:
                out, _, report = chain.process(x[:, k].T, stamps[k])
                outs.append(np.array(out))
                flags.append(report.clean)
    out, clean = np.concatenate(outs, axis=1), np.concatenate(flags)
    assert out.shape[1] == x.shape[1] - 300 + 50  # 0.5 s of the 3 s filled
    assert chain.gradient.counts.restarts == 1
    assert "start their templates over" in caplog.text
    # after the loss: flagged until the new template holds 4 volumes, then corrected
    after = onsets[8] + 310 - 250  # the first sample after the loss, in the output
    assert not clean[after : after + 4 * L].any()
    ready = np.flatnonzero(clean[after:])[0] + after
    assert clean[ready : ready + 8 * L].all()
    tail = slice(ready, ready + 8 * L)
    resid = out[:, tail] - eeg[:, tail.start + 250 : tail.stop + 250]
    assert np.sqrt((resid**2).mean()) < 0.7  # noise 1, artifact 100


@pytest.mark.lsl
def test_the_gradient_correction_on_a_trigger_channel_of_the_stream(uid):
    """The volume onsets from a trigger channel of the EEG stream (one sample high at each
    onset), over real LSL: every edge is a marker, given ahead of its samples, so the EEG
    the model sees is what the corrector gives with every marker known in time."""
    import threading
    import time

    import pylsl

    from rt_eeg2fmri.realtime.inlet import EEGConsumer

    sfreq = 100.0
    x, _, onsets = synthetic(n_volumes=12)
    trig = np.zeros((1, x.shape[1]))
    trig[0, onsets] = 1.0
    info = pylsl.StreamInfo(uid, "EEG", 4, sfreq, pylsl.cf_double64, uid)
    chans = info.desc().append_child("channels")
    for name in ("Fz", "Cz", "Pz", "TRIG"):
        chans.append_child("channel").append_child_value("label", name)
    outlet = pylsl.StreamOutlet(info)
    sent = np.vstack([x, trig]).T

    def push():
        t0 = pylsl.local_clock()
        for a in range(0, sent.shape[0], 37):
            chunk = sent[a : a + 37]  # liblsl stamps a chunk by its last sample
            outlet.push_chunk(chunk, t0 + (a + len(chunk) - 1) / sfreq)
            time.sleep(0.005)

    consumer = EEGConsumer(uid, ch_names=["Fz", "Cz", "Pz"], sfreq=sfreq, units="V", gradient=4,
                           t_r=2.0, trigger=TriggerChannel("TRIG"))  # fmt: skip
    with consumer:
        assert outlet.wait_for_consumers(10.0)
        pusher = threading.Thread(target=push)
        pusher.start()
        pusher.join()
        assert consumer.wait_for(x.shape[1], timeout=20)
        data = consumer.ring.latest(x.shape[1])[0]
    assert consumer.ring.n_written == x.shape[1] and consumer.health.gaps == 0
    assert consumer.chain.gradient.counts.markers == 12
    assert consumer.trigger_times.qsize() == 12
    want, _ = run(LiveGradientCorrector(3, L, n_template=4), x, onsets)
    np.testing.assert_allclose(data, want, rtol=1e-5, atol=1e-4)  # the scanner's stop too


@pytest.mark.lsl
def test_a_gap_in_an_in_scanner_stream_flags_the_windows_that_hold_it(uid, tmp_path):
    """Over real LSL, end to end: in-scanner EEG (an artifact 100× the EEG) with the volume
    triggers on a channel of the stream, and 0.5 s never sent mid-run. The engine corrects
    on the trigger channel; the two windows that hold the lost samples are flagged
    ``uncorrected`` in the timing log (the lost samples were zeros minus the template,
    flagged clean, before), the windows around them are clean, and the summary counts the
    lost samples."""
    import threading
    import time

    import pandas as pd
    import pylsl

    from rt_eeg2fmri.checkpoint import load_checkpoint
    from rt_eeg2fmri.realtime.engine import Engine
    from rt_eeg2fmri.replay.outlets import eeg_stream_info
    from tests.realtime.engine_helpers import tiny_checkpoint

    sfreq, names = 100.0, ["Fz", "Cz", "Pz"]
    ckpt = load_checkpoint(tiny_checkpoint(tmp_path / "m.pt", ch_names=names, winsize=4.0, t_r=2.0))
    x, _, onsets = synthetic(n_volumes=13)  # 2-s volumes from 0.57 s
    trig = np.zeros((1, x.shape[1]))
    trig[0, onsets] = 1.0
    sent = np.vstack([x, trig]).T
    gone = np.zeros(sent.shape[0], bool)
    gone[1620:1670] = True  # 16.2-16.7 s: never sent (the trigger at 16.57 s with it)
    info = eeg_stream_info(uid, ch_names=[*names, "TRIG"], sfreq=sfreq, source_id=uid,
                           units=["microvolts"] * 4)  # fmt: skip
    outlet = pylsl.StreamOutlet(info)
    engine = Engine.from_checkpoint(
        ckpt, source=f"name:{uid}", sync="samples", outlet_name=None, device="cpu",
        correct=("gradient",), gradient_volumes=3, trigger="eeg:TRIG",
        timing=tmp_path / "timing.tsv",
    )  # fmt: skip

    def push():  # 4× real time, stamped on the sample grid
        t0 = pylsl.local_clock()
        for a in range(0, sent.shape[0], 25):
            k = np.arange(a, min(a + 25, sent.shape[0]))
            k = k[~gone[k]]
            for b in np.split(k, np.flatnonzero(np.diff(k) > 1) + 1) if k.size else []:
                outlet.push_chunk(sent[b], t0 + b[-1] / sfreq)
            time.sleep(0.25 / 4)

    with engine:
        assert outlet.wait_for_consumers(10.0)
        pusher = threading.Thread(target=push)
        pusher.start()
        summary = engine.run(max_volumes=11, duration=30.0)
        pusher.join()
    assert summary["gaps"] == 1 and summary["samples_lost"] == 50, summary
    assert summary["gradient"]["lost"] == 50 and summary["skipped"] == 0, summary
    timing = pd.read_csv(tmp_path / "timing.tsv", sep="\t")
    ends = np.round(timing["window_end"] - timing["window_end"].iloc[0] + 4.0, 1)
    flagged = dict(zip(ends, timing["uncorrected"], strict=True))
    # the template (3 volumes, the last two before) is ready from 10.57 s: windows ending
    # by 14 s reach back before it; those ending at 18 and 20 s hold the lost samples
    assert [flagged[t] for t in (16.0, 18.0, 20.0, 22.0, 24.0)] == [0, 1, 1, 0, 0], flagged
    assert flagged[4.0] == 1 and summary["uncorrected"] == sum(flagged.values())


@pytest.mark.lsl
@pytest.mark.slow
def test_stream_correct_gradient_over_lsl(tmp_path):
    """A simulated in-scanner run replayed at 1 kHz with its scanner markers: the engine's
    EEG chain subtracts the gradient artifact on the marker stream's markers; the windows
    it has not cleaned yet are flagged in the timing log; the EEG the model sees equals the
    same chain run offline once the template is ready, and a pylsl inlet receives it
    (``--publish-eeg``) with its clean flags."""
    import nibabel as nib
    import pandas as pd

    from rt_eeg2fmri.checkpoint import load_checkpoint
    from rt_eeg2fmri.data import read_session
    from rt_eeg2fmri.sim import simulate_dataset
    from rt_eeg2fmri.volume_stream import parse_volume_stream_info
    from tests.realtime.engine_helpers import (
        AFFINE,
        GRID,
        chain_offline,
        stream_in_scanner,
        tiny_checkpoint,
    )

    root = simulate_dataset(
        tmp_path / "ds", preset="tiny", seed=3, subjects=1, runs=1, volumes=16, sfreq=1000.0,
        artifacts="gradient", progress=False,
    )  # fmt: skip
    session = read_session(root, subject="01")
    ckpt = load_checkpoint(tiny_checkpoint(tmp_path / "m.pt", winsize=4.0, t_r=2.0))
    atlas = np.zeros(GRID, np.int16)
    atlas[1:, :2] = 1  # one region: its mean, then the Clean channel
    nib.save(nib.Nifti1Image(atlas, AFFINE), tmp_path / "roi.nii.gz")
    roi, volumes = [], []
    summary, online, published = stream_in_scanner(
        session, ckpt, tmp_path, speed=4.0, max_volumes=12, duration=30.0,
        correct=("gradient",), gradient_volumes=3, roi=tmp_path / "roi.nii.gz",
        nifti=tmp_path / "pred.nii", roi_samples=roi, volume_samples=volumes,
    )  # fmt: skip
    n = online.shape[1]  # the stream went on after the ring was read
    assert published.shape[0] >= n and published.shape[1] == len(ckpt.ch_names) + 1
    np.testing.assert_allclose(published[:n, :-1].T * 1e-6, online, rtol=1e-5, atol=1e-12)
    clean_flag = published[:, -1]
    assert clean_flag[0] == 0 and clean_flag[-1] == 1 and set(clean_flag) == {0.0, 1.0}
    grad = summary["gradient"]
    assert summary["volumes"] == 12 and grad["markers"] >= 10 and grad["volumes"] >= 9, summary
    assert grad["extra"] == 0 and grad["restarts"] == 0 and grad["uncorrected_samples"] > 0
    timing = pd.read_csv(tmp_path / "timing.tsv", sep="\t")
    flags = timing["uncorrected"].to_numpy()
    # the first windows hold samples from before the template was ready; the last do not
    assert flags[0] == 1 and flags[-1] == 0 and (np.diff(flags) <= 0).all(), flags
    assert summary["uncorrected"] == flags.sum()
    # the ROI stream (read by pylsl) and its table carry the same flag per volume
    roi = np.asarray(roi)
    assert roi.shape == (12, 2)
    np.testing.assert_array_equal(roi[:, 1], 1 - flags)
    table = pd.read_csv(tmp_path / "pred_roi.tsv", sep="\t")
    assert list(table.columns) == ["volume", "window_end", "roi", "clean"]
    np.testing.assert_array_equal(table["clean"], 1 - flags)
    np.testing.assert_allclose(table["roi"], roi[:, 0], rtol=1e-5)
    # the whole-brain volume stream (read by pylsl) carries it after the voxels, as its
    # description says; the volumes are those of the NIfTI series
    meta = parse_volume_stream_info(volumes[0])
    samples = np.asarray(volumes[1:], np.float32)
    assert meta.flags == ("Clean",) and samples.shape == (12, meta.n_channels)
    np.testing.assert_array_equal([meta.flag(v, "Clean") for v in samples], 1 - flags)
    series = np.asanyarray(nib.load(tmp_path / "pred.nii").dataobj)
    for k, sample in enumerate(samples):
        np.testing.assert_allclose(meta.to_volume(sample), series[..., k], rtol=1e-6)

    want = chain_offline(session, ckpt, step=100, gradient=3, t_r=2.0)[:, :n]
    last = slice(n - ckpt.n_times, n)  # the last window: its volumes are all corrected
    np.testing.assert_allclose(online[:, last], want[:, last], rtol=1e-3, atol=1e-7)


def _shifted(volume: np.ndarray, by: float) -> np.ndarray:
    """``volume`` delayed by ``by`` samples (a phase ramp: periodic, band-limited)."""
    k = np.arange(volume.shape[1] // 2 + 1)
    spec = np.fft.rfft(volume, axis=1) * np.exp(-2j * np.pi * k * by / volume.shape[1])
    return np.fft.irfft(spec, n=volume.shape[1], axis=1)


def _smooth_artifact(rng, n_chans=3, length=L, harmonics=(1, 50)):
    """A volume-locked artifact 100x the EEG whose power sits in these harmonics."""
    spec = np.zeros((n_chans, length // 2 + 1), complex)
    lo, hi = harmonics
    spec[:, lo:hi] = rng.standard_normal((n_chans, hi - lo)) + 1j * rng.standard_normal(
        (n_chans, hi - lo)
    )
    art = np.fft.irfft(spec, n=length, axis=1)
    return 100 * art / art.std()


def _drifting(per_volume: float, n_vol: int = 30, lead: int = 40):
    """``(x, eeg, grid)``: EEG plus an artifact shifted ``per_volume`` samples more in each
    volume of the grid ``lead + L·k`` (a scanner clock drifting against the EEG's)."""
    rng = np.random.default_rng(5)
    art = _smooth_artifact(rng)
    eeg = rng.standard_normal((3, lead + n_vol * L + 20))
    x = eeg.copy()
    grid = lead + L * np.arange(n_vol)
    for v, o in enumerate(grid):
        x[:, o : o + L] += _shifted(art, per_volume * v)
    return x, eeg, grid


def _residual_db(out, eeg, seg):
    resid = out[:, seg] - eeg[:, seg]
    return 10 * np.log10((resid**2).mean() / (eeg[:, seg] ** 2).mean())


def test_drifting_clocks_are_aligned_to_a_fraction_of_a_sample(monkeypatch):
    """The EEG clock 0.3 samples per volume slow against the scanner's (markers on the EEG's
    sample grid): each volume's artifact is measured to a fraction of a sample and the past
    volumes are shifted to the next one's timing; a plain mean would blur them."""
    import rt_eeg2fmri.realtime.gradient as gradient

    x, eeg, onsets = _drifting(0.3)  # 9 samples late by the last volume
    seg = slice(onsets[10], onsets[-1] + L)
    aligned, clean = run(LiveGradientCorrector(3, L, n_template=8), x, onsets)
    monkeypatch.setattr(gradient, "ALIGN_MIN", np.inf)
    plain, _ = run(LiveGradientCorrector(3, L, n_template=8), x, onsets)
    assert clean[seg].all()
    # what is left: about the 1/8 of the EEG any mean of 8 volumes holds (-9 dB)
    assert _residual_db(aligned, eeg, seg) < -7 < 10 < _residual_db(plain, eeg, seg)


@pytest.mark.parametrize("delay", [0, 1])
def test_markers_that_walk_off_the_volume_grid_with_the_scanner_clock_are_followed(delay):
    """A real recording with unlocked clocks: the scanner's markers are where the EEG clock
    saw each volume begin, so their spacing is 200 or 199 samples and they walk 0.3 samples
    per volume off the volume grid (9 by the last volume), with the artifact. Given ahead
    of their samples or a chunk late, every one is taken (none is an extra, the scanner is
    not taken to have stopped before the end), and the artifact is gone as with markers on
    the grid."""
    x, eeg, grid = _drifting(-0.3)  # the scanner runs fast: ever earlier
    n_vol, lead = grid.size, grid[0]
    markers = np.round(lead + (L - 0.3) * np.arange(n_vol)).astype(int)
    assert set(np.diff(markers)) == {199, 200} and grid[-1] - markers[-1] == 9
    c = LiveGradientCorrector(3, L, n_template=8)
    out, clean = run(c, x, markers, delay=delay)
    # (the one stop: after the last volume, where the recording ends)
    assert c.counts.extra == 0 and c.counts.stops == 1 and c.counts.restarts == 0, c.counts
    assert c.counts.markers == n_vol and c.counts.volumes >= n_vol - 1
    seg = slice(grid[10], grid[-1] + L - 10)
    assert clean[seg].all()
    assert _residual_db(out, eeg, seg) < -7  # about the 1/8 of the EEG a mean of 8 holds


def test_what_does_not_repeat_from_volume_to_volume_stays_out_of_the_template(monkeypatch):
    """Slow waves 5x the EEG that are not locked to the volumes (as the pulse artifact is
    not), below the artifact's band: the plain mean of the past volumes carries 1/N of
    them, which the correction would add back; the gated template leaves them out."""
    import rt_eeg2fmri.realtime.gradient as gradient

    rng = np.random.default_rng(6)
    art, n_vol, lead = _smooth_artifact(rng, harmonics=(12, 80)), 30, 40
    n = lead + n_vol * L + 20
    spec = np.zeros((3, n // 2 + 1), complex)
    slow = slice(1, n // L * 6)  # below 6 cycles per volume
    spec[:, slow] = rng.standard_normal((3, slow.stop - 1)) * np.exp(
        2j * np.pi * rng.uniform(size=(3, slow.stop - 1))
    )
    wave = np.fft.irfft(spec, n=n, axis=1)
    eeg = rng.standard_normal((3, n)) + 5 * wave / wave.std()  # what is not the artifact
    x = eeg.copy()
    onsets = lead + L * np.arange(n_vol)
    for o in onsets:
        x[:, o : o + L] += art
    seg = slice(onsets[10], onsets[-1] + L)
    gated, _ = run(LiveGradientCorrector(3, L, n_template=8), x, onsets)
    monkeypatch.setattr(gradient, "GATE", 0.0)
    plain, _ = run(LiveGradientCorrector(3, L, n_template=8), x, onsets)
    assert _residual_db(gated, eeg, seg) < _residual_db(plain, eeg, seg) - 6


def test_locked_clocks_keep_their_timing_however_long_the_run(monkeypatch):
    """With locked clocks each template's timing (where its artifact begins, against which
    the next volume is measured) stays where the artifact is over 120 volumes, and the
    correction is the plain gated mean's, sample for sample. A template that took the
    line's prediction for its own timing added the prediction's error to every
    measurement, and the timing wandered off (0.14 samples in 120 volumes here)."""
    import rt_eeg2fmri.realtime.gradient as gradient

    rng = np.random.default_rng(1)
    art, n_vol = _smooth_artifact(rng), 120
    x = 3 * rng.standard_normal((3, 40 + n_vol * L + 20))
    onsets = 40 + L * np.arange(n_vol)
    for o in onsets:
        x[:, o : o + L] += art
    c = LiveGradientCorrector(3, L, n_template=8)
    timing, make = [], c._template

    def recorded(onset):
        t = make(onset)
        timing.append(t.at - onset)
        return t

    monkeypatch.setattr(c, "_template", recorded)
    out, _ = run(c, x, onsets)
    assert len(timing) >= n_vol - 2 and np.abs(timing).max() < 0.02, np.round(timing[::10], 3)
    monkeypatch.setattr(gradient, "ALIGN_MIN", np.inf)
    plain, _ = run(LiveGradientCorrector(3, L, n_template=8), x, onsets)
    np.testing.assert_array_equal(out, plain)
