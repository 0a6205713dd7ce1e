"""What to replay: a dataset run, an EEG file or an XDF recording, loaded as a ``Session``."""

from __future__ import annotations

from pathlib import Path

from ..data.session import Session

XDF_SUFFIXES = (".xdf", ".xdfz")


def load_recording(
    path: str | Path,
    *,
    subject: str | None = None,
    task: str | None = None,
    run: str | None = None,
    session: str | None = None,
    marker: str | None = None,
    stream: str | None = None,
    **reader,
) -> Session:
    """Load a recording to replay.

    Parameters
    ----------
    path : path-like
        A dataset folder (BIDS, ds000116 legacy, simulator output: one run is selected
        with ``subject``/``task``/``run``/``session``), an ``.xdf`` recording, or any
        EEG file MNE reads (BrainVision ``.vhdr``, EDF/BDF, EEGLAB ``.set``, FIF). A BIDS
        run or an EEG file keeps its ECG channels, last, for the live pulse correction,
        and an EEG file its stim channels (published after the EEG).
    subject, task, run, session : str | None
        Run selection in a dataset folder (without ``sub-`` etc. prefixes).
    marker : str | None
        Scanner volume marker in EEG files, XDF marker streams and datasets (default
        ``R128``).
    stream : str | None
        Name (or type) of the EEG stream in an XDF file.
    **reader
        Dataset-reader options for a dataset folder (``layout``, ``t_r``,
        ``eeg_derivatives``, ...; see :func:`rt_eeg2fmri.data.find_runs`).

    Returns
    -------
    session : Session
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"recording not found: '{path}'.")
    if path.is_dir():
        if marker is not None:
            reader["marker"] = marker
        return _dataset_run(path, subject=subject, task=task, run=run, session=session, **reader)
    if reader:
        raise ValueError(
            f"'{path}' is a file; dataset-reader options {sorted(reader)} apply to dataset "
            "folders only."
        )
    marker = marker or "R128"
    if path.suffix.lower() in XDF_SUFFIXES:
        from .xdf import read_xdf

        return read_xdf(
            path, stream=stream, marker=marker, subject=subject or "01", task=task or "xdf", run=run
        )
    return _eeg_file(path, marker=marker)


def _dataset_run(root: Path, **options) -> Session:
    try:
        from ..data import read_session
        from ..data.dataset import detect_layout
    except ImportError as err:
        raise RuntimeError(f"cannot read the dataset '{root}': no dataset reader ({err}).") from err
    options = {k: v for k, v in options.items() if v is not None}
    layout = options.get("layout", "auto")
    if (detect_layout(root) if layout == "auto" else layout) == "bids":
        options.setdefault("ecg", True)  # published too: the live pulse correction needs it
    return read_session(root, **options)


def _eeg_file(path: Path, *, marker: str) -> Session:
    try:
        from ..data.eeg_io import read_eeg
    except ImportError as err:
        raise RuntimeError(f"cannot read '{path}': no EEG file reader ({err}).") from err
    return read_eeg(path, marker=marker, ecg=True)  # the ECG too: the live pulse correction
