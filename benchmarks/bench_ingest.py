"""Ingest cost of an EEG stream: our ``EEGConsumer`` vs mne-lsl's ``StreamLSL``, side by side.

For each configuration (default 64 and 256 channels at 5 kHz) one outlet process pushes
``--seconds`` of float32 samples in real time, in chunks of ``--chunk`` ms with exact
sample-spaced timestamps. Three consumer processes read the same stream at the same time,
each in its own process so their CPU time can be told apart:

- ``EEGConsumer``: ours, a 40 s ring (30 s window + 10 s margin), channels mapped by label,
  microvolts → volts;
- ``StreamLSL``: ``mne_lsl.stream.StreamLSL(bufsize=30)`` with its default
  ``connect()`` (acquisition every 1 ms, ``np.roll`` of the buffer per chunk);
- ``bare pull``: a plain pylsl inlet pulling into a preallocated array and discarding it —
  the floor every LSL consumer pays (liblsl's receiver thread and the pull itself).

Reported per consumer: process CPU time (``time.process_time``: all threads, liblsl's
included) per second of stream — median over 1 s intervals and the whole-run mean —, the
acquisition thread's own CPU time per second of stream (``time.thread_time`` inside it;
not available for the bare pull, which has only a main thread), the median CPU time per
chunk handled, and the samples received against the samples pushed. The headline is the
ratio StreamLSL / EEGConsumer of the process CPU (aim: ≥ 10×) with 0 samples lost.

``--compare-with REF`` adds a fourth consumer: the ``EEGConsumer`` of another commit (its
tree extracted with ``git archive``), reading the same stream at the same time, so a
change is measured against the code before it in one run.

    .venv/bin/python benchmarks/bench_ingest.py --seconds 30
    .venv/bin/python benchmarks/bench_ingest.py --seconds 10 --channels 64
    .venv/bin/python benchmarks/bench_ingest.py --seconds 30 --compare-with HEAD~1
    .venv/bin/python benchmarks/bench_ingest.py --channels 64 --band 1 40 --model-rate 250 \
        --compare-with HEAD~1   # the whole chain (resample + causal band-pass) vs a bare ingest
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

CTX = mp.get_context("spawn")
CONSUMERS = ("EEGConsumer", "StreamLSL", "bare pull")
REF = "EEGConsumer@ref"  # the EEGConsumer of --compare-with


def extract_ref(ref: str, dest: Path) -> Path:
    """The package tree of git ``ref`` under ``dest`` (``git archive``); its path."""
    root = Path(__file__).resolve().parents[1]
    archive = subprocess.run(
        ["git", "-C", str(root), "archive", ref, "rt_eeg2fmri", "trainer", "apps", "benchmarks"],
        check=True,
        capture_output=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


def _ch_names(n: int) -> list[str]:
    return [f"EEG{i:03d}" for i in range(n)]


def _outlet(cfg: dict, go, stop, results) -> None:
    import numpy as np
    import pylsl

    n_chans, sfreq = cfg["channels"], cfg["sfreq"]
    info = pylsl.StreamInfo(cfg["name"], "EEG", n_chans, sfreq, pylsl.cf_float32, cfg["source_id"])
    info.set_channel_labels(_ch_names(n_chans))
    info.set_channel_units(["microvolts"] * n_chans)
    outlet = pylsl.StreamOutlet(info, chunk_size=0, max_buffered=360)
    results.put(("outlet", "ready", None))
    go.wait()
    rng = np.random.default_rng(0)
    block = (10 * rng.standard_normal((int(sfreq), n_chans))).astype(np.float32)
    chunk = round(cfg["chunk_ms"] * sfreq / 1000)
    n_total = round(cfg["seconds"] * sfreq)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    t0 = pylsl.local_clock()
    n = 0
    while n < n_total:
        k = min(chunk, n_total - n)
        due = wall0 + (n + k) / sfreq
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        i = n % block.shape[0]
        outlet.push_chunk(block[i : i + k], t0 + (n + k - 1) / sfreq)
        n += k
    results.put(("outlet", "done", {"pushed": n, "cpu_s": time.process_time() - cpu0}))
    stop.wait(60)


def _consumer(kind: str, cfg: dict, go, stop, results) -> None:
    import numpy as np
    import pylsl

    n_chans, sfreq = cfg["channels"], cfg["sfreq"]
    chunk_costs: list[float] = []
    thread_cpu = {"s": 0.0}
    if kind in ("EEGConsumer", REF):
        if kind == REF:  # the other commit's package, ahead of the installed one
            sys.path.insert(0, cfg["ref_tree"])
        from rt_eeg2fmri.realtime import EEGConsumer

        if kind == REF:
            import rt_eeg2fmri

            assert rt_eeg2fmri.__file__.startswith(cfg["ref_tree"]), rt_eeg2fmri.__file__

        if kind == "EEGConsumer":  # the chain's optional stages (the reference runs none)
            from rt_eeg2fmri.data import Preprocessing

            l_freq, h_freq = cfg["band"] or (None, None)
            rate = cfg["model_rate"] or sfreq
            pre = Preprocessing(sfreq=rate, l_freq=l_freq, h_freq=h_freq)
            chain = {"preprocessing": pre, "resample": rate != sfreq}
        else:
            chain = {"sfreq": sfreq}
        obj = EEGConsumer(f"source_id:{cfg['source_id']}", ch_names=_ch_names(n_chans), **chain)
        run, ingest = obj._run, obj._ingest

        def timed_run(inlet):  # the acquisition thread, measured from inside
            try:
                run(inlet)
            finally:
                thread_cpu["s"] = time.thread_time()

        def timed_ingest(raw, stamps):
            c0 = time.thread_time()
            ingest(raw, stamps)
            chunk_costs.append(time.thread_time() - c0)

        obj._run, obj._ingest = timed_run, timed_ingest
        obj.start()

        def received():
            return obj.health.samples

        def finish():
            health = obj.health
            obj.stop()
            return {"gaps": health.gaps, "samples_lost_est": health.samples_lost}

    elif kind == "StreamLSL":
        from mne_lsl.stream import StreamLSL
        from mne_lsl.utils.logs import set_log_level

        set_log_level("WARNING")
        obj = StreamLSL(bufsize=30, source_id=cfg["source_id"])
        acquire = obj._acquire

        def timed_acquire():  # one acquisition job, including its 1 ms wait before the next
            c0 = time.thread_time()
            n0 = obj._n_new_samples
            acquire()
            cost = time.thread_time() - c0
            thread_cpu["s"] += cost
            if obj._n_new_samples != n0:
                chunk_costs.append(cost)

        obj._acquire = timed_acquire
        obj.connect(timeout=10)

        def received():
            return obj.n_new_samples  # never reset: get_data is not called

        def finish():
            obj.disconnect()
            return {}

    else:
        found = pylsl.resolve_byprop("source_id", cfg["source_id"], timeout=10)
        inlet = pylsl.StreamInlet(found[0], max_buflen=40)
        inlet.open_stream(10)
        buf = np.empty((round(0.1 * sfreq), n_chans), np.float32)
        count = {"n": 0}

        def received():
            return count["n"]

        def finish():
            inlet.close_stream()
            return {}

    results.put((kind, "ready", None))
    go.wait()
    cpu0 = time.process_time()
    ticks = [cpu0]
    next_tick = time.perf_counter() + 1.0
    while not stop.is_set():
        if kind == "bare pull":
            c0 = time.process_time()
            _, ts = inlet.pull_chunk(
                timeout=0.05, max_samples=buf.shape[0], dest_obj=buf, min_samples=1, as_numpy=True
            )
            if len(ts):
                count["n"] += len(ts)
                chunk_costs.append(time.process_time() - c0)
        else:
            stop.wait(0.05)
        if time.perf_counter() >= next_tick:
            ticks.append(time.process_time())
            next_tick += 1.0
    cpu = time.process_time() - cpu0
    n_received = received()
    extra = finish()
    results.put(
        (
            kind,
            "done",
            {
                "cpu_s": cpu,
                "cpu_per_s": list(np.diff(ticks)),
                "thread_cpu_s": thread_cpu["s"] if kind != "bare pull" else None,
                "chunk_cost_median_s": float(np.median(chunk_costs)) if chunk_costs else None,
                "n_chunks": len(chunk_costs),
                "received": int(n_received),
                **extra,
            },
        )
    )


def run_config(
    channels: int,
    sfreq: float,
    seconds: float,
    chunk_ms: float,
    ref_tree: str | None = None,
    *,
    band=None,
    model_rate=None,
) -> dict:
    """One outlet and the consumers on one stream; the figures of each."""
    uid = uuid.uuid4().hex[:10]
    cfg = dict(
        channels=channels,
        sfreq=sfreq,
        seconds=seconds,
        chunk_ms=chunk_ms,
        name=f"bench-ingest-{uid}",
        source_id=f"bench-ingest-{uid}",
        ref_tree=ref_tree,
        band=band,
        model_rate=model_rate,
    )
    kinds = CONSUMERS + ((REF,) if ref_tree else ())
    go, stop, results = CTX.Event(), CTX.Event(), CTX.Queue()
    procs = [CTX.Process(target=_outlet, args=(cfg, go, stop, results))]
    procs += [CTX.Process(target=_consumer, args=(k, cfg, go, stop, results)) for k in kinds]
    procs[0].start()
    _expect(results, {"outlet": "ready"}, timeout=30)
    for p in procs[1:]:
        p.start()
    _expect(results, {k: "ready" for k in kinds}, timeout=60)
    go.set()
    out = _expect(results, {"outlet": "done"}, timeout=seconds * 3 + 60)
    time.sleep(1.0)  # let every consumer drain what is in flight
    stop.set()
    out.update(_expect(results, {k: "done" for k in kinds}, timeout=60))
    for p in procs:
        p.join(30)
        if p.is_alive():
            p.kill()
    out["config"] = cfg
    return out


def _expect(results, wanted: dict, timeout: float) -> dict:
    got, deadline = {}, time.monotonic() + timeout
    while len(got) < len(wanted):
        who, what, payload = results.get(timeout=max(0.1, deadline - time.monotonic()))
        if wanted.get(who) == what:
            got[who] = payload
    return got


def report(res: dict) -> dict:
    """Print one configuration's table; return its summary."""
    import numpy as np

    cfg = res["config"]
    seconds, pushed = cfg["seconds"], res["outlet"]["pushed"]
    chain = ""
    if cfg["band"] or cfg["model_rate"]:
        lo, hi = cfg["band"] or (None, None)
        chain = f"; EEGConsumer chain: resample to {cfg['model_rate'] or cfg['sfreq']:g} Hz"
        chain += f", band-pass {lo}-{hi} Hz" if cfg["band"] else ""
    print(
        f"\n{cfg['channels']} ch × {cfg['sfreq']:g} Hz, {seconds:g} s of stream in "
        f"{cfg['chunk_ms']:g} ms chunks; outlet CPU {1e3 * res['outlet']['cpu_s'] / seconds:.1f} "
        f"ms/s{chain}"
    )
    print(
        f"  {'consumer':<12} {'proc CPU ms/s':>14} {'(mean)':>8} {'thread ms/s':>12} "
        f"{'per chunk ms':>13} {'chunks':>7} {'received':>10} {'lost':>6}"
    )
    summary = {}
    for kind in [k for k in (*CONSUMERS, REF) if k in res]:
        r = res[kind]
        med = 1e3 * float(np.median(r["cpu_per_s"]))
        mean = 1e3 * r["cpu_s"] / seconds
        thread = "" if r["thread_cpu_s"] is None else f"{1e3 * r['thread_cpu_s'] / seconds:.2f}"
        chunk = "" if r["chunk_cost_median_s"] is None else f"{1e3 * r['chunk_cost_median_s']:.3f}"
        lost = pushed - r["received"]
        print(
            f"  {kind:<12} {med:>14.2f} {mean:>8.2f} {thread:>12} {chunk:>13} "
            f"{r['n_chunks']:>7} {r['received']:>10} {lost:>6}"
        )
        summary[kind] = dict(
            proc_cpu_ms_per_s_median=med,
            proc_cpu_ms_per_s_mean=mean,
            thread_cpu_ms_per_s=None
            if r["thread_cpu_s"] is None
            else 1e3 * r["thread_cpu_s"] / seconds,
            chunk_cost_ms_median=None
            if r["chunk_cost_median_s"] is None
            else 1e3 * r["chunk_cost_median_s"],
            received=r["received"],
            lost=lost,
        )
    ours, mne = summary["EEGConsumer"], summary["StreamLSL"]
    ratio_proc = mne["proc_cpu_ms_per_s_median"] / ours["proc_cpu_ms_per_s_median"]
    ratio_thread = mne["thread_cpu_ms_per_s"] / ours["thread_cpu_ms_per_s"]
    print(
        f"  StreamLSL / EEGConsumer: process CPU {ratio_proc:.1f}× (median), acquisition "
        f"thread CPU {ratio_thread:.1f}×; EEGConsumer gaps {res['EEGConsumer']['gaps']}, "
        f"lost {ours['lost']} (aim ≥ 10×, 0 lost)"
    )
    if REF in summary:
        before = summary[REF]
        print(
            f"  this tree / {cfg['ref']}: process CPU "
            f"{ours['proc_cpu_ms_per_s_median'] / before['proc_cpu_ms_per_s_median']:.2f}× "
            f"(median), acquisition thread CPU "
            f"{ours['thread_cpu_ms_per_s'] / before['thread_cpu_ms_per_s']:.2f}×, per chunk "
            f"{ours['chunk_cost_ms_median'] / before['chunk_cost_ms_median']:.2f}×; lost "
            f"{ours['lost']} vs {before['lost']}"
        )
    summary["cpu_per_s"] = {k: res[k]["cpu_per_s"] for k in CONSUMERS}
    summary["ratio_proc_cpu"] = ratio_proc
    summary["ratio_thread_cpu"] = ratio_thread
    summary["pushed"] = pushed
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="stream time per config")
    parser.add_argument("--sfreq", type=float, default=5000.0)
    parser.add_argument(
        "--channels", type=int, nargs="+", default=[64, 256], help="channel counts to run"
    )
    parser.add_argument("--chunk", type=float, default=10.0, help="outlet chunk in ms")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    parser.add_argument(
        "--compare-with", default=None, metavar="REF", help="also run the EEGConsumer of git REF"
    )
    parser.add_argument(
        "--band", type=float, nargs=2, default=None, metavar=("L", "H"),
        help="our consumer band-passes L-H Hz (causal IIR), as a checkpoint with l_freq/h_freq",
    )  # fmt: skip
    parser.add_argument(
        "--model-rate", type=float, default=None, help="our consumer resamples to this rate (Hz)"
    )
    args = parser.parse_args()
    summaries = {}
    with tempfile.TemporaryDirectory() as tmp:
        ref_tree = str(extract_ref(args.compare_with, Path(tmp))) if args.compare_with else None
        for n_chans in args.channels:
            res = run_config(
                n_chans,
                args.sfreq,
                args.seconds,
                args.chunk,
                ref_tree,
                band=args.band,
                model_rate=args.model_rate,
            )
            res["config"]["ref"] = args.compare_with
            summaries[f"{n_chans}ch"] = report(res)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summaries, f, indent=2)


if __name__ == "__main__":
    main()
