"""An hour of stream at 100×: what the outputs cost and whether any volume is skipped.

The soak case of ``tests/realtime/test_reliability.py`` as a measurement: a looped
session replayed from another process at ``--speed`` (0.2 s of stream per push), the
engine on the CPU with a tiny conv (4 channels, 30 s windows, a 5 × 6 × 4 grid), writing
a ``.nii.gz`` series with its sidecar and a timing log. Prints the skipped and late
volumes, the NIfTI writer's cost per volume (median, p99, and the medians of the first
and last 200 volumes: a cost that grows with the run shows there) and the engine's
compute per volume. ``--hog`` adds a busy process beside them, as on a shared CI machine.

    .venv/bin/python benchmarks/bench_soak.py                  # 1,800 volumes at 100x
    .venv/bin/python benchmarks/bench_soak.py --hog
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _hog(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def main() -> None:
    import torch

    from rt_eeg2fmri.checkpoint import load_checkpoint
    from rt_eeg2fmri.realtime.engine import Engine
    from tests.realtime.engine_helpers import CH, replay_process, tiny_checkpoint

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--volumes", type=int, default=1800)
    p.add_argument("--speed", type=float, default=100.0)
    p.add_argument("--hog", action="store_true", help="a busy process beside the stream")
    args = p.parse_args()
    torch.set_num_threads(1)
    tmp = Path(tempfile.mkdtemp())
    uid = f"soak-{uuid.uuid4().hex[:8]}"
    ckpt = load_checkpoint(tiny_checkpoint(tmp / "m30.pt", winsize=30.0, t_r=2.0))
    session = dict(n_chans=4, sfreq=100.0, n_volumes=30, t_r=2.0, ch_names=CH)
    engine = Engine.from_checkpoint(
        ckpt, source=f"name:{uid}-EEG", sync="samples", device="cpu", outlet_name=f"{uid}-pred",
        nifti=tmp / "pred.nii.gz", timing=tmp / "timing.tsv",
    )  # fmt: skip
    wall = args.volumes * 2.0 / args.speed + 60
    hog = mp.get_context("spawn").Process(target=_hog, args=(wall,), daemon=True)
    if args.hog:
        hog.start()
    t0 = time.perf_counter()
    try:
        with replay_process(session, name=uid, source_id=uid, speed=args.speed, loop=True,
                            chunk_samples=20), engine:  # fmt: skip
            s = engine.run(max_volumes=args.volumes, duration=wall)
    finally:
        if args.hog:
            hog.kill()
    w = np.asarray(engine.stats.write)
    print(f"{s['volumes']} volumes at {args.speed:g}x in {time.perf_counter() - t0:.1f} s"
          f"{' beside a busy process' if args.hog else ''}: skipped {s['skipped']}, late "
          f"{s['late']}, output errors {s['output_errors']}, samples lost {s['samples_lost']}")  # fmt: skip
    print(f"NIfTI writer per volume: median {np.median(w):.2f} ms, p99 "
          f"{np.percentile(w, 99):.2f} ms; first 200 {np.median(w[:200]):.2f} ms, last 200 "
          f"{np.median(w[-200:]):.2f} ms")  # fmt: skip
    print(f"compute per volume: p50 {s['compute_p50_ms']:.2f} ms, p99 {s['compute_p99_ms']:.2f} ms")


if __name__ == "__main__":
    main()
