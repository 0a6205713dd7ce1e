"""The live path's small LAPACK calls run on the calling thread."""

from __future__ import annotations

from threadpoolctl import threadpool_info

from rt_eeg2fmri._blas import one_thread


def _blas_threads() -> list[int]:
    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]


def test_one_thread_limits_numpys_blas_and_restores_it():
    before = _blas_threads()
    assert before  # numpy's OpenBLAS (or another BLAS) is found
    with one_thread():
        assert set(_blas_threads()) == {1}
    assert _blas_threads() == before
