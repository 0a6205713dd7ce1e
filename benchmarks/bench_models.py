"""Inference cost of every architecture at the oddball shape.

Per model and rate: parameters, checkpoint size, single-window forward latency
(batch 1, p50/p99), batch throughput (windows/s) and peak memory. Each configuration
runs in a fresh process so peak RSS is its own. CPU by default; ``--device cuda`` times
on the GPU (synchronised) and reports ``torch.cuda.max_memory_allocated``.

    .venv/bin/python benchmarks/bench_models.py                 # all models, 250 and 1000 Hz
    .venv/bin/python benchmarks/bench_models.py --models conv --rates 250 --repeats 500

The ridge model is timed with random weights (its forward does not depend on the fit).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path


def _rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def one(name: str, sfreq: float, args) -> dict:
    import tempfile

    import numpy as np
    import torch

    from rt_eeg2fmri.checkpoint import save_checkpoint
    from rt_eeg2fmri.data import NormStats, Preprocessing
    from rt_eeg2fmri.grid import GRID_AFFINE, mni_mask
    from rt_eeg2fmri.models import build_model, n_params

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    mask = mni_mask()
    n_times = round(args.winsize * sfreq)
    torch.manual_seed(0)
    base_rss = _rss_mb()
    cfg = {
        "n_chans": args.n_chans,
        "n_times": n_times,
        "sfreq": sfreq,
        "n_voxels": int(mask.sum()),
        "grid_shape": list(mask.shape),
    }
    model = build_model(name, cfg)
    model.set_mask(mask)
    if name == "ridge":
        model.weight.normal_(0, 0.01)
        model.fitted.fill_(True)
    model.eval()
    with tempfile.TemporaryDirectory() as tmp:
        names = [f"EEG{i:02d}" for i in range(args.n_chans)]
        path = save_checkpoint(
            Path(tmp) / f"{name}.pt",
            model,
            preprocessing=Preprocessing(sfreq=sfreq, winsize=args.winsize),
            norm_stats=NormStats("zscore", np.zeros(args.n_chans), np.ones(args.n_chans), names),
            ch_names=names,
            t_r=2.0,
            grid_shape=mask.shape,
            affine=GRID_AFFINE,
            mask=mask,
        )
        size_mb = path.stat().st_size / 1e6
    model.to(device)
    cuda = device.type == "cuda"

    def sync():
        if cuda:
            torch.cuda.synchronize()

    x1 = torch.randn(1, args.n_chans, n_times, device=device)
    xb = torch.randn(args.batch, args.n_chans, n_times, device=device)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    times = []
    with torch.inference_mode():
        for _ in range(args.warmup):
            model(x1)
        sync()
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            model(x1)
            sync()
            times.append(time.perf_counter() - t0)
        model(xb)
        sync()
        n_batches = max(3, args.repeats // (4 * args.batch))
        t0 = time.perf_counter()
        for _ in range(n_batches):
            model(xb)
        sync()
        thr = n_batches * args.batch / (time.perf_counter() - t0)
    ms = np.array(times) * 1e3
    return {
        "model": name,
        "sfreq": sfreq,
        "n_times": n_times,
        "n_voxels": int(mask.sum()),
        "params": n_params(model),
        "ckpt_mb": size_mb,
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "throughput": thr,
        "peak_mb": torch.cuda.max_memory_allocated() / 2**20 if cuda else _rss_mb() - base_rss,
        "threads": torch.get_num_threads(),
        "device": str(device),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--models", nargs="+", default=["fc", "siamese_fc", "conv", "transformer", "ridge"]
    )
    p.add_argument("--rates", nargs="+", type=float, default=[250.0, 1000.0])
    p.add_argument("--n-chans", type=int, default=34)
    p.add_argument("--winsize", type=float, default=30.0)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--repeats", type=int, default=200)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--one", nargs=2, metavar=("MODEL", "SFREQ"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        print(json.dumps(one(args.one[0], float(args.one[1]), args)))
        return
    passthrough = [
        f"--n-chans={args.n_chans}",
        f"--winsize={args.winsize}",
        f"--batch={args.batch}",
        f"--repeats={args.repeats}",
        f"--warmup={args.warmup}",
        f"--threads={args.threads}",
        f"--device={args.device}",
    ]
    head = (
        f"{'model':<12}{'Hz':>6}{'n_times':>8}{'params':>12}{'ckpt MB':>9}"
        f"{'p50 ms':>9}{'p99 ms':>9}{f'win/s (B={args.batch})':>16}{'peak MB':>9}"
    )
    print(head)
    print("-" * len(head))
    for sfreq in args.rates:
        for name in args.models:
            out = subprocess.run(
                [sys.executable, __file__, "--one", name, str(sfreq), *passthrough],
                capture_output=True,
                text=True,
                check=False,
            )
            if out.returncode:
                print(f"{name:<12}{sfreq:>6.0f}  failed:\n{out.stderr[-2000:]}")
                continue
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(
                f"{r['model']:<12}{r['sfreq']:>6.0f}{r['n_times']:>8}{r['params']:>12,}"
                f"{r['ckpt_mb']:>9.1f}{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}"
                f"{r['throughput']:>16.1f}{r['peak_mb']:>9.0f}",
                flush=True,
            )
    print(
        f"\n{args.n_chans} channels × {args.winsize:g} s windows, n_voxels = MNI mask; device "
        f"{args.device}, threads {r['threads'] if args.models else '?'}; peak MB = "
        + ("torch.cuda.max_memory_allocated" if args.device == "cuda" else "peak RSS growth")
        + " after building the model."
    )


if __name__ == "__main__":
    main()
