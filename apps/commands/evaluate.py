"""``rt-eeg2fmri evaluate``: score any checkpoint on any dataset, beside the baselines."""

from __future__ import annotations

from ._reader import add_reader_arguments, add_roi_arguments, add_truth_argument, reader_options

HELP = "Score a checkpoint on a dataset with the same metrics and baselines as training."


def add_arguments(parser) -> None:
    """Add the evaluation options."""
    parser.add_argument("--model", required=True, help="checkpoint (.pt)")
    parser.add_argument(
        "--data",
        required=True,
        action="append",
        help="dataset folder; repeat to score on several (subjects keep their folder's prefix)",
    )
    parser.add_argument(
        "--stats",
        default="subject",
        choices=("subject", "checkpoint"),
        help="EEG normalisation: each subject's own statistics (default) or the checkpoint's",
    )
    parser.add_argument(
        "--subjects", default=None, help="comma-separated subjects to score (default: all)"
    )
    parser.add_argument(
        "--runs",
        default=None,
        help="comma-separated runs to score: run numbers (2) or entities (task-visual_run-1)",
    )
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--json", default=None, help="also write the result as JSON to this file")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument(
        "--no-ssim", action="store_true", help="leave out SSIM (the slowest metric) from the table"
    )
    add_roi_arguments(parser)
    add_truth_argument(parser)
    add_reader_arguments(parser)


def run(args) -> int:
    """Evaluate and print a Markdown table."""
    import json

    from trainer.evaluate import evaluate_checkpoint
    from trainer.report import aggregate, markdown_table, region_table

    data = args.data[0] if len(args.data) == 1 else args.data
    res = evaluate_checkpoint(
        args.model,
        data,
        stats=args.stats,
        subjects=args.subjects.split(",") if args.subjects else None,
        runs=args.runs.split(",") if args.runs else None,
        device=args.device,
        progress=not args.no_progress,
        reader=reader_options(args),
        truth=args.truth,
        roi=args.roi,
        roi_labels=args.roi_labels,
        ssim=not args.no_ssim,
    )
    print(
        f"{res['model']} on {res['n_pairs']} pairs of {', '.join(map(repr, args.data))} (subjects "
        f"{', '.join(res['subjects'])}; {res['n_voxels']} voxels scored; EEG statistics: "
        f"{args.stats})\n"
    )
    print(markdown_table(aggregate([res]), ceiling=res["noise_ceiling_r_mean"]))
    if res.get("regions"):
        print("\n" + region_table(res["regions"]))
    if args.json:
        from rt_eeg2fmri._io import write_text_atomic

        write_text_atomic(args.json, json.dumps(res, indent=2))
    return 0
