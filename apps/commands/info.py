"""``rt-eeg2fmri info``: summarise a simultaneous EEG-fMRI dataset and report its problems."""

from __future__ import annotations

HELP = "Summarize a dataset: subjects, runs, channels, TR, grid, training pairs, problems."

# CLI flag → reader option; only flags that were given are passed (each layout rejects
# options it does not know, naming them).
_READER_FLAGS = (
    "marker",
    "dummy_scans",
    "skip_markers",
    "first_volume",
    "derivatives",
    "space",
    "bold_pattern",
    "eeg",
    "t_r",
    "subject",
    "task",
)


def add_arguments(parser) -> None:
    """Add the info options."""
    parser.add_argument("path", help="dataset folder (BIDS, ds000116 legacy or simulated)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument(
        "--layout", default="auto", choices=("auto", "bids", "ds000116"), help="default: auto"
    )
    parser.add_argument(
        "--winsize", type=float, default=30.0, help="EEG window for training pairs (s, default 30)"
    )
    parser.add_argument(
        "--full", action="store_true", help="load every run completely (slower; checks samples)"
    )
    parser.add_argument("--subject", default=None, help="only this subject")
    parser.add_argument("--task", default=None, help="only this task")
    parser.add_argument("--marker", default=None, help="scanner volume marker (default R128)")
    parser.add_argument("--dummy-scans", type=int, default=None, help="volumes to drop per run")
    parser.add_argument(
        "--skip-markers", type=int, default=None, help="leading scanner markers without a volume"
    )
    parser.add_argument(
        "--first-volume", type=float, default=None, help="first volume onset without markers (s)"
    )
    parser.add_argument(
        "--derivatives", default=None, help="BIDS: BOLD from derivatives/<name> (or a path)"
    )
    parser.add_argument("--space", default=None, help="BIDS derivatives space")
    parser.add_argument("--bold-pattern", default=None, help="ds000116: BOLD glob, e.g. 'swa*.nii'")
    parser.add_argument("--eeg", default=None, help="ds000116: rereferenced, noGA or auto")
    parser.add_argument("--t-r", type=float, default=None, help="ds000116: TR override (s)")


def run(args) -> int:
    """Print the summary; 0 even when problems were found, 1 when nothing could be read."""
    import json
    from pathlib import Path

    from rt_eeg2fmri.data.summary import format_summary, summarize

    path = Path(args.path)
    if not path.exists():
        raise FileNotFoundError(f"dataset folder not found: '{path}'.")
    if not path.is_dir():
        raise ValueError(f"'{path}' is a file; 'info' expects a dataset folder.")
    options = {k: getattr(args, k) for k in _READER_FLAGS if getattr(args, k) is not None}
    summary = summarize(path, layout=args.layout, winsize=args.winsize, full=args.full, **options)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(format_summary(summary))
    return 0
