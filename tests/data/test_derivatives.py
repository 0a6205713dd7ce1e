"""Preprocessed EEG from BIDS derivatives: both placements, prefixes, alignment, errors."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from rt_eeg2fmri.data import find_runs, load_pairs, read_session
from rt_eeg2fmri.data.preprocessing import Preprocessing
from tests.data.builders import write_bids_run, write_bold
from tests.data.layouts import write_layout


def test_both_placements_and_the_d_prefix(tmp_path, rt_log):
    root = tmp_path / "xp"
    write_layout(root, "ds002336")
    a = read_session(root, subject="xp101", eeg_derivatives="eeg_pp")
    assert a.sfreq == 200.0 and a.n_volumes == 11  # volumes 3-13: the crop left 0-2 out
    assert a.source["eeg"].endswith("sub-xp101_task-eegfmriNF_eeg_pp.vhdr")
    assert "ECG" not in a.ch_names  # typed ECG in the raw run's channels.tsv
    assert "covers BOLD volumes 3–13 of 14" in rt_log.text
    # the BIDS-derivatives placement (derivatives/NAME/sub-*/eeg/) with a d_ prefix
    moved = tmp_path / "moved"
    shutil.copytree(root, moved)
    for sub in ("xp101", "xp102", "xp103"):
        src = moved / "derivatives" / f"sub-{sub}" / "eeg_pp"
        dst = moved / "derivatives" / "eeg_pp" / f"sub-{sub}" / "eeg"
        dst.mkdir(parents=True)
        for f in src.iterdir():
            shutil.move(f, dst / f"d_{f.name}")
        shutil.rmtree(src.parent)
    # BrainVision headers name their data files: fix them for the new names
    for vhdr in (moved / "derivatives" / "eeg_pp").rglob("*.vhdr"):
        text = vhdr.read_text().replace("=sub-", "=d_sub-")
        vhdr.write_text(text)
    for vmrk in (moved / "derivatives" / "eeg_pp").rglob("*.vmrk"):
        vmrk.write_text(vmrk.read_text().replace("=sub-", "=d_sub-"))
    b = read_session(moved, subject="xp101", eeg_derivatives="eeg_pp")
    np.testing.assert_array_equal(a.eeg, b.eeg)
    np.testing.assert_allclose(a.volume_onsets, b.volume_onsets)


def test_derivative_with_its_own_markers(tmp_path):
    root = tmp_path / "xp2"
    write_layout(root, "ds002338")
    s = read_session(root, subject="xp201", eeg_derivatives="eeg_pp")
    assert s.t_r == 1.0 and s.n_volumes == 21
    # the volume markers it kept fall where the aligned onsets say
    from rt_eeg2fmri.data.eeg_io import open_raw, scanner_onsets

    own = scanner_onsets(open_raw(s.source["eeg"], preload=False), "R128")
    np.testing.assert_allclose(s.volume_onsets, own[: s.n_volumes], atol=1 / s.sfreq)


def test_derivative_errors(tmp_path):
    root = tmp_path / "xp"
    write_layout(root, "ds002336")
    with pytest.raises(
        FileNotFoundError,
        match=r"EEG derivatives 'cleaned' not found: .*derivatives/sub-\*/cleaned/'",
    ):
        find_runs(root, eeg_derivatives="cleaned")
    # a run without its derivative is listed, and says what is missing
    shutil.rmtree(root / "derivatives" / "sub-xp103")
    runs = find_runs(root, eeg_derivatives="eeg_pp")
    assert [r.subject for r in runs] == ["xp101", "xp102", "xp103"]
    with pytest.raises(FileNotFoundError, match=r"no preprocessed EEG for the run of .*sub-xp103"):
        runs[2].load()
    # a derivative with no marker the raw EEG has cannot be aligned
    vmrk = next((root / "derivatives" / "sub-xp101").rglob("*.vmrk"))
    lines = [
        ln for ln in vmrk.read_text().splitlines() if not ln.startswith("Mk") or "New Segment" in ln
    ]
    vmrk.write_text("\n".join(lines) + "\n")
    with pytest.raises(
        ValueError, match=r"no scanner markers and no marker in common with the raw"
    ):
        runs[0].load()


def test_a_run_that_does_not_cover_the_mask_is_named(tmp_path):
    root = tmp_path / "slab"
    for i, sub in enumerate(("01", "02")):
        paths = write_bids_run(root, sub=sub, n_volumes=20, t_r=1.0, seed=i)
        data = 1000 + np.random.default_rng(i).standard_normal((5, 6, 4, 20)).astype(np.float32)
        if sub == "02":
            data[:, :, 3] = 0.0  # a smaller slab than the first run's
        write_bold(paths["bold"], 20, t_r=1.0, data=data)
    pre = Preprocessing(winsize=4.0)
    with pytest.raises(
        ValueError,
        match=r"sub-02_task-oddball .*leaves 30 of the mask's 120 voxels at zero.*--mask",
    ):
        load_pairs(root, preprocessing=pre, root=tmp_path / "c", progress=False)
    mask = np.ones((5, 6, 4), bool)
    mask[:, :, 3] = False
    ds = load_pairs(root, preprocessing=pre, mask=mask, root=tmp_path / "c", progress=False)
    assert ds.n_voxels == 90


def test_a_derivative_is_aligned_by_the_trigger_channel_it_kept(tmp_path, rt_log):
    """A raw FIF run whose scanner triggers are only on ``STI 014`` (no annotations) and a
    preprocessed derivative of it, cropped at 5.2 s and filtered, that kept ``STI 014``:
    with ``marker="eeg:STI 014"`` the derivative is aligned by the channel's edges in both,
    and its volumes are the raw's, shifted by the crop. A derivative that dropped the
    channel (and has no annotations) cannot be aligned, and the error says by what."""
    import mne

    a = write_bids_run(tmp_path, fmt="fif", markers=False, lead=1.5, n_volumes=12)
    raw = mne.io.read_raw_fif(a["eeg"], preload=True, verbose="error")
    onsets = 1.5 + np.arange(12) * 2.0
    pulses = np.zeros((1, raw.n_times))
    for t in onsets:
        pulses[0, round(t * 250.0) : round(t * 250.0) + 5] = 1.0
    raw.add_channels([mne.io.RawArray(pulses, mne.create_info(["STI 014"], 250.0, "stim"),
                                      verbose="error")], force_update_info=True)  # fmt: skip
    raw.set_annotations(None)
    raw.save(a["eeg"], overwrite=True, verbose="error")
    folder = tmp_path / "derivatives" / "pp" / "sub-01" / "eeg"
    folder.mkdir(parents=True)
    deriv = raw.copy().crop(tmin=5.2).filter(1.0, 40.0, picks="eeg", verbose="error")
    deriv.save(folder / "sub-01_task-oddball_desc-pp_eeg.fif", verbose="error")

    s = read_session(tmp_path, eeg_derivatives="pp", marker="eeg:STI 014")
    inside = onsets[(onsets >= 5.2) & (onsets + 2.0 <= 5.2 + deriv.n_times / 250.0)]
    np.testing.assert_allclose(s.volume_onsets, inside - 5.2, atol=1e-9)
    assert s.n_volumes == inside.size and s.ch_names == [f"EEG{i:02d}" for i in range(4)]
    np.testing.assert_allclose(s.eeg, deriv.get_data(picks="eeg"), rtol=1e-5, atol=1e-12)
    assert list(s.stim) == ["STI 014"]
    assert "by its first marker 'eeg:STI 014' (5.200 s into the raw EEG)" in rt_log.text

    # the scanner's edges alone line up at every whole number of TRs: the EEG told them
    # apart; a derivative whose EEG is not the raw's cannot be aligned
    noise = deriv.copy()
    noise._data[:4] = 1e-5 * np.random.default_rng(9).standard_normal((4, noise.n_times))
    noise.save(folder / "sub-01_task-oddball_desc-pp_eeg.fif", overwrite=True, verbose="error")
    with pytest.raises(
        ValueError,
        match=r"line up equally at \d offsets \(1.200, 3.200, 5.200"
        r".*and its EEG does not tell them apart",
    ):
        read_session(tmp_path, eeg_derivatives="pp", marker="eeg:STI 014")
    deriv.drop_channels(["STI 014"]).save(
        folder / "sub-01_task-oddball_desc-pp_eeg.fif", overwrite=True, verbose="error"
    )
    with pytest.raises(
        ValueError,
        match=r"no scanner markers and no marker in common with the "
        r"raw EEG '.*_eeg.fif' \(nor its trigger channel 'STI 014'\) to align",
    ):
        read_session(tmp_path, eeg_derivatives="pp", marker="eeg:STI 014")
