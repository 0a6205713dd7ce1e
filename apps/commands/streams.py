"""``rt-eeg2fmri streams``: the LSL streams on the network, and the ``--trigger`` to use."""

from __future__ import annotations

HELP = "List the LSL streams on the network; with --listen, find where a live EEG stream's volume triggers are."


def add_arguments(parser) -> None:
    """Add the streams options."""
    parser.add_argument(
        "--listen",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="read the EEG stream and every marker stream this long (a few TRs) and report its "
        "channels, ECG lead, markers and trigger channels, and the --trigger whose onsets come "
        "evenly spaced (default 0: only list the streams)",
    )
    parser.add_argument(
        "--source",
        default=None,
        help="the EEG stream to listen to, as stream --source (name:X, type:EEG, source_id:Y; "
        "default: the first stream of type EEG)",
    )
    parser.add_argument(
        "--wait", type=float, default=2.0, help="seconds to wait for streams (default 2)"
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def run(args) -> int:
    """Print the streams (and what was heard); 0, or 1 when there is nothing to listen to."""
    import json

    from rt_eeg2fmri.realtime.survey import format_survey, survey

    result = survey(source=args.source, listen=args.listen, wait=args.wait)
    print(json.dumps(result, indent=2) if args.json else format_survey(result))
    return 0
