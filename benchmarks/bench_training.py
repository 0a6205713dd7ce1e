"""Training cost of every architecture at the oddball shape.

Per model: training throughput (windows/s: forward + backward + AdamW step on a batch of
random windows, the trainer's loss) and peak memory, each model in a fresh process so the
peak RSS is its own; ``ridge`` is timed on its closed-form fit (``fit_streaming``).
Data loading is measured separately by ``bench_dataset_memory.py``.

    .venv/bin/python benchmarks/bench_training.py                       # all models, 250 Hz
    .venv/bin/python benchmarks/bench_training.py --models conv --batches 20 --device cuda
    .venv/bin/python benchmarks/bench_training.py --device cuda --amp both  # fp32 and bf16

``--amp on`` trains under bfloat16 autocast on CUDA (the trainer's default there, ``amp``);
``both`` measures fp32 and bf16 side by side in one run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

MODELS = ("fc", "siamese_fc", "conv", "transformer", "ridge")


def one(name: str, args) -> dict:
    import resource

    import numpy as np
    import torch

    from rt_eeg2fmri.grid import mni_mask
    from rt_eeg2fmri.models import build_model, n_params

    device = torch.device(args.device)
    mask = mni_mask()
    n_voxels = int(mask.sum())
    cfg = {
        "n_chans": args.n_chans,
        "n_times": round(args.winsize * args.sfreq),
        "sfreq": args.sfreq,
        "n_voxels": n_voxels,
        "grid_shape": list(mask.shape),
    }
    if name == "ridge":
        cfg["t_r"] = 2.0
    torch.manual_seed(0)
    model = build_model(name, cfg).to(device)
    model.set_mask(torch.as_tensor(mask))
    gen = torch.Generator().manual_seed(0)
    batch = [
        (torch.randn(args.batch_size, args.n_chans, cfg["n_times"], generator=gen).to(device),
         torch.randn(args.batch_size, n_voxels, generator=gen).to(device))
        for _ in range(2)
    ]  # fmt: skip

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    times = []
    if name == "ridge":
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            model.fit_streaming(iter(batch * (args.batches // 2)), val_batches=iter(batch[:1]))
            sync()
            times.append((time.perf_counter() - t0) / (args.batch_size * 2 * (args.batches // 2)))
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        model.train()
        teacher = getattr(model, "teacher_forcing", False)
        amp = args.amp == "on" and device.type == "cuda"
        for i in range(args.batches + 2):
            x, y = batch[i % 2]
            t0 = time.perf_counter()
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                pred = model(x, y) if teacher else model(x)
                loss = torch.nn.functional.mse_loss(pred.float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sync()
            if i >= 2:  # warm-up
                times.append((time.perf_counter() - t0) / args.batch_size)
    per_window = float(np.median(times))
    return {
        "model": name,
        "amp": args.amp == "on" and device.type == "cuda" and name != "ridge",
        "params": n_params(model),
        "train_windows_per_s": 1.0 / per_window,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_cuda_mb": torch.cuda.max_memory_allocated() / 2**20
        if device.type == "cuda"
        else None,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="*", default=list(MODELS))
    p.add_argument("--sfreq", type=float, default=250.0)
    p.add_argument("--winsize", type=float, default=30.0)
    p.add_argument("--n-chans", type=int, default=34)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--batches", type=int, default=10)
    p.add_argument("--repeats", type=int, default=3, help="ridge fits timed")
    p.add_argument("--device", default="cpu")
    p.add_argument(
        "--amp",
        choices=("off", "on", "both"),
        default="off",
        help="bfloat16 autocast on CUDA: off, on, or both side by side (default off)",
    )
    p.add_argument("--json", default=None, help="also write the rows to this JSON file")
    p.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args)))
        return
    modes = ("off", "on") if args.amp == "both" else (args.amp,)
    if args.device == "cpu":
        modes = ("off",)
    base = [a for a in sys.argv[1:] if a != "--models" and a not in args.models]
    base = [a for i, a in enumerate(base) if a != "--amp" and (i == 0 or base[i - 1] != "--amp")]
    rows = []
    for name in args.models:
        for mode in modes:
            if name == "ridge" and mode == "on":
                continue  # a closed-form fit in float64: no autocast
            cmd = [sys.executable, __file__, "--one", name, "--amp", mode, *base]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            rows.append(json.loads(out.strip().splitlines()[-1]))
    gpu = ""
    if args.device.startswith("cuda"):
        import torch

        gpu = f" ({torch.cuda.get_device_name(0)})"
    print(f"training cost, {args.n_chans} ch × {args.winsize:g} s @ {args.sfreq:g} Hz → 69,637 voxels, "
          f"batch {args.batch_size}, device {args.device}{gpu}")  # fmt: skip
    print(f"{'model':12s} {'amp':>5s} {'params':>12s} {'train win/s':>12s} {'peak RSS MB':>12s} "
          f"{'peak GPU MB':>12s}")  # fmt: skip
    for r in rows:
        gpu_mb = f"{r['peak_cuda_mb']:12.0f}" if r["peak_cuda_mb"] is not None else f"{'-':>12s}"
        print(
            f"{r['model']:12s} {'bf16' if r['amp'] else 'fp32':>5s} {r['params']:12,d} "
            f"{r['train_windows_per_s']:12.1f} {r['peak_rss_mb']:12.0f} {gpu_mb}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
