"""The live pulse correction's settings, side by side on simulated in-scanner runs.

For each seed, one run (``simulate --preset small --artifacts gradient,bcg``, 100 volumes)
goes through the stream's EEG chain (live gradient correction, 8 past volumes; live pulse
correction with each setting: past beats, principal components, prior weight) in 20 ms
chunks, markers a chunk late. Printed per setting and seed: the residual power against the
clean EEG under the artifacts, 1–40 Hz and 1–8 Hz (where the pulse artifact lies), from
40 s after the first volume (every template ready) to the last volume; then the mean over
the seeds. Choose on some seeds, check on others.

    python benchmarks/bench_pulse_settings.py --seeds 21,22,23 --settings 20:4:0.1,30:4:0.3
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path


def main() -> None:
    """Simulate each seed, run each setting, print the table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", default="21,22,23")
    ap.add_argument("--settings", default="20:4:0.1,30:4:0.3",
                    help="BEATS:COMPONENTS:PRIOR, comma-separated")  # fmt: skip
    ap.add_argument("--sfreq", type=float, default=1000.0)
    ap.add_argument("--volumes", type=int, default=100)
    args = ap.parse_args()

    import mne
    import numpy as np

    from rt_eeg2fmri.sim import read_in_scanner_run, simulate_dataset

    seeds = [int(s) for s in args.seeds.split(",")]
    settings = [tuple(x.split(":")) for x in args.settings.split(",")]
    sfreq = args.sfreq
    results: dict = {}
    print("| beats | components | prior | seed | residual 1–40 Hz | 1–8 Hz |")
    print("|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            root = simulate_dataset(
                Path(tmp) / f"s{seed}", preset="small", seed=seed, subjects=1, runs=1,
                volumes=args.volumes, sfreq=sfreq, artifacts="gradient,bcg", progress=False,
            )  # fmt: skip
            raw, clean = read_in_scanner_run(root)
            events, ids = mne.events_from_annotations(raw, verbose="error")
            trs = events[events[:, 2] == ids["Response/R128"], 0] - raw.first_samp
            onsets = trs / sfreq
            data, labels, names = raw.get_data(), list(raw.ch_names), clean.ch_names
            span = slice(int((onsets[0] + 40) * sfreq), int(onsets[-1] * sfreq))
            bands = ((1.0, 40.0), (1.0, 8.0))
            truth = [mne.filter.filter_data(clean.get_data(), sfreq, lo, hi, verbose="error")
                     [:, span] for lo, hi in bands]  # fmt: skip
            for beats, comps, prior in settings:
                out = _run(data, labels, names, onsets, sfreq, int(beats), int(comps),
                           float(prior))  # fmt: skip
                dbs = []
                for (lo, hi), t in zip(bands, truth, strict=True):
                    x = mne.filter.filter_data(out, sfreq, lo, hi, verbose="error")[:, span]
                    dbs.append(10 * np.log10(((x - t) ** 2).mean() / (t**2).mean()))
                results.setdefault((beats, comps, prior), []).append(dbs)
                print(f"| {beats} | {comps} | {prior} | {seed} | {dbs[0]:.2f} dB | "
                      f"{dbs[1]:.2f} dB |", flush=True)  # fmt: skip
    print("\n| beats | components | prior | mean residual 1–40 Hz | 1–8 Hz |")
    print("|---:|---:|---:|---:|---:|")
    for (beats, comps, prior), v in results.items():
        m = np.mean(v, axis=0)
        print(f"| {beats} | {comps} | {prior} | {m[0]:.2f} dB | {m[1]:.2f} dB |")


def _run(data, labels, names, onsets, sfreq, beats, comps, prior):
    """The EEG chain over the run in 20 ms chunks, each marker given a chunk late."""
    import numpy as np

    from rt_eeg2fmri.data import EEGChain, Preprocessing

    chain = EEGChain(
        Preprocessing(sfreq=sfreq, winsize=4.0), ch_names=names, sfreq=sfreq, labels=labels,
        units=["V"] * len(labels), gradient=8, t_r=float(np.median(np.diff(onsets))),
        pulse=beats,
    )  # fmt: skip
    chain.pulse.n_components, chain.pulse.prior = comps, prior
    stamps = np.arange(data.shape[1]) / sfreq
    chunk, outs, given = int(0.02 * sfreq), [], 0
    for a in range(0, data.shape[1], chunk):
        outs.append(np.array(chain.process(data[:, a : a + chunk].T, stamps[a : a + chunk])[0]))
        last = stamps[min(a + chunk, data.shape[1]) - 1]
        while given < onsets.size and onsets[given] < last:
            chain.add_volume_marker(onsets[given])
            given += 1
    return np.concatenate(outs, axis=1)


if __name__ == "__main__":
    main()
