"""LSL outlets in their own process for the ingest tests (and the ingest benchmark).

The pushed samples are a function of a seed, so the test regenerates them instead of
receiving them back.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import time

import numpy as np

CTX = mp.get_context("spawn")


def make_data(seed: int, n_samples: int, n_chans: int) -> np.ndarray:
    """The samples an outlet pushes: shape (n_samples, n_chans), float32, ~10 units."""
    rng = np.random.default_rng(seed)
    return (10 * rng.standard_normal((n_samples, n_chans))).astype(np.float32)


def sample_times(n_samples: int, sfreq: float, gaps: dict[int, int] | None = None) -> np.ndarray:
    """Timestamps relative to the first sample; ``gaps[i] = k`` skips k periods before i."""
    offset = np.zeros(n_samples)
    for i, k in (gaps or {}).items():
        offset[i:] += k
    return (np.arange(n_samples) + offset) / sfreq


def _outlet(spec: dict, ready, done, pushed) -> None:
    import pylsl

    n_chans = spec["n_chans"]
    info = pylsl.StreamInfo(
        spec["name"], spec.get("stype", "EEG"), n_chans, spec["sfreq"], pylsl.cf_float32,
        spec.get("source_id", ""),
    )  # fmt: skip
    labels, units = spec.get("labels"), spec.get("units")
    if labels is not None or units is not None:
        chans = info.desc().append_child("channels")
        for i in range(n_chans):
            ch = chans.append_child("channel")
            if labels is not None:
                ch.append_child_value("label", labels[i])
            if units is not None and units[i] is not None:
                ch.append_child_value("unit", units[i])
    outlet = pylsl.StreamOutlet(info, chunk_size=0, max_buffered=360)
    ready.set()
    if spec.get("wait_consumer", True):
        outlet.wait_for_consumers(timeout=30)
        time.sleep(0.2)  # let the consumer's inlet finish subscribing
    n, sfreq, chunk = spec["n_samples"], spec["sfreq"], spec.get("chunk", 10)
    data = make_data(spec.get("seed", 0), n, n_chans)
    for start, stop, ch, value in spec.get("nonfinite", []):
        data[start:stop, ch] = value
    rel = sample_times(n, sfreq, spec.get("gaps"))
    jump = np.zeros(n)  # a clock reset: the stamps move, the samples keep their pace
    for i, seconds in spec.get("jumps", {}).items():
        jump[i:] += seconds
    pauses = dict(spec.get("pauses", {}))  # sample index -> seconds of silence before it
    speed = spec.get("speed")  # x real time; None: as fast as possible
    t0 = pylsl.local_clock()
    wall0 = time.perf_counter()
    for i in range(0, n, chunk):
        if done.is_set():
            break
        j = min(i + chunk, n)
        for p in [p for p in pauses if i <= p < j]:
            time.sleep(pauses.pop(p))  # the timeline is kept: a stall, not a gap
        if speed:
            delay = wall0 + rel[j - 1] / speed - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        outlet.push_chunk(data[i:j], (t0 + rel[i:j] + jump[i:j]).tolist())
        pushed.value = j
    done.wait(spec.get("linger", 60))


@contextlib.contextmanager
def outlet_process(**spec):
    """Run an outlet in a spawned process; yields (process, pushed counter, done event).

    ``spec`` keys: name, source_id, n_chans, sfreq, n_samples, labels, units, seed,
    chunk, speed, gaps {index: periods}, jumps {index: seconds added to the timestamps
    from that sample on, the pace unchanged}, nonfinite [(start, stop, ch, value)],
    pauses {index: seconds}, wait_consumer, linger, stype.
    """
    ready, done = CTX.Event(), CTX.Event()
    pushed = CTX.Value("q", 0)
    proc = CTX.Process(target=_outlet, args=(spec, ready, done, pushed), daemon=True)
    proc.start()
    try:
        if not ready.wait(30):
            raise RuntimeError("the outlet process did not start")
        yield proc, pushed, done
    finally:
        done.set()
        proc.join(5)
        if proc.is_alive():
            proc.kill()
            proc.join()
