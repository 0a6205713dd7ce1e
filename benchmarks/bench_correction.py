"""In-scanner EEG: how close the offline and live corrections bring it to the clean EEG.

A simulated in-scanner run (``simulate --artifacts gradient,bcg``) keeps the clean EEG
under its artifacts. Printed per setting (uncorrected; the gradient correction with MNE's
template and with ours, gated; the pulse correction (MNE's OBS); both; the live gradient
correction alone and both live corrections as the stream's EEG chain runs them — causal,
in 20 ms chunks with markers a chunk late, R-peaks found live): the residual power
(corrected − clean) relative to the clean EEG in dB and the mean per-channel correlation
with the clean EEG, both after a 1–40 Hz band-pass of the whole run, over the scanned part
of the run; the residual without a band-pass; and the seconds the correction took (CPU seconds for the live one,
also per second of stream). Then the CPU and the per-chunk time on the acquisition thread
(the latency they add) of the EEG chain with and without both live corrections at 64
channels.

    python benchmarks/bench_correction.py --volumes 60 --sfreq 5000 [--scanner-sync off]
        [--cost-beats 20,30] [--compare-with REF]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def main() -> None:
    """Simulate one run, correct it four ways, print the table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--volumes", type=int, default=60)
    ap.add_argument("--sfreq", type=float, default=5000.0)
    ap.add_argument("--channels", default="34")
    ap.add_argument("--scanner-sync", choices=("on", "off"), default="on")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument(
        "--cost-beats",
        default=None,
        help="pulse templates (past beats, comma-separated) in the 64-ch cost table, side by "
        "side (default: the stream's)",
    )
    ap.add_argument(
        "--compare-with",
        default=None,
        metavar="REF",
        help="also correct offline (both corrections) with git REF's code, on the same run",
    )
    ap.add_argument(
        "--gap",
        type=float,
        default=0.0,
        help="only the gap measurement: seconds of the stream lost, twice",
    )
    args = ap.parse_args()

    import mne
    import numpy as np

    from rt_eeg2fmri.data.correct import correct_raw
    from rt_eeg2fmri.realtime.gradient import LiveGradientCorrector
    from rt_eeg2fmri.sim import read_in_scanner_run, simulate_dataset

    with tempfile.TemporaryDirectory() as tmp:
        root = simulate_dataset(
            Path(tmp) / "ds", preset="small", seed=args.seed, subjects=1, runs=1,
            volumes=args.volumes, sfreq=args.sfreq, channels=args.channels,
            artifacts="gradient,bcg", scanner_sync=args.scanner_sync == "on", progress=False,
        )  # fmt: skip
        raw, clean = read_in_scanner_run(root)
        raw.set_channel_types({"ECG": "ecg"})
        events, ids = mne.events_from_annotations(raw, verbose="error")
        trs = events[events[:, 2] == ids["Response/R128"], 0]
        span = slice(int(trs[0]), int(trs[-1] + np.median(np.diff(trs))))
        # the whole run filtered, then the scanned span: no filter edge inside it
        band = lambda a: mne.filter.filter_data(a, args.sfreq, 1.0, 40.0, verbose="error")[:, span]  # noqa: E731
        truth, broad = band(clean.get_data()), clean.get_data()[:, span]

        def row(name, rec, seconds):
            x = band(rec.get_data(picks=clean.ch_names))
            db = 10 * np.log10(((x - truth) ** 2).mean() / (truth**2).mean())
            r = np.mean([np.corrcoef(a, b)[0, 1] for a, b in zip(x, truth, strict=True)])
            wide = rec.get_data(picks=clean.ch_names)[:, span]
            db_wide = 10 * np.log10(((wide - broad) ** 2).mean() / (broad**2).mean())
            print(f"| {name} | {db:.1f} | {r:.3f} | {db_wide:.1f} | {seconds:.1f} |")

        n_ch = len(clean.ch_names)
        if args.gap:
            onsets = (trs - raw.first_samp) / args.sfreq
            return gap_rows(raw.get_data(), list(raw.ch_names), clean, onsets, args)
        print(f"{args.volumes} volumes, {n_ch} channels at {args.sfreq:g} Hz, "
              f"scanner sync {args.scanner_sync}\n")  # fmt: skip
        print("| setting | residual vs clean (dB, 1–40 Hz) | r with clean | residual, broadband "
              "(dB) | correction s |")  # fmt: skip
        print("|---|---:|---:|---:|---:|")
        row("uncorrected", raw, 0.0)
        for name, kw in (
            ("gradient (MNE's template: mean of the detrended volumes)",
             dict(bcg=False, gated=False)),
            ("gradient (gated, trends kept)", dict(bcg=False)),
            ("pulse (OBS)", dict(gradient=False)),
            ("both, MNE's gradient template (ends and alignment added)", dict(gated=False)),
            ("both", {}),
        ):  # fmt: skip
            t0 = time.perf_counter()
            fixed, _ = correct_raw(raw, **kw)
            row(name, fixed, time.perf_counter() - t0)
        # MNE's AAS as it is (its end volumes left, whole samples), then MNE's OBS
        t0 = time.perf_counter()
        plain = mne.preprocessing.remove_fmri_gradient_artifact(
            raw.copy().load_data(), trs - raw.first_samp, window=(4, 4), tr_tol=2,
            picks=["eeg", "ecg"], verbose="error",
        )  # fmt: skip
        mne_both, _ = correct_raw(plain, gradient=False)
        row("both, MNE as it is (remove_fmri_gradient_artifact, then OBS)", mne_both,
            time.perf_counter() - t0)  # fmt: skip
        if args.compare_with:
            ref = raw.copy()
            ref._data[:] = other_correction(args.compare_with, root, raw.ch_names)
            row(f"both, {args.compare_with}'s offline correction", ref, float("nan"))
        # live: causal, 20 ms chunks, each marker given with the chunk after the one holding it
        length = int(np.round(np.median(np.diff(trs))))
        x = raw.get_data(picks=clean.ch_names)
        chunk = int(args.sfreq * 0.02)
        for n_template in (4, 8):
            live = LiveGradientCorrector(x.shape[0], length, n_template=n_template)
            out, flags, given = np.empty_like(x), np.zeros(x.shape[1], bool), 0
            t0 = time.process_time()
            for a in range(0, x.shape[1], chunk):
                while given < trs.size and trs[given] - raw.first_samp < a:
                    live.add_marker(int(trs[given] - raw.first_samp))
                    given += 1
                out[:, a : a + chunk], flags[a : a + chunk] = live.process(x[:, a : a + chunk], a)
            cpu = time.process_time() - t0
            rec = raw.copy().pick(clean.ch_names)
            rec._data[:] = out
            row(f"gradient live (causal, {n_template} past volumes)", rec, cpu)
            stream_s = x.shape[1] / args.sfreq
            print(f"  live, {n_template} volumes: {100 * flags[span].mean():.0f} % of the scanned "
                  f"samples flagged clean; CPU {1e3 * cpu / stream_s:.2f} ms per s of stream at "
                  f"{x.shape[0]} ch (≈ {1e3 * cpu / stream_s * 64 / x.shape[0]:.2f} ms at 64 ch); "
                  f"{live.counts}")  # fmt: skip
        # both live, as the stream's EEG chain runs them: gradient (8 past volumes, the
        # ECG channel too), then pulse (30 past beats, R-peaks found live on the ECG)
        names = list(raw.ch_names)
        onsets = (trs - raw.first_samp) / args.sfreq
        full = raw.get_data()
        out, flags, cpu = run_chain(full, names, clean.ch_names, onsets, args.sfreq, chunk)
        rec = raw.copy().pick(clean.ch_names)
        rec._data[:] = out
        row("both live (causal: 8 past volumes, 30 past beats)", rec, cpu)
        dirty = np.flatnonzero(~flags[span])  # the scanned samples from the last flagged on
        tail = slice(span.start + (dirty[-1] + 1 if dirty.size else 0), span.stop)
        print(f"  both live: {100 * flags[span].mean():.0f} % of the scanned samples flagged "
              f"clean (from {tail.start / args.sfreq:.1f} s); CPU {1e3 * cpu / stream_s:.2f} ms "
              f"per s of stream at {n_ch} ch")  # fmt: skip
        both_off, _ = correct_raw(raw)
        both_mne, _ = correct_raw(raw, gated=False)
        for name, rec_ in (("both offline, MNE as it is", mne_both),
                           ("both offline, MNE's gradient template", both_mne),
                           ("both offline", both_off), ("both live", rec)):  # fmt: skip
            x_ = band(rec_.get_data(picks=clean.ch_names))[:, tail.start - span.start :]
            t_ = truth[:, tail.start - span.start :]
            w_ = rec_.get_data(picks=clean.ch_names)[:, tail] - clean.get_data()[:, tail]
            b_ = clean.get_data()[:, tail]
            print(f"  {name}, where the live templates are ready: "
                  f"{10 * np.log10(((x_ - t_) ** 2).mean() / (t_**2).mean()):.1f} dB "
                  f"(broadband {10 * np.log10((w_**2).mean() / (b_**2).mean()):.1f} dB)")  # fmt: skip
        # CPU and the latency the corrections add, at 64 channels (the recording's channels
        # repeated), per 100-ms chunk as the stream pulls: the chain with and without them
        reps = -(-64 // n_ch)
        big = np.vstack([np.tile(full[:-1], (reps, 1))[:64], full[-1:]])
        big_names = [f"E{i}" for i in range(64)] + ["ECG"]
        pull = int(args.sfreq * 0.1)
        print(f"\n64 ch x {args.sfreq:g} Hz, {pull}-sample chunks (100 ms), {stream_s:.0f} s of "
              "stream; chain to 250 Hz with a 1-40 Hz band-pass:\n")  # fmt: skip
        print("| chain | CPU per s of stream (ms) | per chunk p50 (ms) | p99 (ms) |")
        print("|---|---:|---:|---:|")
        beats = [None] if args.cost_beats is None else [int(b) for b in args.cost_beats.split(",")]
        rows = [("no correction", False, None)] + [
            ("gradient + pulse" + ("" if b is None else f" ({b} beats)"), True, b) for b in beats
        ]
        for label, correct, n_beats in rows:
            _, _, cpu, per = run_chain(big, big_names, big_names[:-1], onsets, args.sfreq, pull,
                                       correct=correct, rate=250.0, times=True,
                                       beats=n_beats)  # fmt: skip
            print(f"| {label} | {1e3 * cpu / stream_s:.1f} | {np.median(per):.2f} | "
                  f"{np.percentile(per, 99):.2f} |")  # fmt: skip


def other_correction(ref: str, root, names):
    """Both offline corrections of the run by git ``ref``'s code, in a subprocess.

    Returns the corrected samples of ``names`` (volts).
    """
    import json
    import subprocess
    import sys

    import numpy as np
    from bench_ingest import extract_ref

    with tempfile.TemporaryDirectory() as tmp:
        tree = extract_ref(ref, Path(tmp))
        out = Path(tmp) / "both.npy"
        code = (
            "import sys, json, warnings, numpy as np, mne\n"
            "from pathlib import Path\n"
            "from rt_eeg2fmri.data.correct import correct_raw\n"
            "root, out, names = Path(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3])\n"
            "path = root / 'sub-01' / 'eeg' / 'sub-01_task-auditory_run-1_eeg.vhdr'\n"
            "warnings.simplefilter('ignore')\n"
            "raw = mne.io.read_raw_brainvision(path, preload=True, verbose='error')\n"
            "raw.set_channel_types({'ECG': 'ecg'})\n"
            "fixed, _ = correct_raw(raw)\n"
            "np.save(out, fixed.get_data(picks=names))\n"
        )
        subprocess.run([sys.executable, "-c", code, str(root), str(out), json.dumps(names)],
                       cwd=tree, check=True)  # fmt: skip
        return np.load(out)


def gap_rows(data, labels, clean, onsets, args) -> None:
    """Both live corrections with ``args.gap`` s of the stream lost twice, beside no loss.

    The losses begin 25 s and 55 s into the scanned run (the templates are ready). Printed
    per loss: the lost samples flagged clean and the largest output there, then the
    residual against the clean EEG (1–40 Hz) in spans after it, with and without the loss
    (the lost samples themselves are scored as the clean EEG, so a band-pass does not
    spread them into the spans).
    """
    import mne
    import numpy as np

    sfreq, chunk = args.sfreq, int(args.sfreq * 0.02)
    names = clean.ch_names
    losses = [(onsets[0] + t, onsets[0] + t + args.gap) for t in (25.0, 55.3)]
    drop = np.zeros(data.shape[1], bool)
    for a, b in losses:
        drop[int(a * sfreq) : int(b * sfreq)] = True
    ref, _, _ = run_chain(data, labels, names, onsets, sfreq, chunk, per_sample=True)
    got, got_clean, _ = run_chain(data, labels, names, onsets, sfreq, chunk, per_sample=True,
                                  drop=drop)  # fmt: skip
    truth = clean.get_data()
    scored = np.where(drop, truth, got)
    band = lambda a: mne.filter.filter_data(a, sfreq, 1.0, 40.0, verbose="error")  # noqa: E731
    t_, r_, g_ = band(truth), band(ref), band(scored)

    def db(x, span):
        return 10 * np.log10(((x[:, span] - t_[:, span]) ** 2).mean() / (t_[:, span] ** 2).mean())

    print(
        f"{len(onsets)} volumes, {len(names)} channels at {sfreq:g} Hz; {args.gap:g} s lost "
        "twice; both live corrections (8 past volumes, 30 past beats), 20 ms chunks\n"
    )
    print(
        "| loss at | lost samples flagged clean | largest output there | span after | "
        "residual, no loss | residual, with the loss | flagged clean, with the loss |"
    )
    print("|---|---:|---:|---|---:|---:|---:|")
    for a, b in losses:
        lost = slice(int(a * sfreq), int(b * sfreq))
        head = (f"| {a:.1f} s | {100 * got_clean[lost].mean():.0f} % | "
                f"{1e6 * np.abs(got[:, lost]).max():.0f} µV |")  # fmt: skip
        for lo, hi in ((0, 2), (2, 5), (5, 20)):
            span = slice(int((b + lo) * sfreq), int((b + hi) * sfreq))
            print(
                f"{head} {lo}–{hi} s | {db(r_, span):.1f} dB | {db(g_, span):.1f} dB | "
                f"{100 * got_clean[span].mean():.0f} % |"
            )
            head = "| | | |"


def run_chain(data, labels, model_names, onsets, sfreq, chunk, *, correct=True, rate=None,
              times=False, per_sample=False, drop=None, beats=None):  # fmt: skip
    """The EEG chain (gradient + pulse correction) over ``data`` in chunks, markers a chunk late.

    Returns the output (at ``rate``, default the input's, no band-pass unless ``rate``),
    per-sample clean flags (a chunk's samples clean if all are; ``per_sample``: as the
    corrections flagged each), CPU seconds (every thread), and (``times``) each chunk's CPU ms
    on the calling thread — the stream's acquisition thread; the gradient templates are
    made on a worker thread a volume ahead (fed faster than real time, the chain waits for
    them; in a stream they are ready seconds before). ``drop`` (bool per sample): samples
    never sent (gaps in the timestamps, which the chain fills with zeros). ``beats``: the
    pulse template (default the stream's).
    """
    import numpy as np

    from rt_eeg2fmri.data import EEGChain, Preprocessing
    from rt_eeg2fmri.realtime.pulse import N_BEATS

    pre = (Preprocessing(sfreq=sfreq, winsize=4.0) if rate is None else
           Preprocessing(sfreq=rate, winsize=4.0, l_freq=1.0, h_freq=40.0))  # fmt: skip
    options = (
        dict(gradient=8, t_r=float(np.median(np.diff(onsets))), pulse=beats or N_BEATS)
        if correct
        else {}
    )
    chain = EEGChain(pre, ch_names=model_names, sfreq=sfreq, labels=labels,
                     units=["V"] * len(labels), **options)  # fmt: skip
    stamps = np.arange(data.shape[1]) / sfreq
    outs, flags, per, given = [], [], [], 0
    t_all = time.process_time()
    for a in range(0, data.shape[1], chunk):
        n = min(chunk, data.shape[1] - a)
        sent = slice(a, a + n) if drop is None else a + np.flatnonzero(~drop[a : a + n])
        if drop is None or sent.size:  # a chunk wholly lost is never delivered
            t0 = time.thread_time()
            out, _, report = chain.process(data[:, sent].T, stamps[sent])
            per.append(1e3 * (time.thread_time() - t0))
            outs.append(np.array(out))
            flags.append(report.clean if per_sample else
                         np.full(out.shape[1], report.uncorrected == 0))  # fmt: skip
        while correct and given < onsets.size and onsets[given] < stamps[a + n - 1]:
            chain.add_volume_marker(onsets[given])  # given with the chunk after its own
            given += 1
    cpu = time.process_time() - t_all
    out = np.concatenate(outs, axis=1)
    if times:
        return out, np.concatenate(flags), cpu, np.array(per)
    return out, np.concatenate(flags), cpu


if __name__ == "__main__":
    main()
