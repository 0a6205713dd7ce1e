"""``simulate --randomize``: the generative choices drawn per seed and subject."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pandas.testing as pdt

from rt_eeg2fmri.sim import simulate_dataset
from rt_eeg2fmri.sim.bold import region_psc
from rt_eeg2fmri.sim.design import Drive
from rt_eeg2fmri.sim.regions import REGIONS, draw_subject, randomize_regions


def _rng(seed):
    return np.random.default_rng(seed)


def test_couplings_are_drawn_per_dataset():
    a, b = randomize_regions(_rng(1)), randomize_regions(_rng(1))
    assert a == b  # one seed, one draw
    other = randomize_regions(_rng(2))
    visible = [i for i, r in enumerate(REGIONS) if r.eeg_visible]
    assert [a[i].bands for i in visible] != [other[i].bands for i in visible]
    kappas = [band.kappa for i in visible for band in a[i].bands]
    assert min(kappas) < 0 < max(kappas)  # couplings of both signs
    assert {band.name for i in visible for band in a[i].bands} >= {"alpha", "gamma"}
    assert all(1 <= len(a[i].bands) <= 2 for i in visible)
    for fixed, drawn in zip(REGIONS, a, strict=True):
        assert drawn.xyz == fixed.xyz and drawn.weights == fixed.weights
        assert 0.6 * fixed.sigma <= drawn.sigma <= 1.6 * fixed.sigma
        if not fixed.eeg_visible:
            assert drawn.bands == ()


def test_fixed_subject_draw_unchanged_by_the_option():
    fixed = draw_subject(_rng(3), "01")
    drawn = draw_subject(_rng(3), "01", randomize=True)
    np.testing.assert_array_equal(fixed.xyz, drawn.xyz)  # the shared draws come first
    assert fixed.alpha_freq == drawn.alpha_freq and fixed.rt_median == drawn.rt_median
    assert (fixed.hrf_undershoot, fixed.hrf_ratio, fixed.noise_scale) == (16.0, 1 / 6, 1.0)
    assert fixed.region_delay is None and fixed.delay(0) == 0.0
    assert drawn.region_delay.shape == (len(REGIONS),) and drawn.region_delay.std() > 0.2
    assert 4.0 <= drawn.hrf_peak <= 8.0 and 0.6 <= drawn.noise_scale <= 1.6


def test_region_delay_shifts_its_response():
    subject = draw_subject(_rng(4), "01", randomize=True)
    delays = np.zeros(len(REGIONS))
    delays[1] = 2.0
    from dataclasses import replace

    subject = replace(subject, region_delay=delays)
    times = np.arange(-5.0, 40.0, 0.1)
    drive = np.zeros((len(REGIONS), times.size))
    drive[:, np.searchsorted(times, 0.0)] = 1.0  # an impulse at t = 0 in every region
    psc = region_psc(Drive(times, drive, pd.DataFrame()), subject, times)
    peak = times[psc.argmax(axis=1)]
    assert 1.5 <= peak[1] - peak[0] <= 2.2  # the undershoot pulls a wider response's peak in
    assert abs(peak[0] - subject.hrf_peak) < 1.0


def test_randomized_dataset_records_its_draws(tmp_path):
    kw = dict(preset="tiny", subjects=2, runs=1, volumes=4, seed=5)
    rand = simulate_dataset(tmp_path / "r", randomize=True, **kw)
    fixed = simulate_dataset(tmp_path / "f", **kw)
    truth = rand / "derivatives" / "simulation"
    assert json.loads((truth / "simulation.json").read_text())["randomize"] is True
    table = pd.read_csv(truth / "regions.tsv", sep="\t")
    assert (
        table["bands"].str.contains("kappa=-").any()
        and table["bands"].str.contains("kappa=+").any()
    )
    assert (
        table.loc[~table["eeg_visible"], "bands"].isna()
        | (table.loc[~table["eeg_visible"], "bands"] == "n/a")
    ).all()
    subjects = [
        json.loads((truth / f"sub-0{s}" / f"sub-0{s}_simulation.json").read_text()) for s in (1, 2)
    ]
    assert subjects[0]["hrf_peak_s"] != subjects[1]["hrf_peak_s"]
    delays = [v["hrf_delay_s"] for v in subjects[0]["regions"].values()]
    assert np.std(delays) > 0.2
    fixed_table = pd.read_csv(fixed / "derivatives" / "simulation" / "regions.tsv", sep="\t")
    pdt.assert_series_equal(fixed_table["name"], table["name"])
    assert not fixed_table["sigma_mm"].equals(table["sigma_mm"])
    bold = "sub-01/func/sub-01_task-auditory_run-1_bold.nii.gz"
    assert (rand / bold).read_bytes() != (fixed / bold).read_bytes()
