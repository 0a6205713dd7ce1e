"""The training loop's batches: prepared ahead on threads, the same as one by one."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rt_eeg2fmri.data import Preprocessing
from trainer.data import load_dataset
from trainer.loop import iterate_batches


@pytest.fixture(scope="module")
def pairs(tiny_bids):
    return load_dataset(tiny_bids, Preprocessing(winsize=4.0), progress=False)


def _all(dataset, idx, **kw):
    return [(x.cpu().numpy(), y.cpu().numpy()) for x, y in iterate_batches(dataset, idx, 7, **kw)]


def test_batches_prepared_ahead_are_the_same_in_the_same_order(pairs):
    idx = np.arange(len(pairs))
    want = _all(pairs, idx, device="cpu", shuffle_seed=3)
    got = _all(pairs, idx, device="cpu", shuffle_seed=3, threads=2)
    assert len(got) == len(want) == -(-idx.size // 7)
    for (x, y), (wx, wy) in zip(got, want, strict=True):
        np.testing.assert_array_equal(x, wx)
        np.testing.assert_array_equal(y, wy)


def test_an_error_preparing_a_batch_reaches_the_loop_and_stopping_early_ends_the_threads(
    pairs, monkeypatch
):
    import threading

    real, calls = type(pairs).get_batch, []

    def failing(self, indices, **kw):
        calls.append(1)
        if len(calls) == 3:
            raise OSError("the cache's disk went away")
        return real(self, indices, **kw)

    monkeypatch.setattr(type(pairs), "get_batch", failing)
    batches = iterate_batches(pairs, np.arange(len(pairs)), 4, device="cpu", threads=2)
    with pytest.raises(OSError, match="disk went away"):
        list(batches)
    monkeypatch.setattr(type(pairs), "get_batch", real)
    batches = iterate_batches(pairs, np.arange(len(pairs)), 4, device="cpu", threads=2)
    next(batches)
    batches.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("batches")]


@pytest.mark.gpu
def test_batches_reach_the_gpu_from_page_locked_memory(pairs):
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    idx = np.arange(len(pairs))
    want = _all(pairs, idx, device="cpu", shuffle_seed=1)
    got = list(iterate_batches(pairs, idx, 7, device="cuda", shuffle_seed=1, threads=3))
    torch.cuda.synchronize()
    assert all(x.is_cuda and y.is_cuda for x, y in got)
    for (x, y), (wx, wy) in zip(got, want, strict=True):
        np.testing.assert_array_equal(x.cpu().numpy(), wx)
        np.testing.assert_array_equal(y.cpu().numpy(), wy)
