"""``rt-eeg2fmri correct``: gradient and pulse artifact correction of in-scanner EEG, offline."""

from __future__ import annotations

HELP = "Correct the gradient and pulse (BCG) artifacts of EEG recorded in the scanner (MNE)."


def add_arguments(parser) -> None:
    """Add the correct options."""
    parser.add_argument("path", help="the in-scanner EEG file (any format MNE reads)")
    parser.add_argument("--out", required=True, help="the corrected recording (.vhdr)")
    parser.add_argument("--gradient", action="store_true", help="correct the gradient artifact")
    parser.add_argument("--bcg", action="store_true", help="correct the pulse artifact")
    parser.add_argument(
        "--marker",
        default="R128",
        help="scanner volume marker (default R128), or the trigger channel that carries the "
        "volume triggers: eeg:CHANNEL[:LEVEL] (LEVEL with a unit, e.g. 2.5V or 100uV, for an "
        "analog lead) or eeg:CHANNEL:mask=BITS, e.g. 'eeg:STI 014'",
    )
    parser.add_argument("--ecg", default=None, help="ECG channel (default: typed or named ECG)")
    parser.add_argument(
        "--mne-template",
        action="store_true",
        help="the gradient template as MNE's GradientRemover makes it: the plain mean of the "
        "detrended volumes around (default: gated per harmonic, the volumes' trends kept)",
    )
    parser.add_argument(
        "--live",
        action="store_true",
        help="correct causally, as 'stream --correct' does (past volumes and heartbeats only)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")


def run(args) -> int:
    """Read, correct, write BrainVision; neither flag means both corrections."""
    from pathlib import Path

    from rt_eeg2fmri.data.correct import correct_raw
    from rt_eeg2fmri.data.eeg_io import open_raw

    out = Path(args.out)
    if out.suffix.lower() != ".vhdr":
        raise ValueError(f"'--out' {str(out)!r}: expected a BrainVision .vhdr file name.")
    written = [out.with_suffix(s) for s in (".vhdr", ".vmrk", ".eeg")]
    if not args.overwrite and any(p.exists() for p in written):
        raise FileExistsError(
            f"'--out' {str(out)!r} exists; nothing was written (--overwrite replaces it)."
        )
    both = not (args.gradient or args.bcg)
    raw = open_raw(args.path, preload=True)
    fixed, report = correct_raw(
        raw,
        gradient=args.gradient or both,
        bcg=args.bcg or both,
        marker=args.marker,
        ecg=args.ecg,
        live=args.live,
        gated=not args.mne_template,
    )
    _export(fixed, out)
    how = (f"live, {report.flagged} samples flagged" if args.live else
           f"{report.edge_volumes} at the ends with a shifted template, "
           f"{report.aligned_volumes} aligned to a fraction of a sample")  # fmt: skip
    print(
        f"corrected '{args.path}' → '{out}': gradient on {report.volumes} volumes ({how}), "
        f"pulse artifact on {report.beats} beats" + (f" of '{report.ecg}'" if report.ecg else "")
        + (f"; the {report.marked} volume onsets of '{args.marker}' marked 'R128'"
           if report.marked else "")
    )  # fmt: skip
    return 0


def _export(raw, out) -> None:
    """BrainVision via MNE's exporter (pybv), the three files each renamed into place."""
    import shutil
    import tempfile
    from pathlib import Path

    import mne

    from rt_eeg2fmri._io import atomic_path

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".correct-") as tmp:
        staged = Path(tmp) / out.name
        mne.export.export_raw(staged, raw, fmt="brainvision", overwrite=True, verbose="error")
        for suffix in (".eeg", ".vmrk", ".vhdr"):  # the header last: readers start there
            with atomic_path(out.with_suffix(suffix)) as dest:
                shutil.move(staged.with_suffix(suffix), dest)
