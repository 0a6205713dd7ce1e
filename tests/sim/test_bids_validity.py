"""The simulator's output is valid BIDS for the tools nobody here wrote.

The raw dataset and its ground-truth derivative each pass the BIDS validator
(``bids-validator-deno``, installed with the test extra) with 0 errors, and
``mne_bids.read_raw_bids`` keeps the scanner volume markers.
"""

from __future__ import annotations

import pytest

from rt_eeg2fmri.data import read_session
from tests.bids_validation import bids_errors

from .conftest import VOLUMES


@pytest.mark.timeout(600)
def test_raw_dataset_and_truth_derivative_pass_the_validator(bids_root):
    assert bids_errors(bids_root) == []
    assert bids_errors(bids_root / "derivatives" / "simulation") == []


def test_mne_bids_keeps_the_volume_markers(bids_root):
    mne_bids = pytest.importorskip("mne_bids")
    path = mne_bids.BIDSPath(subject="01", task="visual", run="1", datatype="eeg", root=bids_root)
    raw = mne_bids.read_raw_bids(path, verbose="error")
    volumes = [d for d in raw.annotations.description if d.endswith("R128")]
    assert len(volumes) == VOLUMES
    # our reader times the volumes by them and keeps them out of the task events
    session = read_session(bids_root, subject="01", task="visual")
    assert session.n_volumes == VOLUMES
    assert not session.events["trial_type"].str.contains("R128").any()
    assert {"visual_standard", "visual_target"} <= set(session.events["trial_type"])
