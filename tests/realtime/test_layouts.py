"""Every real layout trains and streams: train → checkpoint → stream at the layout's TR.

For each public-release layout (``tests/data/layouts.py``) three subjects are written, a
ridge model is trained leaving the first out (``rt-eeg2fmri train`` with the layout's
reader flags), and the first subject's run is replayed over LSL into an :class:`Engine`
at the checkpoint's TR; every streamed volume must equal the offline prediction of the
same window.
"""

from __future__ import annotations

import numpy as np
import pytest

from apps.cli import main
from rt_eeg2fmri.checkpoint import load_checkpoint
from rt_eeg2fmri.data import read_session
from rt_eeg2fmri.realtime.engine import Engine
from rt_eeg2fmri.replay import Replay
from tests.data.layouts import write_layout
from trainer.data import load_dataset
from trainer.loop import predict

SPEED = 10.0


@pytest.mark.lsl
@pytest.mark.parametrize(
    "name", ["ds002336", "ds002338", "ds002158", "ds003768", "noddi", "ds000116"]
)
def test_layout_trains_and_streams(name, tmp_path, uid, capsys):
    layout = write_layout(tmp_path / name, name)
    test_sub = layout.subjects[0]
    out = tmp_path / "run"
    rc = main(
        ["train", "--data", str(tmp_path / name), "--model", "ridge", "--out", str(out),
         "--test-subjects", test_sub, "--set", "winsize=4", "--set", "model_args.n_lags=1",
         "--no-progress", *layout.flags()]
    )  # fmt: skip
    assert rc == 0
    assert "Voxels scored:" in (out / "report.md").read_text()
    ckpt = load_checkpoint(out / f"loso-sub-{test_sub}" / "ridge.pt")
    assert ckpt.t_r == pytest.approx(layout.t_r)
    assert ckpt.preprocessing.sfreq == layout.sfreq
    if name == "ds002338":  # a slab: only the voxels it covers are modelled and scored
        from rt_eeg2fmri.grid import mni_mask

        assert 0 < np.asarray(ckpt.mask).sum() < np.asarray(mni_mask()).sum()

    dataset = load_dataset(
        tmp_path / name, ckpt.preprocessing, subjects=[test_sub], ch_names=ckpt.ch_names,
        mask=ckpt.mask, progress=False, reader=layout.reader,
    ).with_stats(ckpt.norm_stats)  # fmt: skip
    pred = predict(ckpt.model, dataset, np.arange(len(dataset)), device="cpu")
    offline = {int(s) + dataset.n_times: p for s, p in zip(dataset.start, pred, strict=True)}

    session = read_session(tmp_path / name, subject=test_sub, **layout.reader)
    step = round(layout.t_r * layout.sfreq)
    first = round(session.volume_onsets[0] * layout.sfreq)
    while first < ckpt.n_times:
        first += step
    ends = np.arange(first, session.n_times + 1, step)
    assert set(offline) <= set(ends.tolist()) and len(offline) >= 3

    replay = Replay(session, name=uid, speed=SPEED, truth=False, source_id=uid)
    volumes = []
    engine = Engine.from_checkpoint(
        ckpt,
        source=f"name:{replay.stream_names['eeg']}",
        sync="samples",
        phase=float(session.volume_onsets[0]),
        outlet_name=None,
        device="cpu",
    )
    try:
        replay.open()
        with engine:
            replay.start()
            summary = engine.run(
                max_volumes=len(ends),
                duration=60.0,
                on_volume=lambda i, v, row: volumes.append(v.copy()),
            )
    finally:
        replay.stop()
    assert summary["volumes"] == len(ends) and summary["skipped"] == 0, summary
    mask = np.asarray(ckpt.mask)
    scale = max(np.abs(p).max() for p in offline.values())
    checked = 0
    for j, end in enumerate(ends):
        if int(end) in offline:
            np.testing.assert_allclose(
                volumes[j][mask], offline[int(end)], rtol=1e-4, atol=1e-5 * scale,
                err_msg=f"{name}: window ending at sample {end}",
            )  # fmt: skip
            checked += 1
    assert checked == len(offline)
