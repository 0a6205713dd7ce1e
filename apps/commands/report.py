"""``rt-eeg2fmri report``: one report from the folds of several training runs."""

from __future__ import annotations

HELP = "Merge the folds of several training runs (one configuration) into one report."


def add_arguments(parser) -> None:
    """Add the report options."""
    parser.add_argument("runs", nargs="+", help="run folders written by `rt-eeg2fmri train`")
    parser.add_argument("--out", required=True, help="folder for metrics.json and report.md")


def run(args) -> int:
    """Merge and print the Markdown table."""
    from pathlib import Path

    from trainer.report import merge_runs

    doc = merge_runs(args.runs, args.out)
    print((Path(args.out) / "report.md").read_text(), end="")
    print(f"\n{len(doc['folds'])} folds from {len(args.runs)} runs; report: {args.out}/report.md")
    return 0
