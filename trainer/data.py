"""The data of a training or evaluation run: one window cache, then a selection of it."""

from __future__ import annotations

from rt_eeg2fmri._logging import logger


def load_dataset(
    data,
    preprocessing,
    *,
    subjects=None,
    runs=None,
    ch_names=None,
    mask=None,
    progress: bool = True,
    reader: dict | None = None,
):
    """The cached pairs of ``data`` under ``preprocessing``, restricted to a selection.

    One cache per dataset, preprocessing, channels and mask: a subject or run selection
    is a view of it, so ``train`` and ``evaluate`` of the same data share one cache.

    Parameters
    ----------
    data : path-like | list of path-like | PairDataset
        A dataset folder, several folders pooled (subjects keep their dataset's prefix;
        every cap is interpolated onto ``ch_names``), or an opened dataset (then only the
        selection applies).
    preprocessing : Preprocessing
    subjects : list of str | None
        Subjects kept (numbers compare as integers).
    runs : list of str | None
        Runs kept (see :meth:`~rt_eeg2fmri.data.PairDataset.match_runs`).
    ch_names : list of str | None
        Channels cached, in this order (a checkpoint's); default: the first run's.
    mask : array of shape grid_shape, bool | path-like | None
        Voxels kept. The default mask's cache is tried first; when its mask differs, a
        cache with this mask is built.
    progress : bool
    reader : dict | None
        Reader options (``channels``: the recorded channels to read, ``layout``, ...).

    Returns
    -------
    dataset : PairDataset
    """
    import os

    import numpy as np

    from rt_eeg2fmri.data import load_pairs

    if hasattr(data, "get_batch"):
        dataset = data
    else:
        opts = {"preprocessing": preprocessing, "ch_names": ch_names, "progress": progress}
        opts.update(reader or {})
        if mask is None or isinstance(mask, str | os.PathLike):
            dataset = load_pairs(data, mask=mask, **opts)
        else:  # a checkpoint's mask: its training cache (the default mask) when the same
            try:
                dataset = load_pairs(data, **opts)
            except ValueError:  # e.g. runs that do not cover the default mask: try it
                dataset = None
            if dataset is None or not np.array_equal(dataset.mask, np.asarray(mask, bool)):
                logger.info("The data's default mask differs from the one given: caching with it.")
                dataset = load_pairs(data, mask=np.asarray(mask, bool), **opts)
    if subjects:
        dataset = dataset.subset(subjects=[str(s) for s in subjects])
    if runs:
        dataset = dataset.subset(runs=dataset.match_runs(runs))
    return dataset
