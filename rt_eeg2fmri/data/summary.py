"""Dataset summary for ``rt-eeg2fmri info``: what a dataset holds and what is wrong with it.

Headers only by default (MNE with ``preload=False``, NIfTI headers, MATLAB variable
tables), so a large dataset summarises in seconds. Problems are collected, not raised:
a run that fails to read is listed with its error, and grid, channel, TR and sampling
rate disagreements between runs are reported.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .dataset import RunRef, detect_layout, find_runs, grid_mismatch
from .windows import window_pairs

_READ_ERRORS = (ValueError, TypeError, FileNotFoundError, OSError, RuntimeError, KeyError)


def _run_entry(ref: RunRef, *, winsize: float, full: bool) -> tuple[dict, object]:
    entry = {
        "name": ref.name,
        "subject": ref.subject,
        "session": ref.session,
        "task": ref.task,
        "run": ref.run,
        "files": {k: str(v) for k, v in ref.files.items()},
        "error": None,
    }
    bad = None
    try:
        info = ref.header()
        if full:  # the checks that need the samples (NaN/Inf, events, ...), and bad spans
            bad = ref.load().bad_spans
    except _READ_ERRORS as err:
        entry["error"] = str(err)
        return entry, None
    grid = dict(t_r=info.t_r, sfreq=info.sfreq, n_times=info.n_times, winsize=winsize)
    pairs = window_pairs(info.volume_onsets, **grid, bad_spans=bad)
    if bad is not None and len(bad):  # as training: windows over BAD_* spans are left out
        entry["n_bad_windows"] = len(window_pairs(info.volume_onsets, **grid)) - len(pairs)
    entry.update(
        n_chans=len(info.ch_names),
        sfreq=info.sfreq,
        n_times=info.n_times,
        duration_s=round(info.n_times / info.sfreq, 3),
        t_r=info.t_r,
        n_volumes=info.n_volumes,
        n_markers=info.n_markers,
        grid_shape=list(info.grid_shape),
        voxel_size=[round(v, 4) for v in info.voxel_size],
        n_pairs=len(pairs),
    )
    return entry, info


def summarize(
    root: str | Path,
    *,
    layout: str = "auto",
    winsize: float = 30.0,
    full: bool = False,
    **options,
) -> dict:
    """Summarise the dataset at ``root``.

    Parameters
    ----------
    root : path-like
        Dataset folder.
    layout : str
        ``"auto"``, ``"bids"`` or ``"ds000116"``.
    winsize : float
        EEG window (s) used to count training pairs.
    full : bool
        Also load every run completely (catches NaN samples and bad events; slower). The
        pairs then leave out windows over ``BAD_*`` spans as training does (unless the
        reader option ``keep_bad``), and a run's ``n_bad_windows`` counts them.
    **options
        Reader options and run selection (see ``find_runs``).

    Returns
    -------
    summary : dict
        JSON-able: ``root``, ``layout``, ``subjects``, ``sessions``, ``tasks``,
        ``n_runs``, ``n_readable``, ``channels`` (``n_chans``, ``ch_names``,
        ``consistent``), ``sfreq`` and ``t_r`` (distinct values), ``n_volumes``,
        ``duration_s``, ``grid`` (``shape``, ``voxel_size``, ``affine``,
        ``spm_mni_3mm``) or ``None``, ``winsize``, ``n_pairs``, ``runs`` (one dict per
        run, ``error`` set when it failed) and ``problems`` (list of str).
    """
    from ..grid import GRID_AFFINE, GRID_SHAPE, same_grid

    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"dataset folder not found: '{root}'.")
    layout = detect_layout(root) if layout == "auto" else layout
    runs = find_runs(root, layout=layout, **options)
    if not runs:
        raise ValueError(f"'{root}': no runs found in this {layout} dataset.")
    entries, problems = [], []
    first = None  # (entry, info) of the first readable run: the reference
    for ref in runs:
        entry, info = _run_entry(ref, winsize=winsize, full=full)
        entries.append(entry)
        if info is None:
            problems.append(f"{ref.name}: {entry['error']}")
            continue
        if getattr(info, "marker_hint", ""):  # TR-timed, but its triggers may be on a channel
            problems.append(f"{ref.name}: timed by the TR alone; {info.marker_hint}")
        if first is None:
            first = (entry, info)
            continue
        _compare(first, (entry, info), problems)
    if layout == "bids":
        from .bids import unmatched_bold

        reader_opts = {
            k: v for k, v in options.items() if k not in ("subject", "task", "run", "session")
        }
        problems += [f"BOLD without EEG: '{p}'" for p in unmatched_bold(root, **reader_opts)]
    ok = [e for e in entries if e["error"] is None]
    for key, what, unit in (("sfreq", "sampling rates", "Hz"), ("t_r", "TRs", "s")):
        values = sorted({e[key] for e in ok})
        if len(values) > 1:
            problems.append(
                f"{what} differ between runs: {', '.join(f'{v:g}' for v in values)} {unit}."
            )
    grid = None
    if first is not None:
        info = first[1]
        grid = {
            "shape": list(info.grid_shape),
            "voxel_size": [round(v, 4) for v in info.voxel_size],
            "affine": np.round(np.asarray(info.affine), 4).tolist(),
            "spm_mni_3mm": bool(same_grid(info.grid_shape, info.affine, GRID_SHAPE, GRID_AFFINE)),
        }
    ch_names = list(first[1].ch_names) if first else None
    return {
        "root": str(root),
        "layout": layout,
        "subjects": sorted({r.subject for r in runs}),
        "sessions": sorted({r.session for r in runs if r.session}),
        "tasks": sorted({r.task for r in runs}),
        "n_runs": len(runs),
        "n_readable": len(ok),
        "channels": {
            "n_chans": len(ch_names) if ch_names else None,
            "ch_names": ch_names,
            "consistent": not any(p.startswith("channels differ") for p in problems),
        },
        "sfreq": sorted({e["sfreq"] for e in ok}),
        "t_r": sorted({e["t_r"] for e in ok}),
        "n_volumes": int(sum(e["n_volumes"] for e in ok)),
        "duration_s": round(float(sum(e["duration_s"] for e in ok)), 3),
        "grid": grid,
        "winsize": float(winsize),
        "n_pairs": int(sum(e["n_pairs"] for e in ok)),
        "runs": entries,
        "problems": problems,
    }


def _compare(first, other, problems: list) -> None:
    from ..grid import same_grid

    (e0, i0), (e1, i1) = first, other
    if not same_grid(i0.grid_shape, i0.affine, i1.grid_shape, i1.affine):
        problems.append(
            grid_mismatch(
                (i0.grid_shape, i0.affine, e0["files"].get("bold"), e0["name"]),
                (i1.grid_shape, i1.affine, e1["files"].get("bold"), e1["name"]),
            )
        )
    if list(i0.ch_names) != list(i1.ch_names):
        missing = [c for c in i0.ch_names if c not in i1.ch_names]
        extra = [c for c in i1.ch_names if c not in i0.ch_names]
        detail = (
            f"missing {missing}, extra {extra}" if missing or extra else "same names, other order"
        )
        problems.append(f"channels differ: {e1['name']} vs {e0['name']}: {detail}.")


def _fmt_values(values, unit: str) -> str:
    return ", ".join(f"{v:g}" for v in values) + f" {unit}" if values else "-"


def format_summary(summary: dict) -> str:
    """Human-readable text of a :func:`summarize` result."""
    s = summary
    ch = s["channels"]
    if ch["ch_names"]:
        names = ch["ch_names"]
        shown = ", ".join(names) if len(names) <= 6 else f"{names[0]} … {names[-1]}"
        channels = f"{ch['n_chans']} ({shown})" + (
            "" if ch["consistent"] else ", differ between runs"
        )
    else:
        channels = "-"
    grid = s["grid"]
    if grid:
        shape = " × ".join(str(n) for n in grid["shape"])
        vox = " × ".join(f"{v:g}" for v in grid["voxel_size"])
        grid_txt = f"{shape}, {vox} mm" + (
            " (SPM 3 mm MNI grid)" if grid["spm_mni_3mm"] else " (not the SPM 3 mm MNI grid)"
        )
    else:
        grid_txt = "-"
    subjects = ", ".join(s["subjects"])
    lines = [
        f"Dataset {s['root']} ({s['layout']})",
        f"  subjects  {len(s['subjects'])} ({subjects})",
    ]
    if s["sessions"]:
        lines.append(f"  sessions  {', '.join(s['sessions'])}")
    lines += [
        f"  tasks     {', '.join(s['tasks'])}",
        f"  runs      {s['n_runs']} ({s['n_readable']} readable)",
        f"  channels  {channels}",
        f"  sfreq     {_fmt_values(s['sfreq'], 'Hz')}",
        f"  TR        {_fmt_values(s['t_r'], 's')}",
        f"  volumes   {s['n_volumes']} ({s['duration_s'] / 60:.1f} min of EEG)",
        f"  grid      {grid_txt}",
        f"  pairs     {s['n_pairs']} ({s['winsize']:g} s windows)",
        "",
        "Runs:",
    ]
    width = max(len(r["name"]) for r in s["runs"])
    for r in s["runs"]:
        if r["error"]:
            lines.append(f"  {r['name']:<{width}}  ERROR (see problems)")
            continue
        timing = f"{r['n_markers']} markers" if r["n_markers"] else "TR-timed"
        lines.append(
            f"  {r['name']:<{width}}  {r['n_chans']:>3} ch  {r['sfreq']:>6g} Hz  "
            f"{r['duration_s']:>8.1f} s  {r['n_volumes']:>4} vol  TR {r['t_r']:g} s  "
            f"{timing}  {r['n_pairs']} pairs"
            + (f" ({r['n_bad_windows']} over bad spans left out)" if r.get("n_bad_windows") else "")
        )
    problems = s["problems"]
    lines += ["", f"Problems ({len(problems)}):" if problems else "Problems: none"]
    lines += [f"  - {p}" for p in problems]
    return "\n".join(lines)
