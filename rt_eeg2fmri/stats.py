"""Small statistics shared by the core and the trainer."""

from __future__ import annotations

import numpy as np


def pearson_columns(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson r between matching columns of ``a`` and ``b``, shape (n_samples, n_cols).

    Columns with zero variance in either input get r = 0.

    Returns
    -------
    r : array of shape (n_cols,)
    """
    a = a - a.mean(axis=0)
    b = b - b.mean(axis=0)
    num = (a * b).sum(axis=0)
    den = np.sqrt((a * a).sum(axis=0) * (b * b).sum(axis=0))
    out = np.zeros(a.shape[1])
    ok = den > 1e-12
    out[ok] = num[ok] / den[ok]
    return out
