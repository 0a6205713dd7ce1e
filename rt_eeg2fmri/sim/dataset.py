"""``simulate_dataset``: the whole simulated EEG-fMRI dataset, written to disk.

Every subject and run draws from its own random stream (``SeedSequence([seed, subject,
run])``), so the output is byte-identical for the same seed and arguments, whatever
``jobs`` is. Subjects are simulated in parallel when ``jobs > 1``.

Clocks: the BIDS EEG starts ``lead_in`` s before the first volume (``eeg/`` events on the
EEG clock, ``func/`` events from the first volume's onset) and runs ``tail`` s past the
end of the last volume; the ds000116 EEG starts ``legacy_lead_in`` s (default 0) before
the first volume, as the real dataset's acquisition was triggered by the scan start.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd

from .._checks import check_option
from .._logging import logger
from ..grid import GRID_SHAPE
from .artifacts import Acquisition
from .bold import epi_baseline, region_atlas, region_blobs, synthesize_bold
from .design import NEURAL_SFREQ, neural_drive
from .eeg import ecg_trace, head_model, heartbeats, synthesize_eeg
from .presets import LAYOUTS, SimConfig, resolve_config
from .regions import REGIONS, draw_subject, randomize_regions
from .truth import ATLAS, TRUTH_DIR
from .writer import (
    BIDS_VERSION,
    bold_sidecar,
    channels_table,
    eeg_sidecar,
    events_table,
    legacy_matrix,
    legacy_run_dir,
    run_stem,
    with_volume_markers,
    write_brainvision,
    write_drive,
    write_electrodes,
    write_json,
    write_labels,
    write_mat,
    write_nifti,
    write_tsv,
)

CONFIG_FILE = "simulation.json"
ECG_CHANNEL = "ECG"  # recorded beside the EEG when the pulse artifact is simulated
TRUTH_DESCRIPTIONS = {
    "noisefree": "The simulated BOLD without noise or drift.",
    "eegpredictable": "Baseline plus the BOLD of the regions visible in the EEG: what a model "
    "of the EEG can at best predict.",
}
_OURS_TOP = (
    "dataset_description.json",
    "participants.tsv",
    "participants.json",
    "README",
    ".bidsignore",
    "task-auditory_events.json",
    "task-visual_events.json",
)


def _is_simulation(out: Path) -> bool:
    return out.joinpath(*TRUTH_DIR, CONFIG_FILE).is_file()


def _prepare_out(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"simulation output '{out}' exists and is not a folder.")
    if out.is_dir() and any(out.iterdir()):
        if not (overwrite or _is_simulation(out)):
            raise FileExistsError(
                f"refusing to write the simulation into '{out}': the folder is not empty and "
                "holds no previous simulation output; choose an empty folder or pass "
                "overwrite=True (--overwrite)."
            )
        for path in out.iterdir():  # clear what a simulation writes, nothing else
            ours = path.name in _OURS_TOP or path.name.startswith("sub")
            if path.is_dir() and ours:
                shutil.rmtree(path)
            elif ours:
                path.unlink()
        if out.joinpath(*TRUTH_DIR).is_dir():
            shutil.rmtree(out.joinpath(*TRUTH_DIR))
    out.mkdir(parents=True, exist_ok=True)


def _subject_label(index: int, n_subjects: int) -> str:
    return f"{index + 1:0{3 if n_subjects > 99 else 2}d}"


def _rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), *keys]))


def simulate_dataset(
    out_dir,
    *,
    preset: str = "small",
    seed: int = 0,
    layout: str = "bids",
    overwrite: bool = False,
    progress: bool | None = None,
    **overrides,
) -> Path:
    """Simulate a simultaneous EEG-fMRI oddball dataset with known ground truth.

    Parameters
    ----------
    out_dir : path-like
        Output folder: empty, missing, or a previous simulation's output (replaced).
    preset : ``"tiny"`` | ``"small"`` | ``"oddball"``
        See :data:`rt_eeg2fmri.sim.PRESETS`.
    seed : int
        Same seed and arguments → byte-identical files.
    layout : ``"bids"`` | ``"ds000116"`` | ``"both"``
        BIDS, the founding dataset's legacy layout, or both side by side (the legacy
        ``subNNN/`` folders are listed in ``.bidsignore``). The ground truth goes to
        ``derivatives/simulation`` in every case.
    overwrite : bool
        Write into a non-empty folder that is not a previous simulation's output.
    progress : bool | None
        Show a progress bar (``None``: only on a terminal).
    **overrides
        Per-field overrides of the preset: ``subjects``, ``runs``, ``volumes``,
        ``sfreq``, ``channels``, ``t_r``, ``lead_in``, ``tail``, ``legacy_lead_in``,
        ``line_freq``, ``mat_version``, ``jobs`` (see :func:`.presets.resolve_config`).

    Returns
    -------
    out : Path
        The dataset folder.
    """
    config = resolve_config(preset, **overrides)
    check_option(layout, "layout", LAYOUTS)
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"'seed' must be a non-negative integer, got {seed=!r}.")
    out = Path(out_dir)
    if layout != "bids" and len(config.ch_names) != 34:
        logger.warning(
            "The ds000116 layout has 34 EEG rows; writing %d (readers of that layout, such as "
            "rt_eeg2fmri.data.ds000116, expect 34).",
            len(config.ch_names),
        )
    if layout != "bids" and config.sfreq != 1000.0:
        logger.warning(
            "The ds000116 layout does not record the EEG rate and its readers assume 1000 Hz; "
            "read this one with sfreq=%g.",
            config.sfreq,
        )
    _prepare_out(out, overwrite)
    start = time.perf_counter()
    _write_top_level(out, config, preset=preset, seed=int(seed), layout=layout)

    from tqdm.auto import tqdm

    bar = tqdm(
        total=config.n_subjects * config.n_runs,
        desc="simulate",
        unit="run",
        disable=None if progress is None else not progress,
    )
    args = [(out, config, int(seed), layout, s) for s in range(config.n_subjects)]
    with bar:
        if config.jobs == 1 or config.n_subjects == 1:
            for a in args:
                _simulate_subject(*a, on_run=lambda: bar.update(1))
        else:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor, as_completed

            workers = min(config.jobs, config.n_subjects)
            # fork: works from scripts without a __main__ guard (spawn would re-run them)
            method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
            with ProcessPoolExecutor(workers, mp_context=mp.get_context(method)) as pool:
                futures = [pool.submit(_simulate_subject, *a) for a in args]
                for future in as_completed(futures):
                    future.result()
                    bar.update(config.n_runs)
    logger.info(
        "Simulated %d subjects × %d runs into '%s' in %.1f s.",
        config.n_subjects,
        config.n_runs,
        out,
        time.perf_counter() - start,
    )
    return out


def _config_json(config: SimConfig, *, preset: str, seed: int, layout: str) -> dict:
    from .. import __version__

    return {
        "generator": "rt-eeg2fmri",
        "version": __version__,
        "preset": preset,
        "seed": seed,
        "layout": layout,
        "subjects": config.n_subjects,
        "runs": [f"task-{t}_run-{r}" for t, r in config.runs()],
        "volumes": config.n_volumes,
        "t_r": config.t_r,
        "sfreq": config.sfreq,
        "ch_names": list(config.ch_names),
        "lead_in": config.lead_in,
        "tail": config.tail,
        "legacy_lead_in": config.legacy_lead_in,
        "line_freq": config.line_freq,
        "mat_version": config.mat_version,
        "neural_sfreq": NEURAL_SFREQ,
        "randomize": config.randomize,
        "artifacts": list(config.artifacts),
        "scanner_sync": config.scanner_sync,
    }


def _write_top_level(out: Path, config: SimConfig, *, preset: str, seed: int, layout: str) -> None:
    from .. import __version__

    generated = [
        {
            "Name": "rt-eeg2fmri",
            "Version": __version__,
            "Description": f"rt_eeg2fmri.sim, preset {preset!r}, seed {seed}",
        }
    ]
    truth = out.joinpath(*TRUTH_DIR)
    write_json(
        truth / "dataset_description.json",
        {
            "Name": "rt-eeg2fmri simulation ground truth",
            "BIDSVersion": BIDS_VERSION,
            "DatasetType": "derivative",
            "GeneratedBy": generated,
        },
    )
    write_json(truth / CONFIG_FILE, _config_json(config, preset=preset, seed=seed, layout=layout))
    # the simulator's own files, outside the BIDS specification, for the BIDS validator
    (truth / ".bidsignore").write_text(
        f"{CONFIG_FILE}\nregions.tsv\n{ATLAS}.*\n*_simulation.json\n"
        "*_desc-neuraldrive_timeseries.*\n*_desc-clean_eeg.*\n",
        encoding="utf-8",
    )
    regions = dataset_regions(config, seed)
    write_labels(truth / f"{ATLAS}.nii.gz", region_atlas(regions))
    write_tsv(
        truth / f"{ATLAS}.tsv",
        pd.DataFrame({"index": np.arange(1, len(regions) + 1), "name": [r.name for r in regions]}),
    )
    write_tsv(
        truth / "regions.tsv",
        pd.DataFrame(
            {
                "name": [r.name for r in regions],
                "x": [r.xyz[0] for r in regions],
                "y": [r.xyz[1] for r in regions],
                "z": [r.xyz[2] for r in regions],
                "eeg_visible": [r.eeg_visible for r in regions],
                "network": [r.network for r in regions],
                "sigma_mm": [round(r.sigma, 3) for r in regions],
                "bold_percent_per_unit": [round(r.amp, 3) for r in regions],
                # each coupling band: name, Hz, amplitude (nAm), κ (sign: up or down)
                "bands": [
                    ";".join(
                        f"{b.name}:{b.lo:g}-{b.hi:g}Hz:{b.amp:.3g}nAm:kappa={b.kappa:+.3f}"
                        for b in r.bands
                    )
                    or "n/a"
                    for r in regions
                ],
            }
        ),
    )
    rng = _rng(seed, 0)
    labels = [_subject_label(s, config.n_subjects) for s in range(config.n_subjects)]
    if layout in ("bids", "both"):
        write_json(
            out / "dataset_description.json",
            {
                "Name": "Simulated simultaneous EEG-fMRI auditory and visual oddball",
                "BIDSVersion": BIDS_VERSION,
                "DatasetType": "raw",
                "License": "CC0",
                "Authors": ["rt-eeg2fmri simulator"],
                "GeneratedBy": generated,
            },
        )
        write_tsv(
            out / "participants.tsv",
            pd.DataFrame(
                {
                    "participant_id": [f"sub-{x}" for x in labels],
                    "age": rng.integers(19, 36, len(labels)),
                    "sex": rng.choice(["F", "M"], len(labels)),
                    "handedness": ["R"] * len(labels),
                }
            ),
        )
        write_json(
            out / "participants.json",
            {
                "age": {"Description": "age at scan", "Units": "year"},
                "sex": {"Description": "sex", "Levels": {"F": "female", "M": "male"}},
                "handedness": {"Description": "handedness", "Levels": {"R": "right"}},
            },
        )
        columns = {
            "trial_type": {
                "Description": "event type",
                "Levels": {
                    "auditory_standard": "frequent tone",
                    "auditory_target": "rare tone (press the button)",
                    "visual_standard": "frequent visual stimulus",
                    "visual_target": "rare visual stimulus (press the button)",
                    "button_press": "right index finger button press",
                    "Response/R128": "scanner volume marker (eeg/ events only)",
                },
            },
            "response_time": {"Description": "reaction time of the press", "Units": "s"},
            "value": {"Description": "BrainVision marker of the event"},
            "sample": {"Description": "EEG sample of the onset (eeg/ events only)"},
        }
        for task in ("auditory", "visual"):
            write_json(out / f"task-{task}_events.json", columns)
        (out / "README").write_text(_readme(config, preset, seed), encoding="utf-8")
        if layout == "both":
            (out / ".bidsignore").write_text("sub[0-9][0-9][0-9]/\n", encoding="utf-8")


def _readme(config: SimConfig, preset: str, seed: int) -> str:
    return f"""Simulated simultaneous EEG-fMRI: auditory and visual oddball
==========================================================

Made by rt-eeg2fmri (`rt-eeg2fmri simulate --preset {preset} --seed {seed}`). Not real data.

{config.n_subjects} subjects, {config.n_runs} runs each ({config.n_volumes} volumes, TR {config.t_r:g} s),
alternating task-auditory and task-visual. EEG: {len(config.ch_names)} channels at
{config.sfreq:g} Hz (BrainVision, reference FCz), starting {config.lead_in:g} s before the
first volume; one `Response/R128` marker per volume at its onset. BOLD: 53 x 63 x 52
voxels (MNI, SPM 3 mm bounding box), int16.

Neural model: regions at MNI coordinates (visual, auditory, P300 TPJ/IPS, left M1,
default-mode, and EEG-silent thalamus/insula/hippocampus) driven by the oddball task and
slow spontaneous fluctuations. EEG comes from a spherical head model (MNE); BOLD from the
same drive convolved with each subject's HRF. derivatives/simulation holds the ground
truth: noise-free BOLD, the EEG-predictable part of it, each region's neural drive,
region positions and per-subject parameters.
"""


def dataset_regions(config: SimConfig, seed: int) -> tuple:
    """The regions a dataset is simulated with.

    :data:`REGIONS`, or with ``config.randomize`` one random draw of their couplings per
    seed, the same for every subject.
    """
    return randomize_regions(_rng(seed, 0, 1)) if config.randomize else REGIONS


def _simulate_subject(out: Path, config: SimConfig, seed: int, layout: str, s: int, on_run=None):
    """Simulate and write one subject's runs."""
    label = _subject_label(s, config.n_subjects)
    rng = _rng(seed, s + 1)
    regions = dataset_regions(config, seed)
    subject = draw_subject(rng, label, regions, randomize=config.randomize)
    model = head_model(config.ch_names, subject, rng, regions=regions)
    baseline = epi_baseline(rng, scale=subject.baseline_scale)
    blobs = region_blobs(subject, regions)
    truth = out.joinpath(*TRUTH_DIR) / f"sub-{label}"
    write_json(truth / f"sub-{label}_simulation.json", subject.to_json(regions))
    bids = layout in ("bids", "both")
    legacy = layout in ("ds000116", "both")
    if bids:
        write_electrodes(out / f"sub-{label}" / "eeg", label, model.ch_names, model.positions)

    sfreq, t_r = config.sfreq, config.t_r
    n_lead = round(config.lead_in * sfreq)
    n_legacy_lead = round(config.legacy_lead_in * sfreq)
    n_pre = max(n_lead, n_legacy_lead)
    scan = config.n_volumes * t_r
    n_times = n_pre + int(np.ceil((scan + config.tail) * sfreq))
    t_start = -n_pre / sfreq
    t_stop = t_start + (n_times - 1) / sfreq
    for k, (task, run) in enumerate(config.runs()):
        rng_run = _rng(seed, s + 1, k + 1)
        drive = neural_drive(
            task,
            rng_run,
            t_start=t_start,
            t_stop=t_stop,
            scan_duration=scan,
            sfreq=sfreq,
            rt_median=subject.rt_median,
            regions=regions,
        )
        beats = heartbeats(rng_run, t_start - 1.0, t_stop + 1.0)
        eeg = synthesize_eeg(
            model,
            subject,
            drive,
            rng_run,
            sfreq=sfreq,
            t_start=t_start,
            n_times=n_times,
            beats=beats,
            line_freq=config.line_freq,
            regions=regions,
        )
        recorded, ecg = eeg, None
        if config.artifacts:
            recorded, ecg = add_artifacts(
                eeg, config, model, beats, _rng(seed, s + 1, k + 1, 7), t_start=t_start
            )
        bold = synthesize_bold(
            drive,
            subject,
            baseline,
            blobs,
            rng_run,
            n_volumes=config.n_volumes,
            t_r=t_r,
            beats=beats,
            regions=regions,
        )
        stem = run_stem(label, task, run)
        func_truth = truth / "func"
        for desc, data in (("noisefree", bold.noisefree), ("eegpredictable", bold.eeg_predictable)):
            write_nifti(func_truth / f"{stem}_desc-{desc}_bold.nii.gz", data, t_r=t_r)
            write_json(
                func_truth / f"{stem}_desc-{desc}_bold.json",
                {
                    "Description": TRUTH_DESCRIPTIONS[desc],
                    "RepetitionTime": t_r,
                    "TaskName": task,
                    "SkullStripped": False,
                },
            )
        write_drive(
            func_truth / f"{stem}_desc-neuraldrive_timeseries.tsv",
            drive.times,
            drive.drive,
            [r.name for r in regions],
            step=round(NEURAL_SFREQ / 10),
        )
        bold_path = None
        if bids:
            bold_path = _write_bids_run(
                out, label, task, run, config, model, drive, recorded, bold, n_pre - n_lead,
                ecg=ecg, clean=(truth / "eeg", eeg) if config.artifacts else None,
            )  # fmt: skip
        if legacy:
            _write_legacy_run(
                out, s + 1, task, run, config, model, drive, recorded, bold, beats,
                first=n_pre - n_legacy_lead, t_first=-n_legacy_lead / sfreq, bold_path=bold_path,
            )  # fmt: skip
        if on_run is not None:
            on_run()


def _acquisition(config: SimConfig) -> Acquisition:
    """The EPI acquisition of every simulated run (its clock locked or not to the EEG's)."""
    return Acquisition(t_r=config.t_r, n_slices=GRID_SHAPE[2], sync=config.scanner_sync)


def add_artifacts(eeg, config: SimConfig, model, beats, rng, *, t_start: float):
    """``(eeg + the configured in-scanner artifacts, the ECG lead or None)`` of one run."""
    from .artifacts import (
        SampleGrid,
        gradient_artifact,
        gradient_mix,
        motion_drift,
        pulse_artifact,
        pulse_topography,
    )

    n_chans, n_times = eeg.shape
    grid = SampleGrid(config.sfreq, t_start, n_times)
    out = eeg.copy()
    if "gradient" in config.artifacts:
        acq = _acquisition(config)
        onsets = np.arange(config.n_volumes) * config.t_r
        waves = gradient_artifact(onsets, acq, grid)
        drift = motion_drift(rng, n_chans, n_times, config.sfreq)
        out += (gradient_mix(rng, n_chans) @ waves) * drift
    ecg = None
    if "bcg" in config.artifacts:
        topo = pulse_topography(rng, model.positions[:n_chans])
        out += pulse_artifact(rng, beats, topo, grid)
        ecg = ecg_trace(beats, t_start=t_start, n_times=n_times, sfreq=config.sfreq)
        ecg = ecg + 20e-6 * rng.standard_normal(n_times)
        if "gradient" in config.artifacts:  # the ECG lead is in the scanner too (drawn last,
            # so the EEG of a seed is the same with or without it)
            ecg = (
                ecg
                + (gradient_mix(rng, 1) @ waves)[0] * motion_drift(rng, 1, n_times, config.sfreq)[0]
            )
    return out.astype(np.float32), ecg


def _write_bids_run(
    out, label, task, run, config, model, drive, eeg, bold, first, *, ecg=None, clean=None
) -> Path:
    """One run's BIDS files.

    ``clean``: ``(folder, eeg)``, the EEG under the in-scanner artifacts, written there
    with the same markers (a correction's truth).
    """
    sfreq, t_r = config.sfreq, config.t_r
    lead = round(config.lead_in * sfreq) / sfreq
    stem = run_stem(label, task, run)
    eeg_dir, func_dir = out / f"sub-{label}" / "eeg", out / f"sub-{label}" / "func"
    data = eeg[:, first:]
    names = list(model.ch_names)
    if ecg is not None:
        data = np.concatenate([data, ecg[None, first:].astype(np.float32)])
        names.append(ECG_CHANNEL)
    # the scanner's markers, where the EEG clock saw each volume begin (a scanner clock that
    # runs fast with --scanner-sync off: ever earlier than the nominal grid)
    nominal = np.arange(config.n_volumes) * t_r
    volume_onsets = np.round((lead + _acquisition(config).on_eeg_clock(nominal)) * sfreq) / sfreq
    eeg_events = events_table(drive.events, shift=lead, sfreq=sfreq)
    markers = dict(sfreq=sfreq, events=eeg_events, volume_onsets=volume_onsets,
                   reference=model.reference)  # fmt: skip
    write_brainvision(eeg_dir, f"{stem}_eeg", data, ch_names=names, **markers)
    if clean is not None:
        folder, under = clean
        write_brainvision(
            folder, f"{stem}_desc-clean_eeg", under[:, first:], ch_names=model.ch_names, **markers
        )
    write_json(
        eeg_dir / f"{stem}_eeg.json",
        eeg_sidecar(
            task,
            sfreq=sfreq,
            n_chans=len(model.ch_names),
            duration=data.shape[1] / sfreq,
            reference=model.reference,
            line_freq=config.line_freq,
            n_ecg=0 if ecg is None else 1,
        ),
    )
    write_tsv(
        eeg_dir / f"{stem}_channels.tsv",
        channels_table(model.ch_names, model.reference, ecg=None if ecg is None else ECG_CHANNEL),
    )
    write_tsv(
        eeg_dir / f"{stem}_events.tsv", with_volume_markers(eeg_events, volume_onsets, sfreq=sfreq)
    )
    bold_path = write_nifti(
        func_dir / f"{stem}_bold.nii.gz", bold.bold, t_r=t_r, slice_timing=bold.slice_timing
    )
    write_json(
        func_dir / f"{stem}_bold.json", bold_sidecar(task, t_r=t_r, slice_timing=bold.slice_timing)
    )
    write_tsv(func_dir / f"{stem}_events.tsv", events_table(drive.events, shift=0.0, sfreq=None))
    return bold_path


def _write_legacy_run(
    out,
    subject_index,
    task,
    run,
    config,
    model,
    drive,
    eeg,
    bold,
    beats,
    *,
    first,
    t_first,
    bold_path,
) -> None:
    sfreq = config.sfreq
    sub, name = legacy_run_dir(subject_index, task, run)
    eeg_dir, bold_dir = out / sub / "EEG" / name, out / sub / "BOLD" / name
    data = eeg[:, first:]
    ecg = ecg_trace(beats, t_start=t_first, n_times=data.shape[1], sfreq=sfreq)
    events = drive.events.assign(onset=drive.events["onset"] - t_first)
    matrix = legacy_matrix(data, ecg, events, sfreq=sfreq)
    write_mat(eeg_dir / "EEG_rereferenced.mat", "data_reref", matrix, version=config.mat_version)
    (eeg_dir / "channels.txt").write_text("\n".join(model.ch_names) + "\n", encoding="utf-8")
    target = bold_dir / "bold.nii.gz"
    if bold_path is not None:
        bold_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(bold_path, target)
    else:
        write_nifti(target, bold.bold, t_r=config.t_r, slice_timing=bold.slice_timing)


def read_config(root) -> dict:
    """The configuration a simulated dataset was made with (``derivatives/simulation``)."""
    path = Path(root).joinpath(*TRUTH_DIR, CONFIG_FILE)
    if not path.is_file():
        raise FileNotFoundError(f"not a simulated dataset: '{path}' not found.")
    return json.loads(path.read_text(encoding="utf-8"))


def dataset_size(root) -> int:
    """Bytes of every file under ``root``."""
    total = 0
    for folder, _, files in os.walk(root):
        total += sum(os.path.getsize(os.path.join(folder, f)) for f in files)
    return total
