"""Make ``docs/simulation.png``: what ``rt-eeg2fmri simulate`` writes.

Simulates one subject (tiny preset, 120 volumes) into a temporary folder, reads it back
from the files (MNE, nibabel), and draws:

- top: 12 s of EEG from the visual run with its stimulus, response and scanner markers;
- bottom: orthogonal slices of the mean EPI through the peak of a plain single-subject
  analysis (7 mm smoothing, drift removal, correlation with the HRF-convolved targets),
  and the BOLD time course at left V1 against the ground truth (noise-free and
  EEG-predictable).

Run: ``.venv/bin/python docs/make_sim_figure.py`` (a few seconds).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import mne
import nibabel as nib
import numpy as np
import pandas as pd

from rt_eeg2fmri.grid import mm_to_voxel, mni_mask
from rt_eeg2fmri.hrf import events_to_regressor, hrf_convolve, spm_hrf
from rt_eeg2fmri.sim import load_truth, simulate_dataset

OUT = Path(__file__).with_name("simulation.png")
CHANNELS = ["Fp1", "Fz", "C3", "Cz", "T7", "Pz", "O1", "Oz", "O2"]
COLORS = {"visual_standard": "tab:blue", "visual_target": "tab:red", "button_press": "tab:green"}


def _eeg_panel(ax, root: Path) -> None:
    stem = root / "sub-01" / "eeg" / "sub-01_task-visual_run-1"
    raw = mne.io.read_raw_brainvision(f"{stem}_eeg.vhdr", preload=True, verbose="error")
    events = pd.read_csv(f"{stem}_events.tsv", sep="\t")
    t0, t1 = 28.0, 40.0
    start, stop = (int(t * raw.info["sfreq"]) for t in (t0, t1))
    data = raw.get_data(picks=CHANNELS, start=start, stop=stop) * 1e6
    times = raw.times[start:stop]
    spacing = 60.0
    for i, name in enumerate(CHANNELS):
        ax.plot(times, data[i] - data[i].mean() - i * spacing, lw=0.6, color="0.15")
        ax.text(t0 - 0.15, -i * spacing, name, ha="right", va="center", fontsize=8)
    for onset, kind in zip(events.onset, events.trial_type, strict=True):
        if t0 <= onset <= t1:
            ax.axvline(onset, color=COLORS[kind], lw=1.0, alpha=0.8)
    desc = np.asarray(raw.annotations.description)
    for onset in np.asarray(raw.annotations.onset)[desc == "Response/R128"]:
        if t0 <= onset <= t1:
            ax.plot([onset], [spacing * 0.9], marker="v", color="0.4", ms=5)
    handles = [plt.Line2D([], [], color=c, lw=1.5) for c in COLORS.values()]
    handles.append(plt.Line2D([], [], color="0.4", marker="v", ls=""))
    ax.legend(
        handles,
        ["standard (S 1)", "target (S 2)", "button press (R 1)", "volume (R128)"],
        loc="upper right",
        ncol=4,
        fontsize=8,
        frameon=False,
        bbox_to_anchor=(1.0, -0.07),
    )
    bottom = -len(CHANNELS) * spacing
    ax.plot([t1 + 0.15] * 2, [bottom, bottom + 50], "k", clip_on=False)
    ax.text(t1 + 0.25, bottom + 25, "50 µV", ha="left", va="center", fontsize=8)
    ax.set_xlim(t0 - 0.8, t1)
    ax.set_yticks([])
    ax.set_xlabel("time on the EEG clock (s)", loc="left")
    ax.set_title(
        "EEG (BrainVision, 9 of 34 channels, reference FCz), visual oddball run",
        fontsize=10,
        loc="left",
    )
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)


def _bold_panels(axes, cax, ax_ts, root: Path) -> None:
    from scipy.ndimage import gaussian_filter

    stem = root / "sub-01" / "func" / "sub-01_task-visual_run-1"
    bold = np.asarray(nib.load(f"{stem}_bold.nii.gz").dataobj, dtype=np.float32)
    events = pd.read_csv(f"{stem}_events.tsv", sep="\t")
    n_vol = bold.shape[-1]
    # A plain single-subject analysis: 7 mm smoothing, drift removal, targets' HRF regressor.
    smooth = gaussian_filter(bold, sigma=(1, 1, 1, 0))
    drift = np.stack([np.ones(n_vol), *(np.linspace(-1, 1, n_vol) ** p for p in (1, 2))]).T
    onsets = events.onset[events.trial_type == "visual_target"].to_numpy()
    reg = events_to_regressor(onsets, 0.2, sfreq=10.0, n_times=n_vol * 20)
    x = hrf_convolve(reg, spm_hrf(0.1))[10::20]
    y = smooth.reshape(-1, n_vol).T
    x = x - drift @ np.linalg.lstsq(drift, x, rcond=None)[0]
    y = y - drift @ np.linalg.lstsq(drift, y, rcond=None)[0]
    r = (x @ y) / (np.linalg.norm(x) * np.linalg.norm(y, axis=0) + 1e-9)
    r = r.reshape(bold.shape[:3])
    r[~mni_mask()] = 0
    mean = bold.mean(axis=-1)
    params = json.loads((root / "derivatives/simulation/sub-01/sub-01_simulation.json").read_text())
    v1 = params["regions"]["V1_L"]
    i, j, k = np.unravel_index(np.argmax(r), r.shape)
    views = [
        ("sagittal", mean[i].T, r[i].T),
        ("coronal", mean[:, j].T, r[:, j].T),
        ("axial", mean[:, :, k].T, r[:, :, k].T),
    ]
    for ax, (name, anat, act) in zip(axes, views, strict=True):
        ax.imshow(anat, cmap="gray", origin="lower", vmin=0, vmax=np.percentile(mean, 99.5))
        over = np.ma.masked_less(act, 0.25)
        im = ax.imshow(over, cmap="hot", origin="lower", vmin=0.25, vmax=0.7, alpha=0.9)
        ax.set_title(name, fontsize=9)
        ax.axis("off")
    cb = plt.colorbar(im, cax=cax)
    cb.set_label("r with target regressor", fontsize=8)
    cb.ax.tick_params(labelsize=7)

    truth = load_truth(root, subject="01", task="visual", run=1)
    c = np.round(mm_to_voxel([v1["x"], v1["y"], v1["z"]])).astype(int)
    sl = tuple(slice(v - 1, v + 2) for v in c)

    def psc(a):
        ts = a[sl].reshape(-1, n_vol).mean(0)
        return 100 * (ts / ts.mean() - 1)

    t = np.arange(n_vol) * 2.0
    ax_ts.plot(t, psc(bold), color="0.5", lw=0.9, label="measured BOLD")
    ax_ts.plot(t, psc(truth["noisefree"]), color="tab:blue", lw=1.3, label="noise-free truth")
    ax_ts.plot(
        t, psc(truth["eeg_predictable"]), "--", color="tab:orange", lw=1.1, label="EEG-predictable"
    )
    ax_ts.set_xlabel("time from first volume (s)")
    ax_ts.set_ylabel("% signal change")
    ax_ts.set_title("left V1 (3×3×3 voxels)", fontsize=9)
    ax_ts.legend(fontsize=7, frameon=False, loc="upper left", ncol=3)
    ax_ts.tick_params(labelsize=7)
    for side in ("top", "right"):
        ax_ts.spines[side].set_visible(False)


def main() -> None:
    """Simulate, draw and save the figure."""
    with tempfile.TemporaryDirectory() as tmp:
        root = simulate_dataset(
            Path(tmp) / "sim", preset="tiny", seed=0, subjects=1, volumes=120, channels=34,
            progress=False,
        )  # fmt: skip
        fig = plt.figure(figsize=(12, 7.4))
        grid = fig.add_gridspec(
            2, 6, height_ratios=[1.25, 1.0], width_ratios=[1, 1, 1, 0.06, 0.55, 1.5],
            hspace=0.35, wspace=0.08,
        )  # fmt: skip
        _eeg_panel(fig.add_subplot(grid[0, :]), root)
        axes = [fig.add_subplot(grid[1, c]) for c in range(3)]
        _bold_panels(axes, fig.add_subplot(grid[1, 3]), fig.add_subplot(grid[1, 5]), root)
        fig.suptitle(
            "rt-eeg2fmri simulate: EEG from a spherical head model, BOLD on the MNI grid, "
            "known ground truth",
            fontsize=11,
        )
        fig.savefig(OUT, dpi=85, bbox_inches="tight")
    print(f"wrote {OUT} ({OUT.stat().st_size / 1024:.0f} KB)")


if __name__ == "__main__":
    main()
