"""Training batches per second: prepared one by one vs ahead on threads (``iterate_batches``).

The trainer reads each batch with ``PairDataset.get_batch`` (windows cut from the
memory-mapped cache and normalised). On a GPU that was the training loop's bottleneck;
the loop can prepare batches ahead on threads (``--set loader_threads=N``, into
page-locked memory on CUDA). This prints the windows/s of reading every window of a dataset once, in shuffled order,
with 0 (one by one, in the loop's thread), 1, 2 and 4 threads, side by side in one run,
each the median of ``--repeats`` passes, and the ratio to 0 threads. No model runs: it is
the ceiling the data puts on training throughput.

The dataset is read as ``train`` reads it (``--config`` and ``--set`` as there), so after
a training run the benchmark opens the same window cache.

    .venv/bin/python benchmarks/bench_loading.py --data /tmp/oddball --set sfreq=250
    .venv/bin/python benchmarks/bench_loading.py --data DIR --config configs/oddball_loso.toml \
        --set sfreq=250 --threads 0,1,2,4,8 --device cuda
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="dataset folder (any layout)")
    ap.add_argument("--config", default=None, help="training config (TOML), as for train")
    ap.add_argument("--set", action="append", default=[], help="KEY=VALUE, as for train")
    ap.add_argument("--threads", default="0,1,2,4")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()

    import numpy as np
    import torch

    from trainer.config import load_config
    from trainer.data import load_dataset
    from trainer.loop import iterate_batches

    cfg = load_config(args.config, args.set)
    ds = load_dataset(args.data, cfg.preprocessing, ch_names=cfg.channels, mask=cfg.mask,
                      progress=False)  # fmt: skip
    idx = np.arange(len(ds))
    device = torch.device(args.device)
    batch = cfg.batch_size
    print(f"{len(ds)} windows of {ds.n_chans} ch × {ds.n_times} samples, {ds.n_voxels} voxels; "
          f"batch {batch}; device {device}\n")  # fmt: skip
    for _ in iterate_batches(ds, idx, batch, device=device):  # warm the page cache
        pass
    print("| threads | windows/s (median) | vs 0 threads |")
    print("|---:|---:|---:|")
    base = None
    for n in map(int, args.threads.split(",")):
        rates = []
        for r in range(args.repeats):
            t0 = time.perf_counter()
            for _batch in iterate_batches(ds, idx, batch, device=device, shuffle_seed=r,
                                        threads=n):  # fmt: skip
                pass
            if device.type == "cuda":
                torch.cuda.synchronize()
            rates.append(idx.size / (time.perf_counter() - t0))
        rate = float(np.median(rates))
        base = base or rate
        print(f"| {n} | {rate:,.0f} | {rate / base:.2f}× |")


if __name__ == "__main__":
    main()
