"""``rt-eeg2fmri view``: the live viewer — predicted (and measured) volumes as they stream."""

from __future__ import annotations

HELP = "View: three orthogonal slices of the streamed volumes, live (PyQtGraph)."


def add_arguments(parser) -> None:
    """Add the viewer options."""
    parser.add_argument(
        "--prediction",
        default=None,
        metavar="NAME",
        help="predicted-volume stream (default: the first fMRI stream with content prediction)",
    )
    parser.add_argument(
        "--truth",
        default=None,
        metavar="NAME",
        help="measured-volume stream shown beside it (default: the first with content truth, "
        "when one appears)",
    )
    parser.add_argument("--no-truth", action="store_true", help="do not look for a truth stream")
    parser.add_argument(
        "--eeg",
        default=None,
        metavar="QUERY",
        help="EEG stream for a trace strip: NAME, name:NAME, type:EEG or source_id:ID",
    )
    parser.add_argument(
        "--radiological", action="store_true", help="subject's left on the screen's right"
    )
    parser.add_argument(
        "--history", type=int, default=100, help="volumes in the time course (default: 100)"
    )
    parser.add_argument(
        "--record", default=None, metavar="DIR", help="save a PNG of every update into DIR"
    )
    parser.add_argument(
        "--roi",
        default=None,
        metavar="ATLAS",
        help="atlas NIfTI (label image or one mask): the time course can show a region's mean",
    )
    parser.add_argument("--roi-labels", default=None, help="region names (TSV: index, name)")


def run(args) -> int:
    """Open the window; return when it is closed."""
    if args.history < 2:
        raise ValueError(f"'--history' must be at least 2 volumes, got {args.history}.")
    from apps.viewer.demo import qt_platform_problem

    if args.roi is not None:
        from rt_eeg2fmri._checks import check_file

        check_file(args.roi, "ROI atlas")
    problem = qt_platform_problem()
    if problem:
        raise RuntimeError(problem)
    from apps.viewer.app import run_viewer

    return run_viewer(
        prediction=args.prediction,
        truth=None if args.no_truth else args.truth,
        with_truth=not args.no_truth,
        eeg=args.eeg,
        radiological=args.radiological,
        history=args.history,
        record_dir=args.record,
        atlas=args.roi,
        atlas_labels=args.roi_labels,
    )
