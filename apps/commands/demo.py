"""``rt-eeg2fmri demo``: the one-command demo on the built-in default.

Until the live engine and viewer land, the demo simulates the ``tiny`` preset into the
package cache (once) and summarises it, so ``make demo`` exercises the data path.
"""

from __future__ import annotations

HELP = "Run the built-in demo (simulated session, no arguments needed)."


def add_arguments(parser) -> None:
    """Add the demo's options."""
    parser.add_argument("--out", default=None, help="folder for the simulated data (default: cache)")
    parser.add_argument("--seed", type=int, default=0, help="simulation seed (default: 0)")


def run(args) -> int:
    """Simulate (or reuse) the tiny dataset and print its summary."""
    from pathlib import Path

    from rt_eeg2fmri.data.summary import format_summary, summarize
    from rt_eeg2fmri.grid import cache_dir
    from rt_eeg2fmri.sim import simulate_dataset

    out = Path(args.out) if args.out else cache_dir() / f"demo-tiny-seed{args.seed}"
    if not (out / "dataset_description.json").is_file():
        simulate_dataset(out, preset="tiny", seed=args.seed, layout="bids")
    print(format_summary(summarize(out)))
    return 0
