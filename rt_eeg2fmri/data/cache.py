"""The on-disk window cache: preprocessed continuous runs, memory-mapped for training.

``build_cache`` loads one run at a time, preprocesses it (resampling, band-pass, BOLD
targets inside a mask) and writes continuous ``.npy`` arrays that ``PairDataset`` opens
with ``np.load(mmap_mode="r")``. The folder is named by a content fingerprint (the input
files' bytes, every preprocessing parameter and :data:`CACHE_FORMAT_VERSION`) and
appears atomically (built in a temporary folder, then renamed), so a build that is
interrupted is never trusted, and a second call with the same inputs reuses the cache
without loading anything.

Layout of a cache folder::

    meta.json               parameters, channels, rate, grid, runs table, per-subject stats
    mask.npy                (n_x, n_y, n_z) bool
    pairs.npy               (n_pairs, 3) int64: run index, volume, window start sample
    run-00000_eeg.npy       (n_channels, n_times) float32, not normalised
    run-00000_targets.npy   (n_volumes, n_vox) float32
    run-00000_onsets.npy    (n_volumes,) float64, s on the EEG clock
    run-00000_events.tsv    onset, duration, trial_type
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import shutil
import time
import uuid
from pathlib import Path

import numpy as np

from .._checks import check_option, check_positive
from .._logging import logger
from .dataset import RunRef, find_runs, grid_mismatch
from .pairs import PairDataset, run_file
from .preprocessing import (
    NORM_METHODS,
    TARGET_METHODS,
    _Accumulator,
    _apply_reference,
    bandpass,
    bold_targets,
    masked_series,
    remove_drifts,
    resample,
    resample_factors,
    smooth_bold,
)
from .windows import window_pairs, window_samples

CACHE_FORMAT_VERSION = 1
_HASH_BLOCK = 1 << 20  # 1 MiB
_MEDIAN_BLOCK_BYTES = 64 << 20  # bound of the per-subject median working set


# -- fingerprint ---------------------------------------------------------------------------
def file_hash(path: str | Path, *, memo: dict | None = None) -> str:
    """blake2b of a file's bytes, streamed in 1 MiB blocks.

    ``memo`` maps the resolved path to ``[size, mtime_ns, digest]``; a hit with the same
    size and modification time skips reading the file.
    """
    path = Path(path).resolve()
    st = path.stat()
    key = str(path)
    if memo is not None:
        hit = memo.get(key)
        if hit and hit[0] == st.st_size and hit[1] == st.st_mtime_ns:
            return hit[2]
    h = hashlib.blake2b(digest_size=20)
    with open(path, "rb") as f:
        while block := f.read(_HASH_BLOCK):
            h.update(block)
    digest = h.hexdigest()
    if memo is not None:
        memo[key] = [st.st_size, st.st_mtime_ns, digest]
    return digest


def _load_memo(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _save_memo(path: Path, memo: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}")
    try:
        tmp.write_text(json.dumps(memo))
        os.replace(tmp, path)
    except OSError as err:  # a read-only cache only loses the memo
        logger.debug("Could not write the file-hash memo '%s': %s", path, err)
        tmp.unlink(missing_ok=True)


def fingerprint(runs: list[RunRef], params: dict, *, memo_path: Path | None = None) -> str:
    """Hash of the runs' file contents and identities, ``params`` and the format version."""
    memo = _load_memo(memo_path) if memo_path is not None else None
    before = dict(memo) if memo is not None else None
    h = hashlib.blake2b(digest_size=16)
    h.update(
        json.dumps({"format": CACHE_FORMAT_VERSION, "params": params}, sort_keys=True).encode()
    )
    for ref in runs:
        files = {}
        for key, path in sorted(ref.files.items()):
            if not Path(path).is_file():
                raise FileNotFoundError(f"{ref.name}: '{key}' file not found: '{path}'.")
            files[key] = file_hash(path, memo=memo)
        ident = {
            "name": ref.name,
            "layout": ref.layout,
            "subject": ref.subject,
            "task": ref.task,
            "run": ref.run,
            "session": ref.session,
            "options": ref.options,
            "files": files,
        }
        h.update(json.dumps(ident, sort_keys=True, default=str).encode())
    if memo is not None and memo != before:
        _save_memo(memo_path, memo)
    return h.hexdigest()


# -- masks ---------------------------------------------------------------------------------
def _mask_array(mask) -> np.ndarray:
    if isinstance(mask, str | os.PathLike):
        import nibabel as nib

        from .._checks import check_file

        mask = np.asanyarray(nib.load(check_file(mask, "mask file")).dataobj) > 0
    arr = np.asarray(mask)
    if arr.ndim != 3:
        raise ValueError(f"'mask' must be a 3-D array (n_x, n_y, n_z), got shape {arr.shape}.")
    if arr.dtype != bool:
        if not np.isin(arr, (0, 1)).all():
            raise ValueError(f"'mask' must be boolean (or 0/1), got dtype {arr.dtype}.")
        arr = arr.astype(bool)
    if not arr.any():
        raise ValueError("'mask' selects no voxel.")
    return arr


def _mask_key(mask: np.ndarray | None) -> str:
    if mask is None:
        return "auto"
    h = hashlib.blake2b(np.packbits(mask.ravel()).tobytes(), digest_size=16)
    return f"{mask.shape}:{h.hexdigest()}"


def _data_mask(bold: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Brain mask from a run's mean image (nilearn's EPI mask; non-zero voxels as fallback)."""
    import warnings

    import nibabel as nib
    from nilearn.masking import compute_epi_mask

    mean = bold.mean(axis=3, dtype=np.float64).astype(np.float32)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mask = np.asarray(compute_epi_mask(nib.Nifti1Image(mean, affine)).dataobj) > 0
    except ValueError:
        mask = np.zeros(mean.shape, bool)
    if not mask.any():
        logger.warning("The EPI mask of the mean image is empty; using its non-zero voxels.")
        mask = np.abs(mean) > 0
    if not mask.any():
        raise ValueError("cannot compute a brain mask: the mean BOLD image is all zeros.")
    return mask


def _auto_mask(session) -> tuple[np.ndarray, str]:
    from ..grid import GRID_AFFINE, GRID_SHAPE, mni_mask, same_grid

    if session.mask is not None:
        return np.asarray(session.mask, bool), "the reader's mask"
    if same_grid(session.grid_shape, session.affine, GRID_SHAPE, GRID_AFFINE):
        return np.array(mni_mask()), "the MNI152 mask (SPM 3 mm grid)"
    return _data_mask(session.bold, session.affine), f"the EPI mask of {session.name}"


# -- building ------------------------------------------------------------------------------
def _channel_order(names, ref_names, *, where: str, first: str):
    if list(names) == list(ref_names):
        return None
    index = {n.lower(): i for i, n in enumerate(names)}
    wanted = {n.lower() for n in ref_names}
    missing = [n for n in ref_names if n.lower() not in index]
    extra = [n for n in names if n.lower() not in wanted]
    if missing or extra:
        raise ValueError(
            f"{where}: channels differ from the first run ({first}): missing {missing}, "
            f"extra {extra}. All runs must record the same channels."
        )
    return np.array([index[n.lower()] for n in ref_names])


def _cache_valid(folder: Path, fp: str) -> bool:
    try:
        meta = json.loads((folder / "meta.json").read_text())
    except (OSError, ValueError):
        return False
    if meta.get("fingerprint") != fp or meta.get("format_version") != CACHE_FORMAT_VERSION:
        return False
    names = ["mask.npy", "pairs.npy"]
    for i in range(len(meta.get("runs", []))):
        names += [run_file(i, kind) for kind in ("eeg", "targets", "onsets", "events")]
    return all((folder / n).is_file() for n in names)


def _clean_stale_tmp(cache_root: Path, fp: str) -> None:
    """Remove temporary folders of this fingerprint left by processes that died."""
    for tmp in cache_root.glob(f".tmp-{fp}-*"):
        try:
            pid = int(tmp.name.split("-")[2])
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(tmp, ignore_errors=True)
        except (ValueError, IndexError, PermissionError):
            continue


def build_cache(
    runs,
    *,
    root: str | Path | None = None,
    sfreq: float | None = None,
    l_freq: float | None = None,
    h_freq: float | None = None,
    target: str = "psc",
    norm: str = "zscore",
    mask=None,
    winsize: float = 30.0,
    skip: int | None = None,
    fwhm: float | None = None,
    high_pass: float | None = None,
    progress: bool = True,
) -> PairDataset:
    """Preprocess runs into a memory-mapped cache (or reuse it) and open it.

    Parameters
    ----------
    runs : list of RunRef
        The runs, in the order of ``PairDataset.runs``; one is loaded at a time.
    root : path-like | None
        Folder holding caches (default ``rt_eeg2fmri.grid.cache_dir() / "pairs"``).
    sfreq : float | None
        Rate of the cached EEG in Hz (anti-aliased resampling); default: the first run's.
    l_freq, h_freq : float | None
        Zero-phase FIR band-pass of the continuous EEG at ``sfreq`` (Hz).
    target : ``"psc"`` | ``"median_ratio"``
        BOLD targets: percent signal change from the run mean, or the paper's
        ``volume / subject median − 1``. The subject median is exact: once all runs are
        written, it is computed over all the subject's volumes in voxel blocks (working
        set ≤ 64 MB) from the cached arrays, which are then rewritten in place.
    norm : ``"zscore"`` | ``"robust"``
        Per-subject, per-channel EEG statistics (see ``channel_stats``), applied when a
        window is read.
    mask : array of shape (n_x, n_y, n_z) | path-like | None
        Voxels kept. Default: the reader's mask when it gives one, else the MNI152 mask
        on SPM's 3 mm grid, else the EPI mask of the first run's mean image.
    winsize : float
        Window length in seconds.
    skip : int | None
        Warm-up volumes dropped per run (default ``ceil(winsize / t_r)``).
    fwhm : float | None
        Smooth the BOLD with a Gaussian of this FWHM (mm) before computing targets
        (``smooth_bold``; SPM's ``s`` step). Default: no smoothing.
    high_pass : float | None
        High-pass the targets of each run at this cut-off in Hz by regressing out a
        cosine drift basis (``remove_drifts``; SPM's 128 s filter is 0.0078). Default:
        no filtering.
    progress : bool
        Show a progress bar while building.

    Returns
    -------
    dataset : PairDataset
    """
    runs = list(runs)
    if not runs:
        raise ValueError("build_cache: 'runs' is empty.")
    for ref in runs:
        if not isinstance(ref, RunRef):
            raise TypeError(f"build_cache: 'runs' must hold RunRef objects, got {ref!r}.")
    names = [r.name for r in runs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"build_cache: runs given more than once: {dupes}.")
    check_option(target, "target", TARGET_METHODS)
    check_option(norm, "norm", NORM_METHODS)
    sfreq = None if sfreq is None else check_positive(sfreq, "sfreq")
    l_freq = None if l_freq is None else check_positive(l_freq, "l_freq")
    h_freq = None if h_freq is None else check_positive(h_freq, "h_freq")
    if l_freq is not None and h_freq is not None and l_freq >= h_freq:
        raise ValueError(f"'l_freq' must be below 'h_freq', got {l_freq=}, {h_freq=}.")
    if sfreq is not None and h_freq is not None and h_freq >= sfreq / 2:
        raise ValueError(f"'h_freq' must be below the Nyquist of {sfreq=} Hz, got {h_freq=}.")
    winsize = check_positive(winsize, "winsize")
    if skip is not None and int(skip) < 0:
        raise ValueError(f"'skip' must be >= 0, got {skip=}.")
    mask_arr = None if mask is None else _mask_array(mask)
    params = {
        "sfreq": sfreq,
        "l_freq": l_freq,
        "h_freq": h_freq,
        "target": target,
        "norm": norm,
        "mask": _mask_key(mask_arr),
        "winsize": winsize,
        "skip": None if skip is None else int(skip),
    }
    # only when set, so caches built without them keep their fingerprint
    if fwhm is not None:
        params["fwhm"] = check_positive(fwhm, "fwhm")
    if high_pass is not None:
        params["high_pass"] = check_positive(high_pass, "high_pass")
    from ..grid import cache_dir

    cache_root = Path(root) if root is not None else cache_dir() / "pairs"
    cache_root.mkdir(parents=True, exist_ok=True)
    fp = fingerprint(runs, params, memo_path=cache_root / "file-hashes.json")
    final = cache_root / fp
    if _cache_valid(final, fp):
        logger.info("Reusing the window cache '%s'.", final)
        return PairDataset(final)
    if final.exists():
        logger.warning("Rebuilding the incomplete or unreadable cache '%s'.", final)
        stale = cache_root / f".stale-{fp}-{uuid.uuid4().hex[:8]}"
        os.replace(final, stale)
        shutil.rmtree(stale, ignore_errors=True)
    _clean_stale_tmp(cache_root, fp)
    tmp = cache_root / f".tmp-{fp}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    t0 = time.perf_counter()
    try:
        _write(runs, tmp, params=params, mask=mask_arr, fp=fp, progress=progress)
        try:
            os.rename(tmp, final)
        except OSError:
            if not _cache_valid(final, fp):  # not a concurrent build of the same cache
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("Built the window cache '%s' in %.1f s.", final, time.perf_counter() - t0)
    return PairDataset(final)


def _write(runs, folder: Path, *, params: dict, mask, fp: str, progress: bool) -> None:
    from tqdm.auto import tqdm

    subjects = [r.subject for r in runs]
    last_of = {s: i for i, s in enumerate(subjects)}
    accs: dict = {}
    stats: dict = {}
    rows, pairs = [], []
    ref0 = None
    for i, ref in enumerate(tqdm(runs, desc="caching runs", unit="run", disable=not progress)):
        session = ref.load()
        where = f"{ref.name} ('{ref.files.get('eeg', session.source.get('eeg'))}')"
        if session.bold is None:
            raise ValueError(f"{where}: the run has no BOLD series; training needs one.")
        if ref0 is None:
            ref0 = {
                "name": ref.name,
                "ch_names": list(session.ch_names),
                "grid": (session.grid_shape, session.affine, session.source.get("bold")),
                "t_r": session.t_r,
                "sfreq": params["sfreq"] or session.sfreq,
            }
            if mask is None:
                mask, how = _auto_mask(session)
                logger.info("Mask: %s (%d voxels).", how, int(mask.sum()))
            if mask.shape != session.grid_shape:
                raise ValueError(
                    f"'mask' has shape {mask.shape}, but the BOLD grid of {where} is "
                    f"{session.grid_shape}."
                )
            if params["h_freq"] is not None and params["h_freq"] >= ref0["sfreq"] / 2:
                raise ValueError(
                    f"'h_freq' must be below the Nyquist of the cache rate {ref0['sfreq']:g} Hz, "
                    f"got h_freq={params['h_freq']}."
                )
        shape0, affine0, bold0 = ref0["grid"]
        from ..grid import same_grid

        if not same_grid(shape0, affine0, session.grid_shape, session.affine):
            raise ValueError(
                grid_mismatch(
                    (shape0, affine0, bold0, ref0["name"]),
                    (session.grid_shape, session.affine, session.source.get("bold"), ref.name),
                )
            )
        if abs(session.t_r - ref0["t_r"]) > 1e-6 * ref0["t_r"]:
            raise ValueError(
                f"{where}: RepetitionTime {session.t_r} s differs from {ref0['t_r']} s of the "
                f"first run ({ref0['name']}); all runs must share one TR."
            )
        order = _channel_order(session.ch_names, ref0["ch_names"], where=where, first=ref0["name"])
        eeg = session.eeg if order is None else session.eeg[order]
        in_sfreq, onsets, events = session.sfreq, session.volume_onsets, session.events
        if params.get("fwhm"):
            session.bold = smooth_bold(session.bold, session.affine, params["fwhm"])
        if params["target"] == "psc":
            y = bold_targets(session.bold, mask, method="psc")
        else:  # raw in-mask series; divided by the subject median once the subject is done
            y = masked_series(session.bold, mask)
        if params.get("high_pass"):
            y = remove_drifts(y, session.t_r, params["high_pass"])
        n_volumes = session.n_volumes
        del session  # free the 4-D BOLD (and the EEG unless reordered) before filtering
        out_sfreq = ref0["sfreq"]
        resample_factors(in_sfreq, out_sfreq)  # a clear error before any work
        eeg = resample(eeg, sfreq=in_sfreq, new_sfreq=out_sfreq)
        if params["l_freq"] is not None or params["h_freq"] is not None:
            eeg = bandpass(eeg, out_sfreq, l_freq=params["l_freq"], h_freq=params["h_freq"])
        acc = accs.setdefault(ref.subject, _Accumulator(params["norm"]))
        acc.update(eeg)
        if last_of[ref.subject] == i:
            stats[ref.subject] = accs.pop(ref.subject).result(ref0["ch_names"]).to_dict()
        np.save(folder / run_file(i, "eeg"), np.ascontiguousarray(eeg, dtype=np.float32))
        np.save(folder / run_file(i, "targets"), y)
        np.save(folder / run_file(i, "onsets"), np.asarray(onsets, dtype=np.float64))
        events.to_csv(folder / run_file(i, "events"), sep="\t", index=False)
        wp = window_pairs(
            onsets,
            t_r=ref0["t_r"],
            sfreq=out_sfreq,
            n_times=eeg.shape[1],
            winsize=params["winsize"],
            skip=params["skip"],
        )
        if len(wp) == 0:
            logger.warning(
                "%s gives no (window, volume) pair: %d volumes, %.1f s of EEG, winsize %g s.",
                ref.name,
                n_volumes,
                eeg.shape[1] / out_sfreq,
                params["winsize"],
            )
        pairs.append(np.column_stack([np.full(len(wp), i), wp.volume, wp.start]))
        rows.append(
            {
                "name": ref.name,
                "subject": ref.subject,
                "task": ref.task,
                "run": ref.run,
                "session": ref.session,
                "n_pairs": len(wp),
                "n_times": int(eeg.shape[1]),
                "n_volumes": int(n_volumes),
                "sfreq_in": float(in_sfreq),
                "files": {k: str(v) for k, v in ref.files.items()},
            }
        )
        del eeg, y
    pairs = np.concatenate(pairs).astype(np.int64)
    if pairs.shape[0] == 0:
        raise ValueError(
            f"no (window, volume) pairs in {len(runs)} run(s) with winsize={params['winsize']} s "
            f"and skip={params['skip']}: every run is too short."
        )
    if params["target"] == "median_ratio":
        _median_ratio_in_place(folder, subjects)
    np.save(folder / "pairs.npy", pairs)
    np.save(folder / "mask.npy", mask)
    shape0, affine0, _ = ref0["grid"]

    meta = {
        "format_version": CACHE_FORMAT_VERSION,
        "fingerprint": fp,
        "params": params,
        "ch_names": ref0["ch_names"],
        "sfreq": float(ref0["sfreq"]),
        "winsize": params["winsize"],
        "n_win": window_samples(params["winsize"], ref0["sfreq"]),
        "t_r": float(ref0["t_r"]),
        "grid_shape": [int(s) for s in shape0],
        "affine": np.asarray(affine0, float).tolist(),
        "target": params["target"],
        "norm": params["norm"],
        "runs": rows,
        "stats": stats,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    (folder / "meta.json").write_text(json.dumps(meta, indent=1))


def _median_ratio_in_place(folder: Path, subjects: list[str]) -> None:
    """Turn each subject's cached in-mask series into ``v / subject median − 1``."""
    for subject in dict.fromkeys(subjects):
        idx = [i for i, s in enumerate(subjects) if s == subject]
        series = [np.load(folder / run_file(i, "targets"), mmap_mode="r+") for i in idx]
        n_total = sum(m.shape[0] for m in series)
        n_vox = series[0].shape[1]
        step = max(1, _MEDIAN_BLOCK_BYTES // (4 * n_total))
        median = np.empty(n_vox, np.float64)
        for b in range(0, n_vox, step):
            block = np.concatenate([m[:, b : b + step] for m in series], axis=0)
            median[b : b + step] = np.median(block, axis=0)
        for k, m in enumerate(series):
            _apply_reference(np.asarray(m), median, "median_ratio", out=m, warn=k == 0)
            m.flush()
        del series


def load_pairs(root_or_runs, **options) -> PairDataset:
    """Open the window cache of a dataset, building it when needed.

    Parameters
    ----------
    root_or_runs : path-like | list of RunRef
        A dataset folder (runs found with ``find_runs``) or the runs themselves.
    **options
        Options of :func:`build_cache` (``sfreq``, ``target``, ...); the others go to
        ``find_runs`` (``subject``, ``task``, ``layout``, reader options).

    Returns
    -------
    dataset : PairDataset
        ``dataset.root`` is the dataset folder when one was given.
    """
    cache_keys = set(inspect.signature(build_cache).parameters) - {"runs"}
    cache_opts = {k: v for k, v in options.items() if k in cache_keys}
    find_opts = {k: v for k, v in options.items() if k not in cache_keys}
    if isinstance(root_or_runs, str | os.PathLike):
        runs = find_runs(root_or_runs, **find_opts)
        if not runs:
            raise ValueError(f"'{root_or_runs}': no runs found (options {find_opts}).")
        dataset = build_cache(runs, **cache_opts)
        dataset.root = Path(root_or_runs)
        return dataset
    if find_opts:
        raise TypeError(f"load_pairs: unknown option(s) {sorted(find_opts)} for a list of runs.")
    return build_cache(list(root_or_runs), **cache_opts)
