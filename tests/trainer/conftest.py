from __future__ import annotations

import pytest

from tests.data.builders import write_bids_run


@pytest.fixture(scope="session")
def tiny_bids(tmp_path_factory):
    """3 subjects × 2 runs of real BIDS files (random signals), 4 ch @ 50 Hz, TR 1 s."""
    root = tmp_path_factory.mktemp("tiny_bids")
    for s in range(3):
        for r in (1, 2):
            write_bids_run(
                root,
                sub=f"{s + 1:02d}",
                run=str(r),
                n_chans=4,
                sfreq=50.0,
                n_volumes=24,
                t_r=1.0,
                seed=10 * s + r,
            )
    return root


SMALL_CONV = {"channels": [4, 8], "emb_dim": 8, "hidden": 16, "n_basis": 4}
