"""``rt-eeg2fmri calibrate``: adapt a checkpoint to one person from a short paired recording."""

from __future__ import annotations

from ._reader import add_reader_arguments, reader_options

HELP = "Adapt a checkpoint to one person from a few minutes of their EEG-fMRI recording."


def add_arguments(parser) -> None:
    """Add the calibration options."""
    parser.add_argument("--model", required=True, help="base checkpoint (.pt)")
    parser.add_argument(
        "--data", required=True, action="append", help="dataset folder with the person's runs"
    )
    parser.add_argument(
        "--subject",
        required=True,
        help="the person (subject label); or several, comma-separated: a lab's readout from its "
        "own people, for the people it records next",
    )
    parser.add_argument(
        "--runs",
        default=None,
        help="comma-separated runs to calibrate on, in order (default: all the person's runs)",
    )
    parser.add_argument(
        "--minutes",
        type=float,
        default=None,
        help="minutes of recording used, from the start of the first run (default: all)",
    )
    parser.add_argument(
        "--gap",
        type=float,
        default=20.0,
        help="seconds between fitted and held-out volumes (default 20)",
    )
    parser.add_argument(
        "--delays",
        action="store_true",
        help="also offer a per-voxel haemodynamic delay (models with a learned HRF)",
    )
    parser.add_argument(
        "--events",
        action="store_true",
        help="also offer the task's events beside the model, weighed per voxel: the "
        "checkpoint then predicts from the EEG and a stimulus marker stream (stream --events)",
    )
    parser.add_argument("--out", required=True, help="the calibrated checkpoint (.pt)")
    parser.add_argument("--no-progress", action="store_true")
    add_reader_arguments(parser)


def run(args) -> int:
    """Calibrate and print what was chosen on the held-out minutes."""
    from trainer.calibrate import calibrate

    data = args.data[0] if len(args.data) == 1 else args.data
    s = calibrate(
        args.model,
        data,
        subject=args.subject,
        out=args.out,
        runs=args.runs.split(",") if args.runs else None,
        minutes=args.minutes,
        gap=args.gap,
        delays=args.delays,
        events=args.events,
        reader=reader_options(args),
        progress=not args.no_progress,
    )
    best, base = s["held_out"]["chosen"], s["held_out"]["base"]
    print(
        f"calibrated on {s['minutes']:.2f} min of sub-{s['subject']} ({', '.join(s['runs'])}): "
        f"{s['n_fit']} pairs fitted, {s['n_held_out']} held out after a {s['gap_s']:g} s gap\n"
        f"chosen on the held-out minutes: {s['chosen']['description']}\n"
        f"held-out MSE {best['mse']:.4g} (base {base['mse']:.4g}), r mean {best['r_mean']:.3f} "
        f"(base {base['r_mean']:.3f})"
    )
    if "task" in s:
        t = s["task"]
        without, *rows = t["held_out"]
        if t["chosen"]:
            best = next(r for r in rows if r["strength"] == t["strength"])
            verdict = f"kept (strength {t['strength']:g})"
        else:
            best = min(rows, key=lambda r: r["mse"])
            verdict = "left out: they do not beat the model alone beyond noise"
        print(
            f"task events ({', '.join(t['trial_types'])}) beside the model: held-out r mean "
            f"{best['r_mean']:.3f} (strength {best['strength']:g}) against "
            f"{without['r_mean']:.3f} without; {verdict}"
        )
    print(f"checkpoint: {args.out}")
    return 0
