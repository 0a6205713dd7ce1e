"""``PairDataset``: (EEG window, BOLD target) pairs read from a memory-mapped window cache.

The dataset holds only per-pair index arrays (run, volume, window start) and lazily
opened memory maps of the cached continuous arrays; a window is sliced from the run's
EEG and normalised (:meth:`~rt_eeg2fmri.data.norm.NormStats.apply`) with its subject's
statistics — or one given set, :meth:`PairDataset.with_stats` — when it is read, so
memory does not grow with the number of windows. Build or open one with
``rt_eeg2fmri.data.build_cache`` / ``load_pairs``.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np

from .norm import NormStats
from .preprocessing import HasPreprocessing, Preprocessing

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


class PairDataset(HasPreprocessing):
    """Training pairs of a window cache.

    Parameters
    ----------
    path : path-like
        A cache folder written by ``build_cache``.
    root : path-like | None
        The dataset folder the cache came from (informational).

    Attributes
    ----------
    preprocessing : Preprocessing
        The resolved record the cache was built with (``sfreq``: the cached EEG's rate).
    ch_names : list of str
    sfreq : float
        Rate of the cached EEG (the model's input rate) in Hz.
    winsize : float
        Window length in seconds.
    n_times : int
        Samples per window.
    t_r : float
        Repetition time of the first run (the checkpoint's); :meth:`run_t_r` gives each run's.
    mask : array of shape grid_shape, bool
    affine : array of shape (4, 4)
    grid_shape : tuple of int
    fingerprint : str
        Content fingerprint of the inputs and preprocessing.
    runs : list of dict
        One row per run: ``name, subject, task, run, session, n_pairs, n_times, n_volumes,
        sfreq_in, t_r``.
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
    norm_stats : NormStats | None
        One set of statistics applied to every window instead of each subject's own
        (:meth:`with_stats`); ``None``: each subject's.
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
        self.preprocessing = Preprocessing.from_dict(meta["preprocessing"])
        self.ch_names: list[str] = list(meta["ch_names"])
        self.t_r = float(meta["t_r"])
        self.grid_shape = tuple(int(s) for s in meta["grid_shape"])
        self.affine = np.asarray(meta["affine"], dtype=np.float64)
        self.runs: list[dict] = [
            {k: v for k, v in row.items() if k != "files"} for row in meta["runs"]
        ]
        #: Each run's source files (EEG, BOLD, sidecars), by kind.
        self.run_files: list[dict] = [dict(row.get("files", {})) for row in meta["runs"]]
        self.mask = np.load(self.path / "mask.npy")
        pairs = np.load(self.path / "pairs.npy")
        self.run_index = np.ascontiguousarray(pairs[:, 0])
        self.volume = np.ascontiguousarray(pairs[:, 1])
        self.start = np.ascontiguousarray(pairs[:, 2])
        run_subject = np.array([row["subject"] for row in self.runs])
        self.subject = run_subject[self.run_index]
        self.stats = {s: NormStats.from_dict(d) for s, d in meta["stats"].items()}
        self._run_stats = [self.stats[s] for s in run_subject]
        self.norm_stats: NormStats | None = None
        self._maps = _MemMaps(self.path, len(self.runs))
        self._torch = False

    # -- size ----------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.run_index.size)

    @property
    def n_times(self) -> int:
        """Samples per window."""
        return self.preprocessing.n_times

    @property
    def target(self) -> str:
        """Target kind (``psc`` or ``median_ratio``)."""
        return self.preprocessing.target

    @property
    def n_chans(self) -> int:
        """Number of EEG channels."""
        return len(self.ch_names)

    @property
    def n_voxels(self) -> int:
        """Voxels per target (in the mask)."""
        return int(self.mask.sum())

    def __repr__(self) -> str:
        return (
            f"<PairDataset {len(self)} pairs | {len(self.runs)} runs, "
            f"{len(np.unique(self.subject))} subjects | {self.n_chans} ch × {self.n_times} "
            f"samples → {self.n_voxels} voxels | {self.preprocessing.describe()}>"
        )

    # -- reading -------------------------------------------------------------------------
    def get_batch(self, indices, *, out=None) -> tuple[np.ndarray, np.ndarray]:
        """Normalised windows and targets of ``indices``.

        Parameters
        ----------
        indices : array-like of int, shape (B,)
        out : tuple of arrays (X, Y) | None
            Preallocated float32 arrays of shape (≥B, n_chans, n_times) and (≥B, n_voxels)
            to fill (their first B rows are returned).

        Returns
        -------
        X : array of shape (B, n_chans, n_times), float32
            Each window normalised with its subject's statistics, or with ``norm_stats``.
        Y : array of shape (B, n_voxels), float32
        """
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        b, n_chans, n_times, n_voxels = idx.size, self.n_chans, self.n_times, self.n_voxels
        if out is None:
            X = np.empty((b, n_chans, n_times), np.float32)
            Y = np.empty((b, n_voxels), np.float32)
        else:
            X, Y = out[0][:b], out[1][:b]
            if X.shape != (b, n_chans, n_times) or Y.shape != (b, n_voxels):
                raise ValueError(
                    f"get_batch: 'out' arrays of shape {out[0].shape}, {out[1].shape} cannot "
                    f"hold {b} pairs of ({n_chans}, {n_times}) and ({n_voxels},)."
                )
        runs, vols, starts = self.run_index[idx], self.volume[idx], self.start[idx]
        maps, fixed = self._maps, self.norm_stats
        for j in range(b):
            r, s = int(runs[j]), int(starts[j])
            stats = fixed if fixed is not None else self._run_stats[r]
            stats.apply(maps.eeg(r)[:, s : s + n_times], out=X[j])
            Y[j] = maps.targets(r)[vols[j]]
        return X, Y

    def get_targets(self, indices) -> np.ndarray:
        """Targets of ``indices`` as an array of shape (B, n_voxels), float32 (no EEG read)."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        Y = np.empty((idx.size, self.n_voxels), np.float32)
        runs, vols = self.run_index[idx], self.volume[idx]
        for j in range(idx.size):
            Y[j] = self._maps.targets(int(runs[j]))[vols[j]]
        return Y

    def __getitem__(self, i):
        """Pair ``i``: ``(x (n_chans, n_times), y (n_voxels,))``, numpy or torch (``as_torch``)."""
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

    def with_stats(self, norm_stats: NormStats | None) -> PairDataset:
        """A view whose windows are all normalised with ``norm_stats`` (``None``: each subject's).

        What a checkpoint sees when streamed without calibration: its own pooled training
        statistics (``Checkpoint.norm_stats``).
        """
        if norm_stats is not None:
            if [c.lower() for c in norm_stats.ch_names] != [c.lower() for c in self.ch_names]:
                raise ValueError(
                    f"with_stats: the statistics are for channels {norm_stats.ch_names}, the "
                    f"data has {self.ch_names}."
                )
        view = copy.copy(self)
        view.norm_stats = norm_stats
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

    def match_runs(self, specs) -> list[int]:
        """Rows of ``runs`` that match any of ``specs``.

        Parameters
        ----------
        specs : str | list of str
            A run number (``"2"``, compared as an integer: ``run-02`` matches) or BIDS
            entities that must all be in the run's name (``"task-visual_run-1"``,
            ``"sub-03"``).

        Returns
        -------
        indices : list of int
        """
        specs = [specs] if isinstance(specs, str | int) else list(specs)
        out = []
        for spec in specs:
            spec = str(spec).strip()
            hits = [
                i
                for i, row in enumerate(self.runs)
                if (
                    spec.isdigit() and (row["run"] or "").isdigit() and int(row["run"]) == int(spec)
                )
                or set(spec.split("_")) <= set(row["name"].split("_"))
            ]
            if not hits:
                names = [row["name"] for row in self.runs]
                raise ValueError(f"'runs': no run matches {spec!r}; runs: {names}.")
            out += [i for i in hits if i not in out]
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
        events = pd.read_csv(
            path, sep="\t", dtype={"trial_type": str, "value": str}, keep_default_na=False
        )
        for col in ("onset", "duration"):
            events[col] = pd.to_numeric(events[col], errors="coerce")
        return events

    def run_eeg(self, run_index: int) -> np.ndarray:
        """The run's cached EEG, shape (n_chans, n_times), volts, not normalised (read-only)."""
        return self._maps.eeg(self._check_run(run_index))

    def run_t_r(self, run_index: int) -> float:
        """The run's repetition time in s (pooled datasets may mix TRs; ``t_r`` is the first's)."""
        return float(self.runs[self._check_run(run_index)].get("t_r", self.t_r))

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
