"""``rt-eeg2fmri demo``: the one-command demo — simulated EEG in, live fMRI out, beside the truth.

No data and no arguments needed: a simulated session (made once, cached), replayed as
live LSL streams (EEG, scanner markers, measured volumes), goes through the real-time
engine with the built-in default model, and the viewer shows prediction beside truth.
Without a display (or with ``--headless``) it runs ``--volumes`` volumes and writes the
NIfTI series, the timing log, a screenshot and a summary (online voxelwise r against the
truth, latency) into ``--out``.
"""

from __future__ import annotations

HELP = "Demo: simulated EEG → live predicted fMRI beside the truth (no data needed)."


def add_arguments(parser) -> None:
    """Add the demo's options."""
    parser.add_argument(
        "--headless", action="store_true", help="no window: run --volumes volumes, write --out"
    )
    parser.add_argument(
        "--volumes", type=int, default=20, help="headless: predicted volumes to run (default 20)"
    )
    parser.add_argument(
        "--speed",
        type=float,
        default=None,
        help="replay speed (default: 1 with the viewer, 10 headless)",
    )
    parser.add_argument(
        "--out", default="demo-out", help="headless outputs folder (default: ./demo-out)"
    )
    parser.add_argument(
        "--model", default=None, help="checkpoint (.pt); default: the built-in conv model"
    )
    parser.add_argument(
        "--preset",
        default="tiny",
        choices=("tiny", "small"),
        help="simulator preset (default tiny)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=2025,
        help="simulation seed (default 2025, a subject the default model was not trained on)",
    )
    parser.add_argument(
        "--name",
        default=None,
        help="prefix of the demo's LSL stream names (default: rt-eeg2fmri-demo-<pid>, so two "
        "demos on one host never share a stream name)",
    )
    parser.add_argument("--device", default="auto", help="auto (default), cpu or cuda")


def run(args) -> int:
    """Run the demo (viewer, or headless when asked or when there is no display)."""
    import os
    import sys

    from apps.viewer.demo import DemoConfig, has_display, qt_platform_problem, run_demo

    headless = args.headless
    if not headless and not has_display():
        print(
            "rt-eeg2fmri demo: no display (DISPLAY/WAYLAND_DISPLAY unset or QT_QPA_PLATFORM="
            "offscreen): running headless, outputs in "
            f"'{args.out}'.",
            file=sys.stderr,
        )
        headless = True
    elif not headless and (problem := qt_platform_problem()):
        print(
            f"rt-eeg2fmri demo: {problem}\nRunning headless instead, outputs in '{args.out}'.",
            file=sys.stderr,
        )
        headless = True
    config = DemoConfig(
        model=args.model,
        preset=args.preset,
        seed=args.seed,
        speed=args.speed,
        volumes=args.volumes,
        out=args.out,
        name=args.name or f"rt-eeg2fmri-demo-{os.getpid()}",
        device=args.device,
        headless=headless,
    )
    return run_demo(config)
