"""Dataset discovery: find the runs of a dataset on disk and load them one at a time.

A dataset is a folder in one of the supported layouts (``"bids"``, ``"ds000116"``);
``find_runs`` lists its runs as lightweight ``RunRef`` descriptors so that callers can
stream over a large dataset without holding more than one run in memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .session import Session


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
        contents make the run's fingerprint.
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
        parts = [f"sub-{self.subject}"]
        if self.session:
            parts.append(f"ses-{self.session}")
        parts.append(f"task-{self.task}")
        if self.run:
            parts.append(f"run-{self.run}")
        return "_".join(parts)

    def load(self) -> Session:
        """Read the run from disk into a validated ``Session``."""
        raise NotImplementedError  # filled by the readers (see find_runs)


def find_runs(root: str | Path, *, layout: str = "auto", **options) -> list[RunRef]:
    """List the runs of the dataset at ``root``.

    Parameters
    ----------
    root : path-like
        Dataset folder.
    layout : ``"auto"`` | ``"bids"`` | ``"ds000116"``
        ``"auto"`` detects the layout from the folder's contents.
    **options
        Reader options (see the readers).

    Returns
    -------
    runs : list of RunRef
        Sorted by subject, session, task, run.
    """
    raise NotImplementedError
