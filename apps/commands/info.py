"""``rt-eeg2fmri info``: summarise a simultaneous EEG-fMRI dataset and report its problems."""

from __future__ import annotations

from ._reader import add_reader_arguments, reader_options

HELP = "Summarize a dataset (subjects, runs, channels, TR, grid, pairs, problems) or one EEG file."


def add_arguments(parser) -> None:
    """Add the info options."""
    parser.add_argument(
        "path",
        help="dataset folder (BIDS, ds000116 legacy or simulated), or one EEG file (any format "
        "MNE reads, or an .xdf recording): its channels, markers and trigger channels, and the "
        "--marker to use",
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument(
        "--winsize", type=float, default=30.0, help="EEG window for training pairs (s, default 30)"
    )
    parser.add_argument(
        "--full", action="store_true", help="load every run completely (slower; checks samples)"
    )
    parser.add_argument("--subject", default=None, help="only this subject")
    parser.add_argument("--stream", default=None, help="an .xdf file's EEG stream (name or type)")
    parser.add_argument("--task", default=None, help="only this task")
    add_reader_arguments(parser)


def run(args) -> int:
    """Print the summary; 0 even when problems were found, 1 when nothing could be read."""
    import json
    from pathlib import Path

    from rt_eeg2fmri.data.summary import format_summary, summarize

    path = Path(args.path)
    if not path.exists():
        raise FileNotFoundError(f"dataset folder not found: '{path}'.")
    options = reader_options(args)
    if not path.is_dir():
        return _recording(path, args, options)
    if args.stream:
        raise ValueError(f"'--stream' names an .xdf file's EEG stream; '{path}' is a folder.")
    options.update({k: getattr(args, k) for k in ("subject", "task") if getattr(args, k)})
    layout = options.pop("layout", "auto")
    summary = summarize(path, layout=layout, winsize=args.winsize, full=args.full, **options)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(format_summary(summary))
    return 0


def _recording(path, args, options) -> int:
    """``info FILE``: one EEG file's channels, markers and trigger channels."""
    import json

    from rt_eeg2fmri.data.recording import format_recording, summarize_recording

    marker = options.pop("marker", None) or "R128"
    if options:
        flags = ", ".join(f"--{k.replace('_', '-')}" for k in sorted(options))
        raise ValueError(f"'{path}' is a file; {flags} apply to dataset folders only.")
    if path.suffix.lower() in (".xdf", ".xdfz"):
        from rt_eeg2fmri.replay.xdf import summarize_xdf

        summary = summarize_xdf(path, marker=marker, stream=args.stream)
    else:
        summary = summarize_recording(path, marker=marker)
    print(json.dumps(summary, indent=2) if args.json else format_recording(summary))
    return 0
