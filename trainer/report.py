"""Run reports: metrics JSON, a Markdown table and PNG figures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from rt_eeg2fmri._io import atomic_path, write_text_atomic
from rt_eeg2fmri.grid import GRID_SHAPE, mni_t1

# Columns of the Markdown table: (metric key, header, format)
COLUMNS = (
    ("mse", "MSE", "{:.4~}"),  # 4 decimals; 4 significant digits when that would show 0
    ("r_mean", "r mean", "{:.3f}"),
    ("r_median", "r median", "{:.3f}"),
    ("r_p95", "r p95", "{:.3f}"),
    ("r2_vs_subject_mean", "R² vs subj. mean", "{:.3f}"),
    ("spatial_r", "spatial r", "{:.3f}"),
    ("ssim", "SSIM", "{:.3f}"),
    ("psnr", "PSNR dB", "{:.1f}"),
    ("ceiling_fraction_top", "of ceiling (top 10 %)", "{:.0%}"),
)


def aggregate(folds: list[dict]) -> dict:
    """Mean and standard deviation of every metric over folds: ``{name: {metric: [mean, sd]}}``."""
    names = list(dict.fromkeys(n for f in folds for n in f["metrics"]))
    out = {}
    for name in names:
        keys = list(dict.fromkeys(k for f in folds for k in f["metrics"].get(name, {})))
        out[name] = {}
        for key in keys:
            vals = np.array(
                [f["metrics"][name][key] for f in folds if key in f["metrics"].get(name, {})], float
            )
            out[name][key] = [float(np.mean(vals)), float(np.std(vals))]
    return out


def markdown_table(summary: dict, *, ceiling: float | None = None) -> str:
    """A Markdown table, one row per model/baseline, mean ± sd over folds."""
    present = [c for c in COLUMNS if any(c[0] in m for m in summary.values())]
    lines = [
        "| model | " + " | ".join(c[1] for c in present) + " |",
        "|---|" + "---:|" * len(present),
    ]
    for name, vals in summary.items():
        cells = []
        for key, _, fmt in present:
            if key not in vals:
                cells.append("–")
                continue
            mean, sd = vals[key]
            cells.append(
                _fmt(fmt, mean)
                + (f" ± {_fmt(fmt, sd, like=mean)}" if sd > 0 and "%" not in fmt else "")
            )
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if ceiling is not None:
        lines.append(f"\nNoise ceiling (mean voxelwise r reachable from EEG): {ceiling:.3f}")
    return "\n".join(lines)


def mean_regions(folds: list[dict]) -> dict:
    """``{name: {region: mean over folds of its mean r}}`` of folds scored per region."""
    scored = [f["regions"] for f in folds if f.get("regions")]
    if not scored:
        return {}
    names = list(dict.fromkeys(n for f in scored for n in f))
    out = {}
    for name in names:
        per = [f[name] for f in scored if name in f]
        out[name] = {region: float(np.mean([p[region] for p in per])) for region in per[0]}
    return out


def region_table(regions: dict) -> str:
    """A Markdown table of the mean voxelwise r per region (rows) and model (columns)."""
    names = list(regions)
    region_names = list(next(iter(regions.values())))
    lines = [
        "| region | " + " | ".join(names) + " |",
        "|---|" + "---:|" * len(names),
    ]
    for region in region_names:
        lines.append(
            f"| {region} | " + " | ".join(f"{regions[n][region]:.3f}" for n in names) + " |"
        )
    return "\n".join(lines)


def _fmt(fmt: str, value: float, *, like: float | None = None) -> str:
    """``value`` formatted with ``fmt``.

    ``{:.4~}``: 4 decimals, or 4 significant digits for small values (``median_ratio``
    targets: MSE ~1e-5), decided on ``like`` (the mean an sd goes with).
    """
    if fmt == "{:.4~}":
        ref = value if like is None else like
        return f"{value:.4f}" if ref == 0 or abs(ref) >= 0.01 else f"{value:.3e}"
    return fmt.format(value)


def write_report(
    out_dir: str | Path, *, folds: list[dict], histories: dict, extra: dict | None = None
) -> dict:
    """Write ``metrics.json``, ``report.md`` and figures into ``out_dir``; return the summary."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = aggregate(folds)
    ceilings = [f["ceiling_r_mean"] for f in folds if f.get("ceiling_r_mean") is not None]
    ceiling = float(np.mean(ceilings)) if ceilings else None
    doc = {
        "summary": summary,
        "noise_ceiling_r_mean": ceiling,
        "folds": [
            {k: f[k] for k in ("split", "metrics", "selected", "regions") if k in f} for f in folds
        ],
        "histories": histories,
        **(extra or {}),
    }
    table = markdown_table(summary, ceiling=ceiling)
    regions = mean_regions(folds)
    if regions:
        doc["regions"] = regions
        table += "\n\n## Mean voxelwise r per region (mean over folds)\n\n" + region_table(regions)
    write_text_atomic(out_dir / "metrics.json", json.dumps(doc, indent=2, default=_jsonable))
    data = (extra or {}).get("data", {})
    scored = (
        f"Voxels scored: {data['n_voxels']} of the grid's {data['grid_voxels']} (the mask).  \n"
        if "n_voxels" in data and "grid_voxels" in data
        else ""
    )
    chosen = [f"{f['selected']['model']} ({f['split']['name']})" for f in folds if "selected" in f]
    selected = (
        f"Chosen on each fold's validation subjects (highest mean r), the row "
        f"'selected on validation': {', '.join(chosen)}.  \n"
        if chosen
        else ""
    )
    write_text_atomic(
        out_dir / "report.md",
        "# Evaluation report\n\n"
        f"Split folds: {', '.join(f['split']['name'] for f in folds)}  \n"
        + scored
        + selected
        + "Mean ± sd over folds; baselines and models scored on the same test pairs.\n\n"
        + table
        + "\n",
    )
    return doc


def merge_runs(run_dirs, out_dir: str | Path) -> dict:
    """Join the folds of several training runs of one configuration into one report.

    For a rotation split over machines or sessions: each run trains some folds (e.g.
    ``test_subjects = ["01", "03"]`` here, ``["02", "04"]`` there) and this writes the
    ``metrics.json``, ``report.md`` and loss curves of all of them, as one run would have.

    Raises
    ------
    FileNotFoundError
        A folder without ``metrics.json``.
    ValueError
        Runs on other data (fingerprint), with other settings (any config key but
        ``test_subjects``) or other models, or a fold present twice.
    """
    run_dirs = [Path(d) for d in run_dirs]
    if len(run_dirs) < 2:
        raise ValueError(f"merging needs at least 2 run folders, got {len(run_dirs)}.")
    docs = []
    for run in run_dirs:
        path = run / "metrics.json"
        if not path.is_file():
            raise FileNotFoundError(
                f"no metrics.json in '{run}' (expected a folder written by `rt-eeg2fmri train`)."
            )
        try:
            doc = json.loads(path.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ValueError(f"'{path}' is not valid JSON: {err}.") from None
        missing = [k for k in ("folds", "config", "data", "models") if k not in doc]
        if missing:
            raise ValueError(f"'{path}' lacks {missing}: not the metrics of a training run.")
        docs.append((path, doc))
    (path0, first), seen = docs[0], {}
    config0 = {k: v for k, v in first["config"].items() if k != "test_subjects"}
    for path, doc in docs:
        if doc["data"].get("fingerprint") != first["data"].get("fingerprint"):
            raise ValueError(
                f"'{path}' was trained on other data than '{path0}' (data fingerprint "
                f"{doc['data'].get('fingerprint')!r}, expected {first['data'].get('fingerprint')!r})."
            )
        config = {k: v for k, v in doc["config"].items() if k != "test_subjects"}
        diff = sorted(k for k in set(config) | set(config0) if config.get(k) != config0.get(k))
        if diff:
            detail = ", ".join(f"{k}={config.get(k)!r} vs {config0.get(k)!r}" for k in diff)
            raise ValueError(f"'{path}' was trained with other settings than '{path0}': {detail}.")
        if doc["models"] != first["models"]:
            raise ValueError(
                f"'{path}' trained models {doc['models']}, '{path0}' trained {first['models']}."
            )
        for fold in doc["folds"]:
            name = fold["split"]["name"]
            if name in seen:
                raise ValueError(f"fold {name!r} is in both '{seen[name]}' and '{path}'.")
            seen[name] = path
    folds = sorted((f for _, d in docs for f in d["folds"]), key=lambda f: f["split"]["name"])
    for fold in folds:  # every model's metrics carry the fold's noise ceiling
        fold["ceiling_r_mean"] = next(
            (m["ceiling_r_mean"] for m in fold["metrics"].values() if "ceiling_r_mean" in m), None
        )
    histories = {k: v for _, d in docs for k, v in d.get("histories", {}).items()}
    tests = [t for f in folds for t in f["split"].get("test_subjects", [])]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plot_losses(out_dir / "loss_curves.png", histories)
    return write_report(
        out_dir,
        folds=folds,
        histories=histories,
        extra={
            "config": {**first["config"], "test_subjects": tests},
            "models": first["models"],
            "data": first["data"],
            "merged_from": [str(p.parent) for p, _ in docs],
            "seconds": sum(float(d.get("seconds", 0.0)) for _, d in docs),
            **{k: first[k] for k in ("device", "world_size", "versions", "host") if k in first},
        },
    )


def _jsonable(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON-serialisable: {type(obj).__name__}")


def _slices(vol: np.ndarray, ijk) -> list[np.ndarray]:
    i, j, k = ijk
    return [vol[i, :, :].T, vol[:, j, :].T, vol[:, :, k].T]


def plot_losses(path, histories: dict) -> None:
    """Training and validation loss per epoch for every model and fold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    for label, hist in histories.items():
        if len(hist) < 2:
            continue
        ep = [h["epoch"] + 1 for h in hist]
        line = ax.plot(ep, [h["train_loss"] for h in hist], "--", lw=1)[0]
        ax.plot(ep, [h["val_loss"] for h in hist], "-", lw=1.5, color=line.get_color(), label=label)
    ax.set(xlabel="epoch", ylabel="MSE (dashed: train, solid: validation)", yscale="log")
    if ax.lines:
        ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=Path(path).suffix.lstrip(".") or "png")
    plt.close(fig)


def plot_maps(path, maps: dict, mask: np.ndarray, *, title: str, vmax: float | None = None) -> None:
    """Orthogonal slices (sagittal, coronal, axial) of per-voxel maps over the MNI T1.

    ``maps`` is name → array of shape (n_voxels,) (in-mask voxels) or a full grid volume.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mask = np.asarray(mask, bool)
    t1 = mni_t1() if mask.shape == GRID_SHAPE else mask.astype(float)
    vols = {}
    for name, m in maps.items():
        v = np.zeros(mask.shape, np.float32)
        v[mask] = m if np.ndim(m) == 1 else np.asarray(m)[mask]
        vols[name] = v
    first = next(iter(vols.values()))
    ijk = np.unravel_index(np.argmax(np.abs(first)), mask.shape)
    vmax = vmax or max(float(np.abs(v).max()) for v in vols.values()) or 1.0
    fig, axes = plt.subplots(len(vols), 3, figsize=(7.5, 2.3 * len(vols)), dpi=100, squeeze=False)
    for row, (name, v) in enumerate(vols.items()):
        for col, (bg, fg) in enumerate(zip(_slices(t1, ijk), _slices(v, ijk), strict=True)):
            ax = axes[row, col]
            ax.imshow(bg, cmap="gray", origin="lower")
            im = ax.imshow(
                np.ma.masked_where(np.abs(fg) < 0.05 * vmax, fg),
                cmap="RdBu_r",
                vmin=-vmax,
                vmax=vmax,
                origin="lower",
            )
            ax.set_xticks([])
            ax.set_yticks([])
            if col == 0:
                ax.set_ylabel(name, fontsize=8)
    fig.colorbar(im, ax=axes, shrink=0.6, label=title)
    fig.suptitle(f"{title} — slices through voxel {tuple(int(x) for x in ijk)}", fontsize=9)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=Path(path).suffix.lstrip(".") or "png")
    plt.close(fig)
