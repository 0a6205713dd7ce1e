"""Dataset discovery: find the runs of a dataset on disk and load them one at a time.

A dataset is a folder in one of the supported layouts (``"bids"``, ``"ds000116"``);
``find_runs`` lists its runs as lightweight ``RunRef`` descriptors so that callers can
stream over a large dataset without holding more than one run in memory.
``RunRef.header()`` reads only file headers (channel names, rates, grid, volume timing),
cheap enough to plan memory or check grids before loading anything.
"""

from __future__ import annotations

import dataclasses
import importlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._checks import check_option
from .session import Session, bids_name

LAYOUTS = ("bids", "ds000116")
SELECTION = ("subject", "task", "run", "session")


@dataclass(frozen=True)
class RunInfo:
    """Header-level facts about one run (no samples read).

    Attributes
    ----------
    ch_names : list of str
        EEG channels that loading keeps.
    sfreq : float
    n_times : int
        EEG samples.
    t_r : float
    n_volumes : int
        BOLD volumes kept (dummy scans dropped).
    grid_shape : tuple of int
        Spatial shape of the BOLD grid (RAS+).
    affine : array of shape (4, 4)
    volume_onsets : array of shape (n_volumes,)
        Seconds on the EEG clock.
    n_markers : int
        Scanner markers found in the EEG (0: onsets come from the TR).
    files : dict
        The run's files.
    marker_hint : str
        Without markers: where the scanner's triggers may be instead (a stim channel, a
        trigger lead) and the ``marker`` to try; "" when nothing suggests one.
    """

    ch_names: list
    sfreq: float
    n_times: int
    t_r: float
    n_volumes: int
    grid_shape: tuple
    affine: np.ndarray
    volume_onsets: np.ndarray
    n_markers: int = 0
    files: dict = field(default_factory=dict)
    marker_hint: str = ""

    @property
    def voxel_size(self) -> tuple[float, float, float]:
        """Voxel edge lengths in mm."""
        return tuple(float(v) for v in np.sqrt((self.affine[:3, :3] ** 2).sum(axis=0)))


@dataclass(frozen=True)
class RunRef:
    """One run of a dataset on disk, not yet loaded.

    Attributes
    ----------
    layout : str
        ``"bids"`` or ``"ds000116"``.
    subject, task : str
        Identifiers without BIDS prefixes (``"01"``, ``"auditory"``).
    run, session : str | None
    files : dict of str to Path
        The files this run is read from (``"eeg"``, ``"bold"``, ``"events"``, ...); their
        contents make the run's fingerprint. A missing file is absent from the dict
        (``load`` then raises ``FileNotFoundError`` naming what was looked for).
    options : dict
        Reader options (marker name, dummy scans, ...), passed back to the reader on load.
    """

    layout: str
    subject: str
    task: str
    run: str | None = None
    session: str | None = None
    files: dict = field(default_factory=dict, hash=False, compare=False)
    options: dict = field(default_factory=dict, hash=False, compare=False)

    @property
    def name(self) -> str:
        """BIDS-style identifier, e.g. ``sub-01_task-auditory_run-1``."""
        return bids_name(self.subject, self.task, self.run, self.session)

    def _reader(self):
        check_option(self.layout, "layout", LAYOUTS)
        return importlib.import_module(f"{__package__}.{self.layout}")

    def load(self) -> Session:
        """Read the run from disk into a validated ``Session``."""
        return self._reader().load_run(self)

    def header(self) -> RunInfo:
        """Read the run's headers only (no EEG samples, no BOLD voxels)."""
        return self._reader().read_header(self)


def detect_layout(root: str | Path) -> str:
    """Return ``"bids"`` or ``"ds000116"`` from the folder's contents.

    BIDS: a ``dataset_description.json`` or ``sub-*/`` folders holding ``eeg/`` or
    ``func/`` (possibly under ``ses-*/``). ds000116: ``subNNN/`` folders holding ``EEG/``
    or ``BOLD/``.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset folder not found: '{root}'.")
    if (root / "dataset_description.json").is_file():
        return "bids"
    for sub in root.glob("sub-*"):
        for folder in (sub, *sub.glob("ses-*")):
            if (folder / "eeg").is_dir() or (folder / "func").is_dir():
                return "bids"
    for sub in root.glob("sub*"):
        if sub.name[3:].isdigit() and ((sub / "EEG").is_dir() or (sub / "BOLD").is_dir()):
            return "ds000116"
    raise ValueError(
        f"'{root}' is not a recognised dataset: expected BIDS (dataset_description.json or "
        "sub-*/[ses-*/]eeg|func/) or the ds000116 legacy layout (subNNN/EEG, subNNN/BOLD)."
    )


def _same_id(have: str | None, want) -> bool:
    if have is None:
        return False
    want = str(want)
    return have == want or (have.isdigit() and want.isdigit() and int(have) == int(want))


def _matches(ref: RunRef, selection: dict) -> bool:
    def ok(value, want) -> bool:
        if isinstance(want, list | tuple | set):
            return any(_same_id(value, w) for w in want)
        return _same_id(value, want)

    return all(ok(getattr(ref, key), want) for key, want in selection.items())


def find_runs(root: str | Path, *, layout: str = "auto", **options) -> list[RunRef]:
    """List the runs of the dataset at ``root``.

    Parameters
    ----------
    root : path-like
        Dataset folder.
    layout : ``"auto"`` | ``"bids"`` | ``"ds000116"``
        ``"auto"`` detects the layout from the folder's contents.
    **options
        ``subject``, ``task``, ``run``, ``session`` select runs (numbers compare as
        integers: ``run=1`` matches ``run-01``; a list selects any of its values); every other option goes to the reader
        (see ``rt_eeg2fmri.data.bids.find_runs`` and ``rt_eeg2fmri.data.ds000116.find_runs``).

    Returns
    -------
    runs : list of RunRef
        Sorted by subject, session, task, run.
    """
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"dataset folder not found: '{root}'.")
    layout = detect_layout(root) if layout == "auto" else check_option(layout, "layout", LAYOUTS)
    selection = {k: options.pop(k) for k in SELECTION if options.get(k) is not None}
    for k in SELECTION:
        options.pop(k, None)
    reader = importlib.import_module(f"{__package__}.{layout}")
    runs = [r for r in reader.find_runs(root, **options) if _matches(r, selection)]
    return sorted(runs, key=lambda r: (r.subject, r.session or "", r.task, _run_key(r.run)))


def dataset_labels(roots) -> list[str]:
    """Prefixes that keep pooled datasets' subjects apart: each folder's name.

    Characters other than letters, digits and ``-`` are dropped (a label is part of a
    BIDS-style run name); labels that would repeat get ``-2``, ``-3``, ... appended.
    """
    labels: list[str] = []
    for i, root in enumerate(roots):
        base = re.sub(r"[^A-Za-z0-9-]+", "", Path(root).resolve().name) or f"data{i + 1}"
        label, k = base, 2
        while label in labels:
            label, k = f"{base}-{k}", k + 1
        labels.append(label)
    return labels


def find_pooled_runs(roots, *, layout: str = "auto", **options) -> list[RunRef]:
    """The runs of several datasets, pooled: subjects keep their dataset's prefix.

    Parameters
    ----------
    roots : list of path-like
        Dataset folders, each in any layout (detected per folder unless ``layout`` is
        given). With one folder this is :func:`find_runs`.
    layout : str
    **options
        As for :func:`find_runs`; a ``subject`` selection names prefixed subjects
        (``ds002336-xp101``) when several folders are given.

    Returns
    -------
    runs : list of RunRef
        Subject ``01`` of a folder ``ds002336`` becomes ``ds002336-01`` (BIDS labels hold
        no ``-``, so the split stays unambiguous); datasets in the order given.
    """
    roots = [Path(r) for r in roots]
    if not roots:
        raise ValueError("no dataset folder given.")
    if len(roots) == 1:
        return find_runs(roots[0], layout=layout, **options)
    selection = {k: options.pop(k) for k in SELECTION if options.get(k) is not None}
    for k in SELECTION:
        options.pop(k, None)
    out = []
    for root, label in zip(roots, dataset_labels(roots), strict=True):
        runs = find_runs(root, layout=layout, **options)
        if not runs:
            raise ValueError(f"'{root}': no runs found (options {options}).")
        out += [dataclasses.replace(r, subject=f"{label}-{r.subject}") for r in runs]
    return [r for r in out if _matches(r, selection)]


def _run_key(run: str | None):
    if run is None:
        return (0, "")
    return (1, f"{int(run):09d}") if run.isdigit() else (2, run)


def read_session(
    root: str | Path,
    *,
    subject: str | None = None,
    task: str | None = None,
    run: str | None = None,
    session: str | None = None,
    layout: str = "auto",
    **options,
) -> Session:
    """Load the one run of ``root`` that matches the selection.

    Parameters
    ----------
    root : path-like
        Dataset folder.
    subject, task, run, session : str | None
        Identifiers without prefixes; ``None`` matches anything.
    layout : str
        See :func:`find_runs`.
    **options
        Reader options.

    Returns
    -------
    session : Session
    """
    selection = dict(subject=subject, task=task, run=run, session=session)
    chosen = {k: v for k, v in selection.items() if v is not None}
    every = find_runs(root, layout=layout, **options)
    runs = [r for r in every if _matches(r, chosen)]
    if len(runs) == 1:
        return runs[0].load()
    asked = ", ".join(f"{k}={v!r}" for k, v in chosen.items()) or "no selection"
    names = ", ".join(r.name for r in every) or "none"
    if not runs:
        raise ValueError(f"'{root}': no run matches {asked}; runs found: {names}.")
    raise ValueError(
        f"'{root}': {len(runs)} runs match {asked} ({', '.join(r.name for r in runs)}); "
        "select one with subject/task/run/session."
    )


def check_grid(items) -> tuple[tuple, np.ndarray]:
    """Check that runs (``RunRef`` or ``Session``) share one BOLD grid.

    Parameters
    ----------
    items : iterable of RunRef | Session
        ``RunRef`` grids are read from the headers only.

    Returns
    -------
    shape, affine : tuple of int, array of shape (4, 4)
        The shared grid.
    """
    from ..grid import same_grid

    first = None
    for item in items:
        if isinstance(item, RunRef):
            info = item.header()
            grid = (info.grid_shape, info.affine, str(item.files.get("bold")), item.name)
        else:
            grid = (item.grid_shape, item.affine, str(item.source.get("bold")), item.name)
        if first is None:
            first = grid
        elif not same_grid(first[0], first[1], grid[0], grid[1]):
            raise ValueError(grid_mismatch(first, grid))
    if first is None:
        raise ValueError("check_grid: no runs given.")
    return tuple(first[0]), np.asarray(first[1])


def grid_mismatch(a, b) -> str:
    """Message naming two runs whose grids differ; ``a``, ``b`` = (shape, affine, file, name)."""

    def fmt(affine):
        return str(np.round(np.asarray(affine, dtype=float)[:3], 3).tolist())

    return (
        f"BOLD grids differ: {a[3]} ('{a[2]}') has shape {tuple(a[0])} and affine "
        f"{fmt(a[1])}, but {b[3]} ('{b[2]}') has shape {tuple(b[0])} and affine {fmt(b[1])}. "
        "Resample the runs to one grid (e.g. SPM's 3 mm MNI grid)."
    )
