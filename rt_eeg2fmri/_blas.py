"""numpy's BLAS and LAPACK on the calling thread only, for the live path's small calls.

OpenBLAS runs even a 30 × 30 ``eigh`` on its thread pool, and the pool's threads then spin
for a while before they sleep: one decomposition per heartbeat kept the other cores busy
for as long as the live pulse correction itself ran (``benchmarks/bench_correction.py``:
62 against 32 ms of CPU per s of stream, 30 past beats against 20). The calls it is used
for are too small to gain from threads.
"""

from __future__ import annotations

_controller = None


def one_thread():
    """A context in which numpy's BLAS (OpenBLAS, MKL, ...) uses one thread.

    The libraries are found once; each use costs tens of µs.
    """
    global _controller
    if _controller is None:
        from threadpoolctl import ThreadpoolController

        _controller = ThreadpoolController()
    return _controller.limit(limits=1, user_api="blas")
