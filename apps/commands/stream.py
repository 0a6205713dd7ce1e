"""``rt-eeg2fmri stream``: the main job — EEG over LSL in, one predicted fMRI volume per TR out."""

from __future__ import annotations

HELP = "Stream: predict one fMRI volume per TR from a live EEG stream on LSL."


def add_arguments(parser) -> None:
    """Add the stream options."""
    parser.add_argument(
        "--model", default=None, help="checkpoint (.pt); default: the built-in conv model"
    )
    parser.add_argument(
        "--source",
        default="type:EEG",
        help="EEG stream: NAME, name:NAME, type:TYPE (any case) or source_id:ID "
        "(default: type:EEG)",
    )
    parser.add_argument(
        "--sync",
        default="clock",
        choices=("clock", "trigger", "samples"),
        help="clock: every TR on the stream clock; trigger: on scanner markers; samples: every "
        "TR x sfreq received samples (deterministic)",
    )
    parser.add_argument(
        "--trigger",
        default=None,
        help="the scanner's volume markers (--sync trigger, --correct gradient): a marker stream "
        "NAME[:MARKER] (default marker R128), or eeg:CHANNEL[:LEVEL], the rising edges of a "
        "trigger channel of the EEG stream through LEVEL (default 0.5, in the stream's units; "
        "with a unit, e.g. 2.5V or 100uV, a voltage converted from the channel's unit), or "
        "eeg:CHANNEL:mask=BITS, where the channel's code & BITS turns non-zero (a status "
        "channel, e.g. mask=0x8)",
    )
    parser.add_argument(
        "--events",
        default=None,
        metavar="NAME",
        help="a checkpoint with a task readout (calibrate --events): the marker stream of the "
        "task's stimuli (e.g. the replay's NAME-Markers, or the amplifier's marker stream); "
        "each volume adds what its trial types' events predict",
    )
    parser.add_argument(
        "--event-map",
        default=None,
        metavar="MARKER=TYPE,...",
        help="--events: what a marker code stands for where the calibration data used it for "
        "several trial types, e.g. S1=auditory_standard,S2=auditory_target",
    )
    parser.add_argument(
        "--no-events",
        action="store_true",
        help="run a checkpoint with a task readout from the EEG alone",
    )
    parser.add_argument(
        "--correct",
        default=None,
        metavar="gradient,bcg",
        help="in-scanner EEG, corrected live: 'gradient' subtracts the gradient artifact on the "
        "--trigger markers (a template of past volumes), 'bcg' the pulse artifact on the "
        "heartbeats of the stream's ECG channel (a template of past beats; gradient only while "
        "the ECG lead is off); windows not cleaned yet are flagged in the timing log",
    )
    parser.add_argument(
        "--ecg",
        default=None,
        metavar="NAME",
        help="--correct bcg: the stream's ECG channel (default: the one typed ECG, else the one "
        "labelled ECG*/EKG*)",
    )
    parser.add_argument(
        "--correct-beats",
        type=int,
        default=None,
        help="--correct bcg: past heartbeats in the template (default 30)",
    )
    parser.add_argument(
        "--publish-eeg",
        default=None,
        metavar="NAME",
        help="publish the EEG the model sees (after the chain: --correct, resampling, "
        "band-pass; µV) as its own LSL stream NAME; with --correct a last channel 'Clean' "
        "is 1 where the correction flagged the samples clean",
    )
    parser.add_argument(
        "--correct-volumes",
        type=int,
        default=None,
        help="--correct gradient: past volumes in the template (default 8)",
    )
    parser.add_argument(
        "--phase", type=float, default=0.0, help="--sync samples: offset of the volume grid (s)"
    )
    parser.add_argument(
        "--out",
        default=None,
        help="NIfTI series written after every volume (.nii/.nii.gz), or a folder: a BIDS "
        "derivative (sub-S/func/sub-S_task-T_desc-eeg2fmri_bold.nii.gz + sidecar + timing log)",
    )
    parser.add_argument(
        "--timing", default=None, help="per-TR timing log (TSV; default in a BIDS --out folder)"
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace existing --out/--timing files (default: refuse, before connecting)",
    )
    parser.add_argument(
        "--roi",
        default=None,
        help="atlas NIfTI (a label image or one mask): publish each region's mean every TR on "
        "the LSL stream '<--name>-ROI' and write it beside --out (*_roi.tsv)",
    )
    parser.add_argument(
        "--roi-labels", default=None, help="region names: a TSV with index and name columns"
    )
    parser.add_argument(
        "--adapt",
        default=None,
        metavar="TRUTH_STREAM",
        help="adapt the model live to the scanner's volumes on this volume stream (name:X), "
        "in the model's target units (replay --model M.pt sends them), then freeze: a running "
        "per-voxel map, then calibrate's choice (HRF timing, readout) on the pairs",
    )
    parser.add_argument(
        "--adapt-minutes", type=float, default=None, help="minutes of live adaptation (--adapt)"
    )
    parser.add_argument(
        "--adapt-gap",
        type=float,
        default=20.0,
        help="seconds between fitted and held-out volumes when the map freezes (default 20)",
    )
    parser.add_argument(
        "--adapt-delays",
        action="store_true",
        help="the final choice also offers a per-voxel haemodynamic delay (--adapt)",
    )
    parser.add_argument(
        "--save-adapted", default=None, help="write the adapted checkpoint here when it freezes"
    )
    parser.add_argument("--subject", default="01", help="BIDS --out folder: subject label")
    parser.add_argument("--task", default="rt", help="BIDS --out folder: task label")
    parser.add_argument("--run", default=None, help="BIDS --out folder: run label")
    parser.add_argument("--session", default=None, help="BIDS --out folder: session label")
    parser.add_argument(
        "--name", default="rt-eeg2fmri-volume", help="name of the predicted-volume LSL stream"
    )
    parser.add_argument("--no-outlet", action="store_true", help="do not publish volumes on LSL")
    parser.add_argument("--device", default="auto", help="auto (default), cpu or cuda")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default: half the cores, at most 4: the acquisition thread "
        "and the amplifier software keep a core)",
    )
    parser.add_argument(
        "--calibrate",
        type=float,
        default=0.0,
        help="estimate normalisation from the first S seconds",
    )
    parser.add_argument(
        "--allow-missing",
        action="store_true",
        help="zero-fill model channels the stream lacks instead of interpolating them from "
        "its other channels (spherical splines)",
    )
    parser.add_argument(
        "--montage",
        default=None,
        help="electrode positions of the stream's channels (a file MNE reads: .elc, .sfp, "
        ".bvef, ...), for the interpolation of model channels the cap lacks (default: the "
        "stream's locations, else the 10-05 positions of the labels)",
    )
    parser.add_argument(
        "--units",
        default=None,
        help="unit of every stream channel (V, mV, uV, or a power of ten of volts such as -6), "
        "for streams that describe none or odd ones",
    )
    parser.add_argument(
        "--assume-order",
        action="store_true",
        help="a stream without channel labels carries the model's channels in its order",
    )
    parser.add_argument(
        "--no-resample",
        action="store_true",
        help="refuse a stream whose rate differs from the model's instead of resampling it",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        help="seconds to wait for the stream at the start, and for its source to come back "
        "when it is gone from the network (then the stream ends; what it wrote is complete)",
    )
    parser.add_argument("--max-volumes", type=int, default=None, help="stop after N volumes")
    parser.add_argument("--duration", type=float, default=None, help="stop after S seconds")
    parser.add_argument("--quiet", action="store_true", help="no live status line")
    parser.add_argument(
        "--view", action="store_true", help="show the volumes in the viewer, in-process"
    )


def default_model_path():
    """The built-in default checkpoint shipped inside the package."""
    from importlib.resources import files

    return files("rt_eeg2fmri") / "assets" / "conv.pt"


def default_threads() -> int:
    """Torch CPU threads for streaming: half the cores, 1 to 4.

    More intra-op threads than free cores make a batch-1 forward wait for descheduled
    threads (benchmarks/bench_latency.py on 2 cores, default conv: forward p99 165 ms with
    2 threads, 7 ms with 1).
    """
    import os

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(4, (cores or 1) // 2))


def _positions(path):
    """Electrode positions from ``--montage FILE``; ``None`` without one."""
    if path is None:
        return None
    from rt_eeg2fmri.data.montage import read_positions

    return read_positions(path)


def _outputs(args):
    """``(nifti, timing, bids_root)`` of ``--out``/``--timing``: a file, or a BIDS folder."""
    from pathlib import Path

    if args.out is None or args.out.endswith((".nii", ".nii.gz")):
        return args.out, args.timing, None
    from rt_eeg2fmri.realtime.outputs import derivative_paths

    out = Path(args.out)
    if (out.exists() and not out.is_dir()) or (not out.exists() and out.suffix):
        raise ValueError(
            f"'--out' {str(out)!r}: expected a .nii or .nii.gz file name, or a folder name "
            "without an extension (a BIDS derivative folder)."
        )
    nifti, timing = derivative_paths(
        out, subject=args.subject, task=args.task, run=args.run, session=args.session
    )
    return nifti, args.timing or timing, out


def _corrections(args) -> tuple[str, ...]:
    """``--correct`` checked: the corrections asked for (none without the flag)."""
    if args.correct is None:
        if args.ecg is not None:
            raise ValueError(
                "'--ecg' names the ECG channel of '--correct bcg', which is not asked for."
            )
        return ()
    from rt_eeg2fmri.data.correct import LIVE, parse_corrections

    try:  # a stream's corrections are the live ones anyway
        return tuple(c for c in parse_corrections(args.correct) if c != LIVE)
    except ValueError as err:
        raise ValueError(f"'--correct': {err}") from None


def _check_limits(args) -> None:
    """Numbers that make no run are refused before anything is touched, naming the flag."""
    import math

    if args.threads is not None and args.threads < 1:
        raise ValueError(f"'--threads' must be >= 1, got {args.threads}.")
    for flag, value in (("--correct-volumes", args.correct_volumes),
                        ("--correct-beats", args.correct_beats)):  # fmt: skip
        if value is not None and value < 1:
            raise ValueError(f"'{flag}' must be >= 1, got {value}.")
    _corrections(args)
    if args.max_volumes is not None and args.max_volumes < 1:
        raise ValueError(f"'--max-volumes' must be >= 1, got {args.max_volumes}.")
    for flag, value in (("--duration", args.duration), ("--timeout", args.timeout)):
        if value is not None and not (math.isfinite(value) and value > 0):
            raise ValueError(f"'{flag}' must be a positive number of seconds, got {value}.")
    if not math.isfinite(args.phase):
        raise ValueError(f"'--phase' must be a finite number of seconds, got {args.phase}.")


def run(args) -> int:
    """Check and hold the outputs, then stream until a limit or Ctrl-C/SIGTERM; summarise.

    Exit status 1 when an output requested could not be written whole.
    """
    _check_limits(args)
    nifti, timing, bids_root = _outputs(args)
    from rt_eeg2fmri.realtime.outputs import check_new_outputs, lock_outputs, output_files

    files = output_files(nifti, timing, roi=args.roi is not None)
    locks = lock_outputs(files)  # a second writer of the same files is refused here
    try:
        check_new_outputs(files, overwrite=args.overwrite)
        from rt_eeg2fmri.realtime.resolve import check_name_free

        if not args.no_outlet:
            check_name_free(args.name)
        if args.publish_eeg:
            check_name_free(args.publish_eeg, what="--publish-eeg")
        return _stream(args, nifti, timing, bids_root)
    finally:
        for lock in locks:
            lock.release()


def _stream(args, nifti, timing, bids_root) -> int:
    """Connect, stream, print the summary (the outputs are checked and held)."""
    import functools
    import json
    import signal
    import sys

    import torch

    from rt_eeg2fmri.checkpoint import load_checkpoint
    from rt_eeg2fmri.realtime.engine import Engine

    ckpt = load_checkpoint(args.model or default_model_path())
    torch.set_num_threads(args.threads or default_threads())
    engine = Engine.from_checkpoint(
        ckpt,
        source=args.source,
        sync=args.sync,
        trigger=args.trigger,
        phase=args.phase,
        outlet_name=None if args.no_outlet else args.name,
        nifti=nifti,
        timing=timing,
        bids_root=bids_root,
        roi=args.roi,
        roi_labels=args.roi_labels,
        roi_name=f"{args.name}-ROI",
        calibrate=args.calibrate,
        device=args.device,
        adapt=args.adapt,
        adapt_minutes=args.adapt_minutes,
        adapt_gap=args.adapt_gap,
        adapt_delays=args.adapt_delays,
        save_adapted=args.save_adapted,
        correct=_corrections(args),
        gradient_volumes=args.correct_volumes,
        pulse_beats=args.correct_beats,
        ecg=args.ecg,
        lost_timeout=args.timeout,
        events=args.events,
        event_map=args.event_map,
        no_events=args.no_events,
        consumer_options={
            "publish": args.publish_eeg,
            "allow_missing": args.allow_missing,
            "positions": _positions(args.montage),
            "units": args.units,
            "assume_order": args.assume_order,
            "resample": not args.no_resample,
            "timeout": args.timeout,
        },
    )
    interactive = not args.quiet and sys.stderr.isatty()

    def status(index, volume, row):
        if not args.quiet:
            s = engine.stats.summary(engine.consumer.health)
            line = (
                f"volume {index:5d} | latency {row['latency_ms']:7.1f} ms (p50 {s['latency_p50_ms']:.1f}, "
                f"p99 {s['latency_p99_ms']:.1f}) | skipped {s['skipped']} | lost {s['samples_lost']} "
                f"samples | stream {s['state']}"
            )
            if row.get("adapt", "off") != "off":
                line += f" | adapt {engine.adapter.phase} ({len(engine.adapter.pairs)} pairs)"
            if row.get("uncorrected") is not None:  # --correct: windows not flagged clean
                this = " (this one)" if row["uncorrected"] else ""
                line += f" | uncorrected {s['uncorrected']}{this}"
            print(
                ("\r" + line) if interactive else line,
                end="" if interactive else "\n",
                file=sys.stderr,
                flush=True,
            )

    previous = {
        sig: signal.signal(sig, lambda *_: engine.stop()) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        try:
            engine.start()  # a Ctrl-C while it waits for the stream ends the wait
        except InterruptedError:
            print(
                "rt-eeg2fmri stream: stopped while waiting for the stream; nothing was written.",
                file=sys.stderr,
            )
            return 130
        try:
            print(
                f"streaming {ckpt.model_name} ({len(ckpt.ch_names)} ch @ {ckpt.sfreq:g} Hz, TR {ckpt.t_r:g} s, "
                f"{engine.mapper.device}) from '{engine.consumer.stream_info.name()}', sync={args.sync}"
                + (f", task events of '{args.events}'" if engine.task is not None else ""),
                file=sys.stderr,
                flush=True,
            )
            if args.view:  # the engine in a thread, the window here; closing it stops both
                from apps.viewer.app import run_engine_viewer

                go = functools.partial(run_engine_viewer, engine)
            else:
                go = engine.run
            summary = go(max_volumes=args.max_volumes, duration=args.duration, on_volume=status)
        finally:
            engine.close()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if interactive:
        print(file=sys.stderr)
    print(json.dumps(summary, indent=2))
    for line in summary.get("failed_outputs", []):
        print(f"error: {line}", file=sys.stderr)
    if summary.get("volumes") == 0:
        why = " (the trigger stream sent no volume marker)" if summary.get("triggers") == 0 else ""
        print(f"error: no volume was produced{why}.", file=sys.stderr)
        if not summary.get("stopped"):  # the user's own Ctrl-C in warm-up is not an error
            return 1
    if summary.get("output_errors"):
        print(
            f"error: {summary['output_errors']} output error(s): not everything requested "
            "was written (see above).",
            file=sys.stderr,
        )
        return 1
    return 0
