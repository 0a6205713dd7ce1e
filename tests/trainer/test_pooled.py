"""Pooled training: datasets recorded with different caps, rates and TRs, one channel set."""

from __future__ import annotations

import json

import numpy as np
import pytest

from apps.cli import main
from rt_eeg2fmri.checkpoint import load_checkpoint
from rt_eeg2fmri.data import find_pooled_runs, load_pairs
from rt_eeg2fmri.data.dataset import dataset_labels
from rt_eeg2fmri.data.preprocessing import Preprocessing
from tests.data.builders import write_bids_run

CAP_A = ["Fz", "Cz", "Pz", "C3", "C4", "O1", "O2", "Oz"]
CAP_B = ["Fz", "Cz", "Pz", "C3", "C4", "P3", "P4", "Oz"]  # no O1/O2: interpolated
MODEL = ["Fz", "Cz", "Pz", "C3", "C4", "O1", "O2"]


@pytest.fixture(scope="module")
def two_labs(tmp_path_factory):
    """labA: 2 subjects, 8 ch @ 100 Hz, TR 1 s; labB: 2 subjects, another cap @ 200 Hz, TR 2 s."""
    base = tmp_path_factory.mktemp("pooled")
    a, b = base / "labA", base / "labB"
    for s in (1, 2):
        write_bids_run(
            a, sub=f"{s:02d}", ch_names=CAP_A, sfreq=100.0, n_volumes=24, t_r=1.0, seed=s
        )
        write_bids_run(
            b, sub=f"{s:02d}", ch_names=CAP_B, sfreq=200.0, n_volumes=12, t_r=2.0, seed=10 + s
        )
    return a, b


def test_pooled_runs_keep_their_dataset_prefix(two_labs, tmp_path):
    a, b = two_labs
    runs = find_pooled_runs([a, b])
    assert [r.subject for r in runs] == ["labA-01", "labA-02", "labB-01", "labB-02"]
    assert find_pooled_runs([a])[0].subject == "01"  # one folder: no prefix
    assert [r.subject for r in find_pooled_runs([a, b], subject="labB-02")] == ["labB-02"]
    assert dataset_labels([a, a / ".." / "labA", "x/my_data"]) == ["labA", "labA-2", "mydata"]
    pre = Preprocessing(sfreq=100.0, winsize=4.0)
    ds = load_pairs([a, b], preprocessing=pre, ch_names=MODEL, root=tmp_path, progress=False)
    assert ds.ch_names == MODEL and ds.root is None
    assert sorted(ds.stats) == ["labA-01", "labA-02", "labB-01", "labB-02"]
    # each run keeps its own TR and rate; the checkpoint's TR is the first run's
    assert [row["t_r"] for row in ds.runs] == [1.0, 1.0, 2.0, 2.0]
    assert [row["sfreq_in"] for row in ds.runs] == [100.0, 100.0, 200.0, 200.0]
    assert ds.t_r == 1.0 and ds.run_t_r(2) == 2.0
    # windows end at each run's own volume ends
    r = 2
    sel = np.flatnonzero(ds.run_index == r)
    ends = ds.volume_times(r)[ds.volume[sel]] + 2.0
    assert np.allclose((ds.start[sel] + ds.n_times) / ds.sfreq, ends, atol=1 / ds.sfreq)
    x, _ = ds.get_batch(sel[:1])
    assert x.shape == (1, len(MODEL), 400) and np.isfinite(x).all()


def test_train_pools_datasets_from_the_cli(two_labs, tmp_path, capsys):
    a, b = two_labs
    out = tmp_path / "run"
    rc = main(
        [
            "train",
            "--data", str(a), "--data", str(b),
            "--channels", ",".join(MODEL),
            "--model", "ridge",
            "--out", str(out),
            "--sfreq", "100",
            "--test-subjects", "labB-01",
            "--set", "winsize=4", "--set", "model_args.n_lags=1",
            "--no-progress",
        ]
    )  # fmt: skip
    assert rc == 0
    report = json.loads((out / "metrics.json").read_text())
    assert report["data"]["datasets"] == [str(a), str(b)]
    split = report["folds"][0]["split"]
    assert split["test_subjects"] == ["labB-01"]
    assert split["val_subjects"][0].startswith(("labA-", "labB-"))
    ckpt = load_checkpoint(out / "loso-sub-labB-01" / "ridge.pt")
    assert ckpt.ch_names == MODEL and ckpt.t_r == 1.0
    # the pooled checkpoint scores on both datasets at once
    capsys.readouterr()
    assert main(["evaluate", "--model", str(out / "loso-sub-labB-01" / "ridge.pt"),
                 "--data", str(a), "--data", str(b), "--no-progress"]) == 0  # fmt: skip
    text = capsys.readouterr().out
    assert "labA-01" in text and "labB-02" in text


def test_pooled_grids_must_match(two_labs, tmp_path):
    a, _ = two_labs
    c = tmp_path / "labC"
    write_bids_run(c, sub="01", ch_names=CAP_A, sfreq=100.0, n_volumes=24, t_r=1.0, grid=(4, 4, 4))
    with pytest.raises(
        ValueError, match=r"BOLD grids differ: sub-labA-01.*but sub-labC-01.*Resample"
    ):
        load_pairs([a, c], preprocessing=Preprocessing(winsize=4.0), root=tmp_path, progress=False)


def test_pooled_simulations_keep_their_noise_ceiling(tmp_path):
    """Each pooled run's truth is found in its own simulation, under its unprefixed subject."""
    from rt_eeg2fmri.sim import simulate_dataset
    from rt_eeg2fmri.sim.truth import truth_targets
    from trainer.data import load_dataset

    kw = dict(preset="tiny", subjects=1, runs=1, volumes=24)
    a = simulate_dataset(tmp_path / "simA", seed=1, **kw)
    b = simulate_dataset(tmp_path / "simB", seed=2, randomize=True, **kw)
    pre = Preprocessing(winsize=10.0, sfreq=100.0)
    pooled = load_dataset([a, b], pre, progress=False)
    assert sorted(set(pooled.subject)) == ["simA-01", "simB-01"]
    truth = truth_targets(pooled)
    assert truth is not None
    alone = truth_targets(load_dataset(b, pre, progress=False))
    np.testing.assert_array_equal(truth(1), alone(0))  # simB's run: its own truth
    assert truth(0).shape == alone(0).shape and not np.array_equal(truth(0), truth(1))
