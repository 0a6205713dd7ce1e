"""``PairDataset``: (EEG window, BOLD target) pairs read from a memory-mapped window cache.

The dataset holds only per-pair index arrays (run, volume, window start) and lazily
opened memory maps of the cached continuous arrays; a window is sliced from the run's
EEG and normalised with its subject's statistics when it is read, so memory does not
grow with the number of windows. Build or open one with
``rt_eeg2fmri.data.build_cache`` / ``load_pairs``.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np

from .preprocessing import NormStats

_KINDS = {
    "eeg": "_eeg.npy",
    "targets": "_targets.npy",
    "onsets": "_onsets.npy",
    "events": "_events.tsv",
}


def run_file(index: int, kind: str) -> str:
    """File name of run ``index``'s ``kind`` (``eeg``, ``targets``, ``onsets``, ``events``)."""
    return f"run-{index:05d}{_KINDS[kind]}"


class _MemMaps:
    """Lazily opened read-only maps of the cached runs, shared by a dataset's subsets."""

    def __init__(self, path: Path, n_runs: int) -> None:
        self.path = path
        self.n_runs = n_runs
        self._eeg: list = [None] * n_runs
        self._targets: list = [None] * n_runs

    def _open(self, kind: str, r: int) -> np.ndarray:
        # a plain ndarray view of the memmap: cheaper slicing, still backed by the file
        return np.load(self.path / run_file(r, kind), mmap_mode="r").view(np.ndarray)

    def eeg(self, r: int) -> np.ndarray:
        a = self._eeg[r]
        if a is None:
            a = self._eeg[r] = self._open("eeg", r)
        return a

    def targets(self, r: int) -> np.ndarray:
        a = self._targets[r]
        if a is None:
            a = self._targets[r] = self._open("targets", r)
        return a

    def __getstate__(self) -> dict:  # pickled for DataLoader workers: reopen there
        return {"path": self.path, "n_runs": self.n_runs}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["path"], state["n_runs"])


class PairDataset:
    """Training pairs of a window cache.

    Parameters
    ----------
    path : path-like
        A cache folder written by ``build_cache``.
    root : path-like | None
        The dataset folder the cache came from (informational).

    Attributes
    ----------
    ch_names : list of str
    sfreq : float
        Rate of the cached EEG (the model's input rate) in Hz.
    winsize : float
        Window length in seconds.
    n_win : int
        Samples per window.
    t_r : float
    mask : array of shape grid_shape, bool
    affine : array of shape (4, 4)
    grid_shape : tuple of int
    fingerprint : str
        Content fingerprint of the inputs and preprocessing.
    target, norm : str
        Target kind (``psc``/``median_ratio``) and normalisation (``zscore``/``robust``).
    runs : list of dict
        One row per run: ``name, subject, task, run, session, n_pairs, n_times, n_volumes``.
    subject : array of shape (n_pairs,), str
    run_index : array of shape (n_pairs,), int
        Row of ``runs``.
    volume : array of shape (n_pairs,), int
        Volume of the pair within its run.
    start : array of shape (n_pairs,), int
        First EEG sample of the window (at ``sfreq``); the window ends at the end of the
        volume's acquisition, ``volume_times(r)[volume] + t_r``.
    stats : dict of str to NormStats
        Per-subject normalisation statistics (the subjects of this dataset).
    path, root : Path | None
        Cache folder and source dataset folder.
    """

    def __init__(self, path: str | Path, *, root: str | Path | None = None) -> None:
        self.path = Path(path)
        meta_path = self.path / "meta.json"
        try:
            meta = json.loads(meta_path.read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"not a window cache (no meta.json): '{self.path}'.") from None
        self.root = None if root is None else Path(root)
        self.fingerprint: str = meta["fingerprint"]
        self.params: dict = meta["params"]
        self.ch_names: list[str] = list(meta["ch_names"])
        self.sfreq = float(meta["sfreq"])
        self.winsize = float(meta["winsize"])
        self.n_win = int(meta["n_win"])
        self.t_r = float(meta["t_r"])
        self.grid_shape = tuple(int(s) for s in meta["grid_shape"])
        self.affine = np.asarray(meta["affine"], dtype=np.float64)
        self.target: str = meta["target"]
        self.norm: str = meta["norm"]
        self.runs: list[dict] = [
            {k: v for k, v in row.items() if k != "files"} for row in meta["runs"]
        ]
        self.mask = np.load(self.path / "mask.npy")
        pairs = np.load(self.path / "pairs.npy")
        self.run_index = np.ascontiguousarray(pairs[:, 0])
        self.volume = np.ascontiguousarray(pairs[:, 1])
        self.start = np.ascontiguousarray(pairs[:, 2])
        run_subject = np.array([row["subject"] for row in self.runs])
        self.subject = run_subject[self.run_index]
        self.stats = {s: NormStats.from_dict(d) for s, d in meta["stats"].items()}
        # per-run float32 normalisation, gathered per batch with the pairs' run index
        self._center = np.stack([self.stats[s].center for s in run_subject]).astype(np.float32)
        self._scale = np.stack([self.stats[s].scale for s in run_subject]).astype(np.float32)
        self._maps = _MemMaps(self.path, len(self.runs))
        self._torch = False

    # -- size ----------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.run_index.size)

    @property
    def n_channels(self) -> int:
        """Number of EEG channels."""
        return len(self.ch_names)

    @property
    def n_vox(self) -> int:
        """Voxels per target (in the mask)."""
        return int(self.mask.sum())

    def __repr__(self) -> str:
        return (
            f"<PairDataset {len(self)} pairs | {len(self.runs)} runs, "
            f"{len(np.unique(self.subject))} subjects | {self.n_channels} ch × {self.n_win} "
            f"samples @ {self.sfreq:g} Hz → {self.n_vox} voxels ({self.target}, {self.norm})>"
        )

    # -- reading -------------------------------------------------------------------------
    def get_batch(self, indices, *, out=None) -> tuple[np.ndarray, np.ndarray]:
        """Normalised windows and targets of ``indices``.

        Parameters
        ----------
        indices : array-like of int, shape (B,)
        out : tuple of arrays (X, Y) | None
            Preallocated float32 arrays of shape (≥B, n_channels, n_win) and (≥B, n_vox)
            to fill (their first B rows are returned).

        Returns
        -------
        X : array of shape (B, n_channels, n_win), float32
        Y : array of shape (B, n_vox), float32
        """
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        b = idx.size
        if out is None:
            X = np.empty((b, self.n_channels, self.n_win), np.float32)
            Y = np.empty((b, self.n_vox), np.float32)
        else:
            X, Y = out[0][:b], out[1][:b]
            if X.shape != (b, self.n_channels, self.n_win) or Y.shape != (b, self.n_vox):
                raise ValueError(
                    f"get_batch: 'out' arrays of shape {out[0].shape}, {out[1].shape} cannot "
                    f"hold {b} pairs of ({self.n_channels}, {self.n_win}) and ({self.n_vox},)."
                )
        runs, vols, starts = self.run_index[idx], self.volume[idx], self.start[idx]
        n_win, maps = self.n_win, self._maps
        for j in range(b):
            r, s = int(runs[j]), int(starts[j])
            X[j] = maps.eeg(r)[:, s : s + n_win]
            Y[j] = maps.targets(r)[vols[j]]
        X -= self._center[runs][:, :, None]
        X /= self._scale[runs][:, :, None]
        return X, Y

    def get_targets(self, indices) -> np.ndarray:
        """Targets of ``indices`` as an array of shape (B, n_vox), float32 (no EEG read)."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        Y = np.empty((idx.size, self.n_vox), np.float32)
        runs, vols = self.run_index[idx], self.volume[idx]
        for j in range(idx.size):
            Y[j] = self._maps.targets(int(runs[j]))[vols[j]]
        return Y

    def __getitem__(self, i):
        """Pair ``i``: ``(x (n_channels, n_win), y (n_vox,))``, numpy or torch (``as_torch``)."""
        n = len(self)
        i = int(i)
        if not -n <= i < n:
            raise IndexError(f"pair index {i} out of range for {n} pairs.")
        X, Y = self.get_batch([i % n])
        if self._torch:
            import torch

            return torch.from_numpy(X[0]), torch.from_numpy(Y[0])
        return X[0], Y[0]

    def as_torch(self) -> PairDataset:
        """A view whose ``__getitem__`` returns torch tensors (for ``torch.utils.data``)."""
        view = copy.copy(self)
        view._torch = True
        return view

    # -- selections ----------------------------------------------------------------------
    def subset(self, *, subjects=None, exclude_subjects=None, runs=None) -> PairDataset:
        """Pairs of some subjects and/or runs; shares the memory maps (no copies of data).

        Parameters
        ----------
        subjects, exclude_subjects : iterable of str | None
            Subject identifiers (``"01"``; numbers compare as integers).
        runs : iterable of int | str | None
            Run indices (rows of ``runs``) or names (``sub-01_task-x_run-1``).

        Returns
        -------
        dataset : PairDataset
            ``run_index`` keeps pointing at rows of the full ``runs`` table.
        """
        keep = np.ones(len(self), bool)
        known = sorted({row["subject"] for row in self.runs})
        if subjects is not None:
            keep &= np.isin(self.subject, self._subjects(subjects, known, "subjects"))
        if exclude_subjects is not None:
            drop = self._subjects(exclude_subjects, known, "exclude_subjects")
            keep &= ~np.isin(self.subject, drop)
        if runs is not None:
            keep &= np.isin(self.run_index, self._run_indices(runs))
        view = copy.copy(self)
        for name in ("run_index", "volume", "start", "subject"):
            setattr(view, name, getattr(self, name)[keep])
        view.stats = {s: st for s, st in self.stats.items() if s in set(view.subject.tolist())}
        return view

    @staticmethod
    def _subjects(wanted, known: list[str], what: str) -> list[str]:
        wanted = [wanted] if isinstance(wanted, str | int) else list(wanted)
        out = []
        for w in wanted:
            hits = [
                k
                for k in known
                if k == str(w) or (k.isdigit() and str(w).isdigit() and int(k) == int(w))
            ]
            if not hits:
                raise ValueError(f"'{what}': unknown subject {w!r}; subjects: {known}.")
            out += hits
        return out

    def _run_indices(self, runs) -> list[int]:
        runs = [runs] if isinstance(runs, str | int) else list(runs)
        names = [row["name"] for row in self.runs]
        out = []
        for r in runs:
            if isinstance(r, str):
                if r not in names:
                    raise ValueError(f"'runs': unknown run {r!r}; runs: {names}.")
                out.append(names.index(r))
            else:
                if not 0 <= int(r) < len(names):
                    raise ValueError(f"'runs': run index {r} out of range for {len(names)} runs.")
                out.append(int(r))
        return out

    # -- statistics and run-level tables -------------------------------------------------
    def pooled_stats(self) -> NormStats:
        """Normalisation statistics pooled over this dataset's subjects (checkpoint default)."""
        return NormStats.pooled(self.stats[s] for s in sorted(self.stats))

    def _check_run(self, run_index: int) -> int:
        r = int(run_index)
        if not 0 <= r < len(self.runs):
            raise ValueError(f"'run_index' {run_index} out of range for {len(self.runs)} runs.")
        return r

    def events(self, run_index: int):
        """The run's events table (``onset``, ``duration``, ``trial_type``; s on the EEG clock)."""
        import pandas as pd

        path = self.path / run_file(self._check_run(run_index), "events")
        events = pd.read_csv(path, sep="\t", dtype={"trial_type": str}, keep_default_na=False)
        for col in ("onset", "duration"):
            events[col] = pd.to_numeric(events[col], errors="coerce")
        return events

    def volume_times(self, run_index: int) -> np.ndarray:
        """Acquisition onsets of the run's volumes, shape (n_volumes,), s on the EEG clock."""
        return np.load(self.path / run_file(self._check_run(run_index), "onsets"))

    def data_nbytes(self) -> int:
        """Bytes of the cached continuous arrays of all runs (EEG + targets)."""
        total = 0
        for r in range(len(self.runs)):
            for kind in ("eeg", "targets"):
                a = np.load(self.path / run_file(r, kind), mmap_mode="r")
                total += a.nbytes
                del a
        return total
