"""Training-data memory: peak RSS while iterating every window vs the continuous recordings.

Two fresh child processes, one after the other:

1. ``build``: ``load_pairs(DATA, ...)`` builds the window cache (or reuses it) — one run
   in memory at a time; reports the build time and the build's peak RSS.
2. ``iterate``: opens the cache and reads every (window, target) pair once in shuffled
   order with ``get_batch`` into preallocated arrays (the training fast path); reports
   windows/s, the peak RSS (``resource.getrusage(RUSAGE_SELF).ru_maxrss``) and the
   current RSS (psutil) at start and end.

The reference size is the continuous recordings as the model sees them: EEG float32 at
the cache rate plus in-mask BOLD targets float32 (the cache's ``.npy`` arrays). The aim
is a peak RSS ≤ 1.2 × that size, independent of the number of windows (materialising the
windows would need ``n_windows × n_chans × n_times × 4`` bytes, also printed).
Mapped pages of the cache count in RSS once read, so the interpreter's own footprint
(numpy, torch, mne imports: ~100–300 MB) dominates small datasets; the ratio net of
the RSS after opening the cache and allocating the batch buffers (``batch_size ×
n_chans × n_times × 4`` bytes: 234 MiB at 64 × 32 ch × 30 s at 1 kHz) is printed as well.

    .venv/bin/python benchmarks/bench_dataset_memory.py --data /tmp/oddball --sfreq 250
    .venv/bin/python benchmarks/bench_dataset_memory.py --data DIR --cache /tmp/cache --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

GIB = 1 << 30
MIB = 1 << 20


def _peak_rss() -> int:
    """Peak resident set size of this process in bytes (ru_maxrss is KiB on Linux)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak) * (1 if sys.platform == "darwin" else 1024)


def _rss() -> int:
    """Current resident set size in bytes."""
    try:
        import psutil

        return int(psutil.Process().memory_info().rss)
    except ImportError:  # Linux fallback
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _cache_options(args) -> dict:
    from rt_eeg2fmri.data import Preprocessing

    pre = Preprocessing(
        sfreq=args.sfreq,
        l_freq=args.l_freq,
        h_freq=args.h_freq,
        target=args.target,
        norm=args.norm,
        winsize=args.winsize,
    )
    opts = dict(preprocessing=pre, progress=False)
    if args.cache:
        opts["root"] = args.cache
    return opts


def phase_build(args) -> dict:
    from rt_eeg2fmri.data import load_pairs

    t0, wall0 = time.perf_counter(), time.time()
    ds = load_pairs(args.data, **_cache_options(args))
    seconds = time.perf_counter() - t0
    reused = (ds.path / "meta.json").stat().st_mtime < wall0
    largest = max(r["n_times"] / ds.sfreq * r["sfreq_in"] for r in ds.runs) * len(ds.ch_names) * 4
    return {
        "cache": str(ds.path),
        "build_s": seconds,
        "reused": reused,
        "build_peak_rss": _peak_rss(),
        "largest_run_eeg_bytes_in": int(largest),
        "n_runs": len(ds.runs),
        "n_subjects": len({r["subject"] for r in ds.runs}),
    }


def phase_iterate(args) -> dict:
    import numpy as np

    from rt_eeg2fmri.data import PairDataset

    rss_before_open = _rss()
    ds = PairDataset(args.cache_path)
    rss_open = _rss()
    n = len(ds)
    order = np.random.default_rng(0).permutation(n)
    b = args.batch_size
    out = (
        np.empty((b, ds.n_chans, ds.n_times), np.float32),
        np.empty((b, ds.n_voxels), np.float32),
    )
    for a in out:  # fault the batch buffers in: they belong to the baseline, not the data
        a.fill(0.0)
    rss_alloc = _rss()
    t0 = time.perf_counter()
    check = 0.0
    for i in range(0, n, b):
        x, y = ds.get_batch(order[i : i + b], out=out)
        check += float(x[:, 0, -1].sum()) + float(y[:, 0].sum())  # touch the results
    seconds = time.perf_counter() - t0
    return {
        "n_windows": n,
        "n_chans": ds.n_chans,
        "n_times": ds.n_times,
        "n_voxels": ds.n_voxels,
        "sfreq": ds.sfreq,
        "data_bytes": ds.data_nbytes(),
        "materialised_bytes": n * ds.n_chans * ds.n_times * 4,
        "iterate_s": seconds,
        "windows_per_s": n / seconds,
        "rss_before_open": rss_before_open,
        "rss_open": rss_open,
        "rss_batch_buffers": rss_alloc,
        "rss_end": _rss(),
        "peak_rss": _peak_rss(),
        "checksum": check,
    }


def _child(args, phase: str, extra: list[str]) -> dict:
    cmd = [sys.executable, __file__, "--phase", phase, *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"{phase} phase failed (exit {proc.returncode}).")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="dataset folder (BIDS, ds000116, simulator output)")
    parser.add_argument("--sfreq", type=float, default=None, help="cache rate (Hz)")
    parser.add_argument("--l-freq", type=float, default=None)
    parser.add_argument("--h-freq", type=float, default=None)
    parser.add_argument("--target", default="psc", choices=["psc", "median_ratio"])
    parser.add_argument("--norm", default="zscore", choices=["zscore", "robust"])
    parser.add_argument("--winsize", type=float, default=30.0, help="window (s)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--cache", default=None, help="cache root (default: package cache)")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    parser.add_argument("--phase", choices=["build", "iterate"], help=argparse.SUPPRESS)
    parser.add_argument("--cache-path", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.phase == "build":
        print(json.dumps(phase_build(args)))
        return
    if args.phase == "iterate":
        print(json.dumps(phase_iterate(args)))
        return
    if not args.data:
        parser.error("--data is required")

    common = ["--data", args.data, "--target", args.target, "--norm", args.norm]
    common += ["--winsize", str(args.winsize), "--batch-size", str(args.batch_size)]
    for flag, value in (
        ("--sfreq", args.sfreq),
        ("--l-freq", args.l_freq),
        ("--h-freq", args.h_freq),
        ("--cache", args.cache),
    ):
        if value is not None:
            common += [flag, str(value)]
    build = _child(args, "build", common)
    it = _child(args, "iterate", [*common, "--cache-path", build["cache"]])

    data = it["data_bytes"]
    ratio = it["peak_rss"] / data
    net = (it["peak_rss"] - it["rss_batch_buffers"]) / data
    print(f"dataset          {args.data}  ({build['n_subjects']} subjects, {build['n_runs']} runs)")
    print(f"cache            {build['cache']}")
    print(
        f"windows          {it['n_windows']}  ({it['n_chans']} ch × {it['n_times']} samples "
        f"@ {it['sfreq']:g} Hz → {it['n_voxels']} voxels)"
    )
    print(f"recordings       {data / MIB:10.1f} MiB  (EEG float32 at cache rate + masked BOLD)")
    print(f"materialised     {it['materialised_bytes'] / MIB:10.1f} MiB  (windows as copies)")
    print(
        f"build            {build['build_s']:10.1f} s    peak RSS {build['build_peak_rss'] / MIB:.1f} MiB"
        + ("  (cache reused)" if build["reused"] else "")
    )
    print(
        f"iterate          {it['iterate_s']:10.2f} s    {it['windows_per_s']:.0f} windows/s "
        f"(batch {args.batch_size}, shuffled)"
    )
    print(
        f"RSS              open {it['rss_open'] / MIB:.1f} MiB, buffers "
        f"{it['rss_batch_buffers'] / MIB:.1f} MiB, end {it['rss_end'] / MIB:.1f} MiB, "
        f"peak {it['peak_rss'] / MIB:.1f} MiB"
    )
    print(f"ratio            peak RSS / recordings = {ratio:.3f}  (aim ≤ 1.2)")
    print(
        f"                 (peak − RSS with batch buffers, before reading) / recordings = {net:.3f}"
    )
    if args.json:
        Path(args.json).write_text(
            json.dumps({"build": build, "iterate": it, "ratio": ratio, "net_ratio": net}, indent=2)
        )


if __name__ == "__main__":
    main()
