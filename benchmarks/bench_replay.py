"""Pacing of ``rt-eeg2fmri replay``: timestamp exactness, drift, jitter and CPU cost.

A synthetic session (default 64 channels at 5 kHz, 60 s, with full-grid BOLD at TR 2 s)
is looped by a ``Replay`` in a child process for ``--minutes`` of stream time at
``--speed``; this process reads it with a plain pylsl inlet and measures

- timestamps: the largest |timestamp_i − (t0 + i / sfreq)| over every sample (exactness),
- arrival: per pull, arrival time on the LSL clock minus the nominal due time of the
  replay chunk holding its last sample, ``t0 + (chunk end) / sfreq / speed`` (jitter: p50/p95/p99/max; drift: the change of
  the median lateness from the first to the last minute of stream, and the slope of a
  line through the medians of each 10 s of stream, over the whole run),
- markers and volumes: lateness of arrival of scanner markers and truth volumes,
- CPU: the replay process's CPU time (``time.process_time``, all threads including
  liblsl's) per second of stream time and as a share of one core,
- samples lost (received vs pushed).

    .venv/bin/python benchmarks/bench_replay.py --minutes 10 --speed 10
    .venv/bin/python benchmarks/bench_replay.py --minutes 2 --speed 1
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import threading
import time
import uuid


def _session(n_chans: int, sfreq: float, seconds: float, t_r: float, bold: bool):
    import numpy as np

    from rt_eeg2fmri.data import Session
    from rt_eeg2fmri.grid import GRID_AFFINE, GRID_SHAPE

    rng = np.random.default_rng(0)
    n_times = round(seconds * sfreq)
    eeg = (rng.standard_normal((n_chans, n_times), dtype=np.float32) * 1e-5).astype(np.float32)
    n_vol = int(seconds // t_r)
    kwargs = {}
    if bold:
        kwargs = dict(
            bold=1000 + rng.standard_normal((*GRID_SHAPE, n_vol), dtype=np.float32),
            affine=GRID_AFFINE,
            t_r=t_r,
        )
    else:
        kwargs = dict(volume_onsets=np.arange(n_vol) * t_r)
    return Session(
        eeg=eeg,
        sfreq=sfreq,
        ch_names=[f"EEG{i:03d}" for i in range(n_chans)],
        subject="bench",
        task="replay",
        **kwargs,
    )


def _player(args, source_id: str, queue) -> None:
    """Child process: loop the session for the requested stream time, report CPU."""
    from rt_eeg2fmri.replay import Replay

    session = _session(args.channels, args.sfreq, args.session, args.t_r, not args.no_truth)
    replay = Replay(
        session,
        name=f"bench-{source_id}",
        source_id=source_id,
        speed=args.speed,
        loop=True,
        chunk=args.chunk / 1000,
        truth=not args.no_truth,
    )
    replay.open()
    if not replay.wait_for_consumers(30.0):
        queue.put({"error": "no consumer"})
        return
    queue.put({"ready": True})
    cpu0, wall0 = time.process_time(), time.perf_counter()
    replay.run(until=args.minutes * 60 / args.speed + 0.5 * args.chunk / 1000 / args.speed)
    queue.put(
        {
            "cpu_s": time.process_time() - cpu0,
            "wall_s": time.perf_counter() - wall0,
            "t0": replay.t0,
            "n_pushed": replay.n_pushed,
            "n_markers": replay.n_markers,
            "n_volumes": replay.n_volumes,
        }
    )


def measure(args) -> dict:
    import numpy as np
    import pylsl

    source_id = uuid.uuid4().hex[:12]
    queue = mp.get_context("spawn").Queue()
    proc = mp.get_context("spawn").Process(target=_player, args=(args, source_id, queue))
    proc.start()
    inlets = {}
    for kind in ("eeg", "markers") + (() if args.no_truth else ("truth",)):
        found = pylsl.resolve_byprop("source_id", f"{source_id}:{kind}", timeout=60)
        if not found:
            raise RuntimeError(f"no {kind} stream from the replay process")
        inlets[kind] = pylsl.StreamInlet(found[0], max_buflen=60)
        inlets[kind].open_stream(10)
    msg = queue.get(timeout=60)
    if "error" in msg:
        raise RuntimeError(msg["error"])
    n_chans, sfreq, speed = args.channels, args.sfreq, args.speed
    expected = round(args.minutes * 60 * sfreq)
    stamps = np.empty(expected + round(10 * sfreq), dtype=np.float64)
    buf = np.empty((4096, n_chans), dtype=np.float32)
    chunk_last, chunk_arrival = [], []
    other: dict[str, list] = {"markers": [], "truth": []}
    done = threading.Event()

    def listen(kind: str, inlet) -> None:  # one thread per irregular stream: exact arrivals
        vbuf = None
        if kind == "truth":
            vbuf = np.empty((4, inlet.info(5).channel_count()), np.float32)
        while not done.is_set():
            kw = {"dest_obj": vbuf, "max_samples": 4} if vbuf is not None else {}
            _, vts = inlet.pull_chunk(timeout=0.1, min_samples=1, **kw)
            t = pylsl.local_clock()
            other[kind].extend((stamp, t) for stamp in vts)

    threads = [
        threading.Thread(target=listen, args=(k, i), daemon=True)
        for k, i in inlets.items()
        if k != "eeg"
    ]
    for t in threads:
        t.start()
    n = 0
    idle_since = None
    while True:
        _, ts = inlets["eeg"].pull_chunk(
            timeout=0.05, max_samples=len(buf), dest_obj=buf, min_samples=1
        )
        now = pylsl.local_clock()
        if ts:
            k = len(ts)
            stamps[n : n + k] = ts
            n += k
            chunk_last.append(n - 1)
            chunk_arrival.append(now)
            idle_since = None
        else:
            idle_since = idle_since or now
            if now - idle_since > (0.5 if not proc.is_alive() else 5.0):
                break
    done.set()
    for t in threads:
        t.join()
    stats = queue.get(timeout=30)
    proc.join(10)
    t0 = stats["t0"]
    stamps = stamps[:n]
    ideal = t0 + np.arange(n) / sfreq
    last = np.asarray(chunk_last)
    # a pull may end inside a replay chunk (liblsl hands over samples as they arrive):
    # it is due when the replay chunk holding its last sample is, (end of that chunk) / speed
    c, n_loop = max(1, round(args.chunk / 1000 * sfreq)), round(args.session * sfreq)
    pos = last % n_loop
    chunk_end = (last - pos) + np.minimum((pos // c + 1) * c, n_loop)
    due = t0 + chunk_end / sfreq / speed
    late = (np.asarray(chunk_arrival) - due) * 1e3  # ms
    stream_t = (last + 1) / sfreq  # stream seconds at each chunk
    first_min, last_min = stream_t < 60, stream_t > stream_t[-1] - 60
    # robust trend: median lateness per 10 s of stream, then a line through the medians
    bins = (stream_t // 10).astype(int)
    centers = np.array([stream_t[bins == b].mean() for b in np.unique(bins)])
    medians = np.array([np.median(late[bins == b]) for b in np.unique(bins)])
    slope = np.polyfit(centers, medians, 1)[0] if len(centers) > 1 else 0.0  # ms per stream s

    def lateness(kind: str) -> np.ndarray:
        rows = np.asarray(other[kind], dtype=float).reshape(-1, 2)
        if not len(rows):
            return np.zeros(0)
        # a marker stamped t0 + τ (stream time) is due at t0 + τ / speed (wall)
        return (rows[:, 1] - (t0 + (rows[:, 0] - t0) / speed)) * 1e3

    m_late, v_late = lateness("markers"), lateness("truth")
    stream_s = n / sfreq
    return {
        "config": {
            "channels": n_chans,
            "sfreq": sfreq,
            "speed": speed,
            "chunk_ms": args.chunk,
            "stream_minutes": round(stream_s / 60, 3),
            "session_s": args.session,
            "truth": not args.no_truth,
        },
        "samples": {"pushed": stats["n_pushed"], "received": n, "lost": stats["n_pushed"] - n},
        "timestamp_max_error_s": float(np.abs(stamps - ideal).max()),
        "timestamp_spacing_max_dev_s": float(np.abs(np.diff(stamps) - 1 / sfreq).max()),
        "eeg_arrival_late_ms": _pct(late),
        "drift_ms": {
            "median_last_minus_first_minute": float(
                np.median(late[last_min]) - np.median(late[first_min])
            ),
            "fit_over_run": float(slope * (stream_t[-1] - stream_t[0])),
        },
        "marker_arrival_late_ms": _pct(m_late),
        "volume_arrival_late_ms": _pct(v_late),
        "n_markers": len(m_late),
        "n_volumes": len(v_late),
        "cpu": {
            "cpu_s": round(stats["cpu_s"], 3),
            "wall_s": round(stats["wall_s"], 3),
            "ms_per_stream_s": round(stats["cpu_s"] / stream_s * 1e3, 3),
            "core_share_pct": round(stats["cpu_s"] / stats["wall_s"] * 100, 2),
        },
    }


def _pct(x) -> dict:
    import numpy as np

    if len(x) == 0:
        return {}
    q = np.percentile(x, [50, 95, 99])
    return {
        "p50": round(float(q[0]), 3),
        "p95": round(float(q[1]), 3),
        "p99": round(float(q[2]), 3),
        "max": round(float(np.max(x)), 3),
        "min": round(float(np.min(x)), 3),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=10.0, help="stream time to replay")
    p.add_argument("--speed", type=float, default=10.0)
    p.add_argument("--channels", type=int, default=64)
    p.add_argument("--sfreq", type=float, default=5000.0)
    p.add_argument("--chunk", type=float, default=20.0, help="chunk (ms)")
    p.add_argument("--session", type=float, default=60.0, help="session length (s), looped")
    p.add_argument("--t-r", type=float, default=2.0)
    p.add_argument("--no-truth", action="store_true", help="no full-grid BOLD volumes")
    p.add_argument("--json", default=None, help="also write the figures to this file")
    args = p.parse_args()
    res = measure(args)
    c, cpu = res["config"], res["cpu"]
    print(
        f"replay {c['channels']} ch @ {c['sfreq']:g} Hz, {c['stream_minutes']} min of stream at "
        f"speed {c['speed']:g}, chunk {c['chunk_ms']:g} ms, truth={c['truth']}"
    )
    print(f"  samples pushed/received/lost: {res['samples']}")
    print(
        f"  timestamps: max |t_i - (t0 + i/sfreq)| = {res['timestamp_max_error_s']:.3g} s, "
        f"max spacing deviation = {res['timestamp_spacing_max_dev_s']:.3g} s"
    )
    print(f"  EEG chunk arrival minus schedule (ms): {res['eeg_arrival_late_ms']}")
    d = res["drift_ms"]
    print(
        f"  drift: median lateness last minute - first minute = "
        f"{d['median_last_minus_first_minute']:+.3f} ms; linear fit "
        f"{d['fit_over_run']:+.3f} ms over the {c['stream_minutes']} min"
    )
    print(
        f"  scanner/stim markers ({res['n_markers']}) arrival (ms): {res['marker_arrival_late_ms']}"
    )
    print(f"  truth volumes ({res['n_volumes']}) arrival (ms): {res['volume_arrival_late_ms']}")
    print(
        f"  CPU: {cpu['cpu_s']} s over {cpu['wall_s']} s wall = {cpu['ms_per_stream_s']} ms per "
        f"second of stream, {cpu['core_share_pct']} % of one core"
    )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(res, fh, indent=2)


if __name__ == "__main__":
    main()
