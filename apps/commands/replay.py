"""``rt-eeg2fmri replay``: play a recorded session as live LSL streams."""

from __future__ import annotations

from ._reader import add_reader_arguments, reader_options

HELP = "Replay a recorded session as live LSL streams (EEG, markers, measured volumes)."


def add_arguments(parser) -> None:
    """Add the replay options."""
    parser.add_argument(
        "path", help="dataset folder (BIDS, ds000116, simulated), EEG file (MNE-readable) or .xdf"
    )
    parser.add_argument("--subject", default=None, help="run selection in a dataset folder")
    parser.add_argument("--task", default=None, help="run selection in a dataset folder")
    parser.add_argument("--run", default=None, help="run selection in a dataset folder")
    parser.add_argument("--session", default=None, help="run selection in a dataset folder")
    parser.add_argument("--stream", default=None, help="EEG stream name (or type) in an XDF file")
    parser.add_argument(
        "--name",
        default=None,
        help="stream name prefix (default: from the run, e.g. sub-01_task-x)",
    )
    parser.add_argument("--source-id", default=None, help="source id base (default: from the file)")
    parser.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="playback speed (default 1); timestamps stay sample-spaced, so at 10 the stream "
        "clock runs 10x faster than wall time",
    )
    parser.add_argument("--loop", action="store_true", help="restart seamlessly at the end")
    parser.add_argument("--start", type=float, default=0.0, help="offset into the recording (s)")
    parser.add_argument("--duration", type=float, default=None, help="seconds to replay")
    parser.add_argument(
        "--chunk", type=float, default=20.0, help="EEG chunk length (ms, default 20)"
    )
    parser.add_argument("--no-truth", action="store_true", help="do not send the measured volumes")
    parser.add_argument(
        "--no-wait",
        action="store_true",
        help="start at once (default: wait until something subscribes to the EEG stream, so "
        "a fast replay is not over before its consumer connects)",
    )
    parser.add_argument(
        "--model",
        default=None,
        help="checkpoint (.pt): send the measured volumes as its targets (its target units, "
        "smoothing, drift removal and mask)",
    )
    parser.add_argument(
        "--target",
        default=None,
        choices=("psc", "median_ratio"),
        help="units of the measured volumes without --model (default psc)",
    )
    parser.add_argument(
        "--fwhm",
        type=float,
        default=None,
        help="smooth the measured volumes (mm), as a model's targets with --set fwhm=",
    )
    parser.add_argument(
        "--high-pass",
        type=float,
        default=None,
        help="remove drifts from the measured volumes (Hz), as --set high_pass=",
    )
    add_reader_arguments(parser)


def run(args) -> int:
    """Load the recording, play it until the end (or a signal), print a summary."""
    import signal

    from rt_eeg2fmri.replay import Replay, load_recording

    preprocessing, mask = _truth_preprocessing(args)
    session = load_recording(
        args.path,
        subject=args.subject,
        task=args.task,
        run=args.run,
        session=args.session,
        stream=args.stream,
        **reader_options(args),
    )
    replay = Replay(
        session,
        name=args.name,
        chunk=args.chunk / 1000.0,
        speed=args.speed,
        loop=args.loop,
        start=args.start,
        duration=args.duration,
        source_id=args.source_id,
        truth=not args.no_truth,
        preprocessing=preprocessing,
        mask=mask,
        marker=scanner_marker(args.marker),
    )
    stopped = []

    def _stop(signum, frame):
        stopped.append(signal.Signals(signum).name)
        replay.stop()

    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        replay.open()
        print(f"streaming {session!r}", flush=True)
        for kind, name in replay.stream_names.items():
            print(f"  {kind:8s} {name}  (source_id {replay.source_ids[kind]})", flush=True)
        if not args.no_wait:
            print(f"waiting for a consumer of '{replay.stream_names['eeg']}'...", flush=True)
            while not stopped and not replay.wait_for_consumers(0.5, kinds=["eeg"]):
                pass
        if not stopped:
            replay.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    why = f"stopped by {stopped[0]}" if stopped else "end of recording"
    print(f"{why}: {replay.summary()}", flush=True)
    return 0


def scanner_marker(marker: str | None) -> str:
    """The string the marker stream sends at each volume.

    ``--marker``, or ``R128`` when ``--marker`` names a trigger channel (that channel is
    published with the EEG).
    """
    from rt_eeg2fmri.data.triggers import is_channel_spec

    return "R128" if not marker or is_channel_spec(marker) else marker


def _truth_preprocessing(args):
    """``(Preprocessing | None, mask | None)`` of the measured volumes."""
    from rt_eeg2fmri.data import Preprocessing

    manual = {"target": args.target, "fwhm": args.fwhm, "high_pass": args.high_pass}
    manual = {k: v for k, v in manual.items() if v is not None}
    if args.model:
        if manual:
            flags = ", ".join(f"--{k.replace('_', '-')}" for k in manual)
            raise ValueError(f"--model sets the targets' preprocessing; drop {flags}.")
        from rt_eeg2fmri.checkpoint import load_checkpoint

        ckpt = load_checkpoint(args.model)
        return ckpt.preprocessing, ckpt.mask
    return (Preprocessing(**manual) if manual else None), None
