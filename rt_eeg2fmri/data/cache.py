"""The on-disk window cache: preprocessed continuous runs, memory-mapped for training.

``build_cache`` loads one run at a time, runs it through the two chains of a
:class:`~rt_eeg2fmri.data.preprocessing.Preprocessing` record (the
:class:`~rt_eeg2fmri.data.eeg_chain.EEGChain` the live stream runs too, and the
:class:`~rt_eeg2fmri.data.bold.BoldChain` of the targets) and writes continuous ``.npy``
arrays that ``PairDataset`` opens with ``np.load(mmap_mode="r")``. The folder is named by
a content fingerprint (the input files' bytes, the resolved record, the mask, the warm-up
and :data:`CACHE_FORMAT_VERSION`); a cache that other code built (:func:`code_version` of
the modules in :data:`CODE`) is rebuilt. It appears atomically (built in a temporary
folder, then renamed), so a build that is interrupted is never trusted, and a second call
with the same inputs reuses the cache without loading anything.

Layout of a cache folder::

    meta.json               preprocessing, channels, grid, runs table, per-subject stats
    mask.npy                (n_x, n_y, n_z) bool
    pairs.npy               (n_pairs, 3) int64: run index, volume, window start sample
    run-00000_eeg.npy       (n_chans, n_times) float32, volts, not normalised
    run-00000_targets.npy   (n_volumes, n_voxels) float32
    run-00000_onsets.npy    (n_volumes,) float64, s on the EEG clock
    run-00000_events.tsv    onset, duration, trial_type
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import os
import shutil
import time
import uuid
from pathlib import Path

import numpy as np

from .._logging import log_once, logger
from .bold import coverage, default_mask
from .dataset import RunRef, find_pooled_runs, grid_mismatch
from .eeg_chain import EEGChain
from .norm import _Accumulator
from .pairs import PairDataset, run_file
from .preprocessing import Preprocessing
from .windows import span_samples, window_pairs

CACHE_FORMAT_VERSION = 3  # 2: the EEG chain (streaming resampler, causal band-pass)
# 3: windows that overlap spans annotated bad are left out
#: The code that makes a cache's contents (package-relative): a cache built by other code
#: (an upgrade, a fix) is rebuilt, not reused
CODE = ("data", "realtime/gradient.py", "realtime/pulse.py", "hrf.py", "grid.py")
_HASH_BLOCK = 1 << 20  # 1 MiB
_MEDIAN_BLOCK_BYTES = 64 << 20  # bound of the per-subject median working set


# -- fingerprint ---------------------------------------------------------------------------
@functools.cache
def code_version() -> str:
    """Hash of the source of :data:`CODE`: what read, corrected and preprocessed the data."""
    root = Path(__file__).resolve().parents[1]
    h = hashlib.blake2b(digest_size=10)
    for rel in CODE:
        path = root / rel
        for f in sorted(path.glob("*.py")) if path.is_dir() else [path]:
            h.update(f.relative_to(root).as_posix().encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


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
    if any("live" in str(ref.options.get("correct") or "") for ref in runs):
        from .correct import LIVE_VERSION  # EEG read through the live corrections' code

        h.update(f"live-corrections {LIVE_VERSION}".encode())
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


# -- building ------------------------------------------------------------------------------
def _cache_meta(folder: Path) -> dict | None:
    try:
        return json.loads((folder / "meta.json").read_text())
    except (OSError, ValueError):
        return None


def _cache_valid(folder: Path, fp: str) -> bool:
    meta = _cache_meta(folder)
    if meta is None or meta.get("fingerprint") != fp:
        return False
    if meta.get("format_version") != CACHE_FORMAT_VERSION or meta.get("code") != code_version():
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
    preprocessing: Preprocessing | None = None,
    ch_names=None,
    root: str | Path | None = None,
    mask=None,
    skip: int | None = None,
    progress: bool = True,
) -> PairDataset:
    """Preprocess runs into a memory-mapped cache (or reuse it) and open it.

    Parameters
    ----------
    runs : list of RunRef
        The runs, in the order of ``PairDataset.runs``; one is loaded at a time.
    preprocessing : Preprocessing | None
        What the EEG and the targets go through (default ``Preprocessing()``); an unset
        ``sfreq`` is resolved to the first run's rate before the fingerprint is made, so
        training and ``evaluate`` of a checkpoint share one cache. For
        ``target="median_ratio"`` the subject median is exact: once all runs are
        written, it is computed over all the subject's volumes in voxel blocks (working
        set ≤ 64 MB) from the cached arrays, which are then rewritten in place.
    ch_names : list of str | None
        The channels cached, in this order (a model's); default: the first run's.
    root : path-like | None
        Folder holding caches (default ``rt_eeg2fmri.grid.cache_dir() / "pairs"``).
    mask : array of shape (n_x, n_y, n_z) | path-like | None
        Voxels kept. Default: :func:`~rt_eeg2fmri.data.bold.default_mask` of the first run.
    skip : int | None
        Warm-up volumes dropped per run (default ``ceil(winsize / t_r)``).
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
    pre = Preprocessing() if preprocessing is None else preprocessing
    if not isinstance(pre, Preprocessing):
        raise TypeError(f"build_cache: 'preprocessing' must be a Preprocessing, got {pre!r}.")
    header = runs[0].header()
    pre = pre.resolve(header.sfreq)
    ch_names = list(header.ch_names if ch_names is None else ch_names)
    if skip is not None and int(skip) < 0:
        raise ValueError(f"'skip' must be >= 0, got {skip=}.")
    mask_arr = None if mask is None else _mask_array(mask)
    params = {
        "preprocessing": pre.to_dict(),
        "ch_names": ch_names,
        "mask": _mask_key(mask_arr),
        "skip": None if skip is None else int(skip),
    }
    from ..grid import cache_dir

    cache_root = Path(root) if root is not None else cache_dir() / "pairs"
    cache_root.mkdir(parents=True, exist_ok=True)
    fp = fingerprint(runs, params, memo_path=cache_root / "file-hashes.json")
    final = cache_root / fp
    if _cache_valid(final, fp):
        logger.info("Reusing the window cache '%s'.", final)
        return PairDataset(final)
    if final.exists():
        meta = _cache_meta(final) or {}
        if meta.get("fingerprint") == fp and meta.get("code") != code_version():
            logger.info(
                "Rebuilding the window cache '%s': another version of the preprocessing "
                "code built it.",
                final,
            )
        else:
            logger.warning("Rebuilding the incomplete or unreadable cache '%s'.", final)
        stale = cache_root / f".stale-{fp}-{uuid.uuid4().hex[:8]}"
        os.replace(final, stale)
        shutil.rmtree(stale, ignore_errors=True)
    _clean_stale_tmp(cache_root, fp)
    tmp = cache_root / f".tmp-{fp}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    t0 = time.perf_counter()
    try:
        _write(runs, tmp, pre=pre, params=params, mask=mask_arr, fp=fp, progress=progress)
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


def _write(
    runs, folder: Path, *, pre: Preprocessing, params: dict, mask, fp: str, progress: bool
) -> None:
    from tqdm.auto import tqdm

    from ..grid import same_grid

    subjects = [r.subject for r in runs]
    last_of = {s: i for i, s in enumerate(subjects)}
    bold_chain = pre.bold_chain()
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
                "grid": (session.grid_shape, session.affine, session.source.get("bold")),
                "t_r": session.t_r,
            }
            if mask is None:
                mask, how = default_mask(session)
                logger.info("Mask: %s (%d voxels).", how, int(mask.sum()))
            if mask.shape != session.grid_shape:
                raise ValueError(
                    f"'mask' has shape {mask.shape}, but the BOLD grid of {where} is "
                    f"{session.grid_shape}."
                )
        shape0, affine0, bold0 = ref0["grid"]
        if not same_grid(shape0, affine0, session.grid_shape, session.affine):
            raise ValueError(
                grid_mismatch(
                    (shape0, affine0, bold0, ref0["name"]),
                    (session.grid_shape, session.affine, session.source.get("bold"), ref.name),
                )
            )
        if abs(session.t_r - ref0["t_r"]) > 1e-6 * ref0["t_r"]:
            _warn_pooled_tr(where, session.t_r, ref0)
        uncovered = int((mask & ~coverage(session.bold)).sum())
        if uncovered:
            raise ValueError(
                f"{where}: its BOLD leaves {uncovered} of the mask's {int(mask.sum())} voxels "
                f"at zero (partial coverage: a slab, or another field of view than "
                f"{ref0['name']}); give a mask that every run covers (train --mask FILE)."
            )
        chain = EEGChain.for_session(pre, session, ch_names=params["ch_names"])
        # BOLD first, so the 4-D series is freed before the EEG is filtered
        y = bold_chain.series(session.bold, mask, affine=session.affine)
        if pre.target == "psc":  # median_ratio: once the subject's median is known
            bold_chain.targets(y, t_r=session.t_r, out=y)
        in_sfreq, onsets, events, t_r, bad = (
            session.sfreq,
            session.volume_onsets,
            session.events,
            session.t_r,
            session.bad_spans,
        )
        n_volumes, raw = session.n_volumes, session.eeg
        del session
        eeg = chain.run(raw)
        del raw
        acc = accs.setdefault(ref.subject, _Accumulator(pre.norm))
        acc.update(_good_samples(eeg, bad, pre.sfreq))
        if last_of[ref.subject] == i:
            stats[ref.subject] = accs.pop(ref.subject).result(params["ch_names"]).to_dict()
        np.save(folder / run_file(i, "eeg"), np.ascontiguousarray(eeg, dtype=np.float32))
        np.save(folder / run_file(i, "targets"), y)
        np.save(folder / run_file(i, "onsets"), np.asarray(onsets, dtype=np.float64))
        events.to_csv(folder / run_file(i, "events"), sep="\t", index=False)
        grid = dict(t_r=t_r, sfreq=pre.sfreq, n_times=eeg.shape[1], winsize=pre.winsize,
                    skip=params["skip"])  # fmt: skip
        wp = window_pairs(onsets, **grid, bad_spans=bad)
        n_bad = 0
        if bad is not None and len(bad):
            every = window_pairs(onsets, **grid)
            n_bad = len(every) - len(wp)
            logger.info(
                "%s: %d of %d windows overlap spans annotated bad (%.1f s in all) and are "
                "left out.", ref.name, n_bad, len(every), float(np.sum(bad[:, 1] - bad[:, 0])),
            )  # fmt: skip
        if len(wp) == 0:
            logger.warning(
                "%s gives no (window, volume) pair: %d volumes, %.1f s of EEG, winsize %g s.",
                ref.name,
                n_volumes,
                eeg.shape[1] / pre.sfreq,
                pre.winsize,
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
                "n_bad_windows": n_bad,
                "n_times": int(eeg.shape[1]),
                "n_volumes": int(n_volumes),
                "sfreq_in": float(in_sfreq),
                "t_r": float(t_r),
                "files": {k: str(v) for k, v in ref.files.items()},
            }
        )
        del eeg, y
    pairs = np.concatenate(pairs).astype(np.int64)
    if pairs.shape[0] == 0:
        raise ValueError(
            f"no (window, volume) pairs in {len(runs)} run(s) with winsize={pre.winsize} s "
            f"and skip={params['skip']}: every run is too short."
        )
    if pre.target == "median_ratio":
        _median_ratio_in_place(folder, subjects, bold_chain, t_rs=[row["t_r"] for row in rows])
    np.save(folder / "pairs.npy", pairs)
    np.save(folder / "mask.npy", mask)
    shape0, affine0, _ = ref0["grid"]
    meta = {
        "format_version": CACHE_FORMAT_VERSION,
        "code": code_version(),
        "fingerprint": fp,
        "params": params,
        "preprocessing": pre.to_dict(),
        "ch_names": params["ch_names"],
        "t_r": float(ref0["t_r"]),
        "grid_shape": [int(s) for s in shape0],
        "affine": np.asarray(affine0, float).tolist(),
        "runs": rows,
        "stats": stats,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    (folder / "meta.json").write_text(json.dumps(meta, indent=1))


def _good_samples(eeg: np.ndarray, bad: np.ndarray | None, sfreq: float) -> np.ndarray:
    """``eeg`` without the samples of spans annotated bad (for the normalisation statistics)."""
    if bad is None or not len(bad):
        return eeg
    keep = np.ones(eeg.shape[1], bool)
    for a, b in span_samples(bad, sfreq):
        keep[max(0, a) : max(0, b)] = False
    return eeg[:, keep]


def _warn_pooled_tr(where: str, t_r: float, ref0: dict) -> None:
    """Runs of several TRs pool (each run's pairs and targets use its own TR); say so once."""
    log_once(
        ("pooled-tr", ref0["name"], float(t_r)),
        "%s: RepetitionTime %g s differs from %g s of the first run (%s); each run's "
        "windows end at its own volumes, and checkpoints record the first run's TR.",
        where,
        t_r,
        ref0["t_r"],
        ref0["name"],
    )


def _median_ratio_in_place(folder: Path, subjects: list[str], chain, *, t_rs: list) -> None:
    """Turn each subject's cached in-mask series into targets against the subject median."""
    for subject in dict.fromkeys(subjects):
        idx = [i for i, s in enumerate(subjects) if s == subject]
        series = [np.load(folder / run_file(i, "targets"), mmap_mode="r+") for i in idx]
        n_total = sum(m.shape[0] for m in series)
        n_voxels = series[0].shape[1]
        step = max(1, _MEDIAN_BLOCK_BYTES // (4 * n_total))
        median = np.empty(n_voxels, np.float64)
        for b in range(0, n_voxels, step):
            block = np.concatenate([m[:, b : b + step] for m in series], axis=0)
            median[b : b + step] = np.median(block, axis=0)
        for i, m in zip(idx, series, strict=True):
            chain.targets(np.asarray(m), t_r=t_rs[i], reference=median, out=m)
            m.flush()
        del series


def load_pairs(root_or_runs, **options) -> PairDataset:
    """Open the window cache of a dataset, building it when needed.

    Parameters
    ----------
    root_or_runs : path-like | list of path-like | list of RunRef
        A dataset folder (runs found with ``find_runs``), several folders pooled into one
        cache (:func:`~rt_eeg2fmri.data.dataset.find_pooled_runs`: subjects keep their
        dataset's prefix), or the runs themselves.
    **options
        Options of :func:`build_cache` (``preprocessing``, ``mask``, ...); the others go
        to ``find_runs`` (``subject``, ``task``, ``layout``, reader options).

    Returns
    -------
    dataset : PairDataset
        ``dataset.root`` is the dataset folder when one was given (``None`` when pooled).
    """
    cache_keys = set(inspect.signature(build_cache).parameters) - {"runs"}
    cache_opts = {k: v for k, v in options.items() if k in cache_keys}
    find_opts = {k: v for k, v in options.items() if k not in cache_keys}
    roots = root_or_runs
    if isinstance(roots, str | os.PathLike):
        roots = [roots]
    roots = list(roots)
    if roots and all(isinstance(r, str | os.PathLike) for r in roots):
        runs = find_pooled_runs(roots, **find_opts)
        if not runs:
            where = roots[0] if len(roots) == 1 else [str(r) for r in roots]
            raise ValueError(f"'{where}': no runs found (options {find_opts}).")
        dataset = build_cache(runs, **cache_opts)
        dataset.root = Path(roots[0]) if len(roots) == 1 else None
        return dataset
    if find_opts:
        raise TypeError(f"load_pairs: unknown option(s) {sorted(find_opts)} for a list of runs.")
    return build_cache(roots, **cache_opts)
