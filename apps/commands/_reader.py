"""The dataset-reader flags every command that reads a dataset folder shares.

``info``, ``train``, ``evaluate`` and ``replay`` take the same flags and pass only those
that were given to the reader (each layout rejects options it does not know, naming them).
"""

from __future__ import annotations

#: CLI flag (dest) → reader option
READER_FLAGS = (
    "layout",
    "marker",
    "dummy_scans",
    "skip_markers",
    "first_volume",
    "derivatives",
    "space",
    "eeg_derivatives",
    "t_r",
    "bold_pattern",
    "eeg",
    "correct",
    "keep_bad",
)


def add_reader_arguments(parser, *, marker_default: str | None = None) -> None:
    """Add the reader flags to ``parser`` (all default to the reader's defaults)."""
    group = parser.add_argument_group("dataset reading")
    group.add_argument(
        "--layout", default=None, choices=("auto", "bids", "ds000116"), help="default: auto"
    )
    group.add_argument(
        "--marker",
        default=marker_default,
        help=f"scanner volume marker (default {marker_default or 'R128'}), or the trigger "
        "channel that carries the volume triggers: eeg:CHANNEL[:LEVEL] (rising edges through "
        "LEVEL, default 0.5; with a unit, e.g. 2.5V or 100uV, a voltage in any file or "
        "stream) or eeg:CHANNEL:mask=BITS (a status channel's bits), e.g. 'eeg:STI 014'",
    )
    group.add_argument("--dummy-scans", type=int, default=None, help="volumes to drop per run")
    group.add_argument(
        "--skip-markers", type=int, default=None, help="leading scanner markers without a volume"
    )
    group.add_argument(
        "--first-volume", type=float, default=None, help="first volume onset without markers (s)"
    )
    group.add_argument(
        "--derivatives", default=None, help="BIDS: BOLD from derivatives/<name> (or a path)"
    )
    group.add_argument("--space", default=None, help="BIDS derivatives space")
    group.add_argument(
        "--eeg-derivatives",
        default=None,
        metavar="NAME",
        help="BIDS: preprocessed EEG from derivatives/NAME/sub-*/ or derivatives/sub-*/NAME/ "
        "(file names with or without a d_ prefix), aligned to the volumes by its own markers",
    )
    group.add_argument(
        "--t-r",
        type=float,
        default=None,
        help="repetition time (s) when sidecars and headers lack a trustworthy one; overrides them",
    )
    group.add_argument("--bold-pattern", default=None, help="ds000116: BOLD glob, e.g. 'swa*.nii'")
    group.add_argument("--eeg", default=None, help="ds000116: rereferenced, noGA or auto")
    group.add_argument(
        "--correct",
        default=None,
        metavar="gradient,bcg",
        help="BIDS: read in-scanner EEG corrected (gradient and/or pulse artifact, as "
        "'rt-eeg2fmri correct' does; add 'live' for the stream's causal corrections)",
    )
    group.add_argument(
        "--keep-bad",
        action="store_const",
        const=True,
        default=None,
        help="BIDS: keep the windows that overlap spans annotated BAD_* (default: left out, "
        "as MNE does; 'correct --live' annotates what its templates had not cleaned)",
    )


def reader_options(args) -> dict:
    """The reader options of the flags that were given."""
    return {k: getattr(args, k) for k in READER_FLAGS if getattr(args, k, None) is not None}


def add_truth_argument(parser) -> None:
    """``--truth DIR``: an external ground truth for the noise ceiling (train, evaluate)."""
    parser.add_argument(
        "--truth",
        default=None,
        help="ground-truth folder for the noise ceiling: sub-XX/func/*_desc-eegpredictable_bold"
        ".nii.gz per run (default: a simulated dataset's derivatives/simulation)",
    )


def add_roi_arguments(parser, *, default: str = "") -> None:
    """``--roi ATLAS [--roi-labels LUT]``: also report the mean r in each region."""
    parser.add_argument(
        "--roi",
        default=None,
        help="atlas NIfTI (label image or one mask): also report the mean r in each region"
        + default,
    )
    parser.add_argument("--roi-labels", default=None, help="region names (TSV: index, name)")
