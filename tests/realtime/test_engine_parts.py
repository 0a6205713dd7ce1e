"""The engine from its parts, without a stream: windows that cannot be read are skipped with a reason."""

from __future__ import annotations

import numpy as np
import pytest

from rt_eeg2fmri.checkpoint import load_checkpoint
from rt_eeg2fmri.realtime.engine import Engine, Skip
from rt_eeg2fmri.realtime.inlet import EEGConsumer
from rt_eeg2fmri.realtime.mapper import Mapper
from rt_eeg2fmri.realtime.outputs import Outputs
from rt_eeg2fmri.realtime.scheduler import Due, make_scheduler
from tests.realtime.engine_helpers import CH, direct_volume, tiny_checkpoint


def _engine(tmp_path, *, bufsize=4.0):
    ckpt = load_checkpoint(tiny_checkpoint(tmp_path / "m.pt", winsize=2.0))
    # a consumer that is never started: its ring is filled by hand below
    source = EEGConsumer(
        "name:none", ch_names=CH, preprocessing=ckpt.preprocessing, bufsize=bufsize
    )
    outputs = Outputs(
        grid_shape=ckpt.grid_shape, affine=ckpt.affine, t_r=ckpt.t_r, mask=ckpt.mask, model="conv"
    )
    scheduler = make_scheduler("clock", t_r=ckpt.t_r, winsize=ckpt.winsize, sfreq=ckpt.sfreq)
    return ckpt, Engine(source, scheduler, Mapper(ckpt, device="cpu"), outputs)


def _fill(ring, n, *, t0=50.0, sfreq=100.0, seed=0):
    data = 1e-5 * np.random.default_rng(seed).standard_normal((len(CH), n)).astype(np.float32)
    ring.write(data, t0 + np.arange(n) / sfreq, channels_first=True)
    return data


def test_windows_are_read_from_the_ring_and_predicted(tmp_path):
    ckpt, engine = _engine(tmp_path)
    data = _fill(engine.consumer.ring, 300)
    stop, window, t_end = engine._window_for(Due(0, end_sample=250))
    assert stop == 250
    np.testing.assert_array_equal(window, data[:, 50:250])
    sfreq = engine.sfreq  # the window ends one sample period after its last sample
    assert t_end == pytest.approx(engine.consumer.ring.read(250, 1)[1][0] + 1 / sfreq)
    got = engine.mapper.volume(engine.mapper.predict(window))
    np.testing.assert_allclose(got, direct_volume(ckpt, data[:, 50:250]), rtol=1e-5, atol=1e-6)
    assert engine._window_for(Due(1, t_end=60.0)) is None  # its samples are not in yet
    assert engine._window_for(Due(0, t_end=52.0))[2] == 52.0  # a due time is its end


def test_a_window_before_the_stream_or_out_of_the_ring_is_a_skip(tmp_path):
    _, engine = _engine(tmp_path, bufsize=4.0)
    ring = engine.consumer.ring
    _fill(ring, 150)
    early = engine._window_for(Due(0, t_end=51.0))  # 1 s of stream for a 2 s window
    assert early == Skip("its window starts before the stream")
    _fill(ring, 600, t0=51.5)  # 7.5 s in a 4 s ring: the first samples are overwritten
    gone = engine._window_for(Due(1, end_sample=300))
    assert isinstance(gone, Skip) and "left the ring buffer" in gone.reason


def test_a_burst_computes_every_volume_that_fits_in_half_a_tr(tmp_path):
    """After a pause, the volumes due at once are all computed when inference is fast;
    only what cannot be computed within half a TR is skipped (never fewer than max_backlog)."""
    ckpt, engine = _engine(tmp_path)
    assert engine._fits_in_budget() == max(2, int(0.5 * ckpt.t_r / 0.05))  # no measure yet
    engine._cost_s.extend([0.003] * 5)  # 3 ms a volume
    assert engine._fits_in_budget() == int(0.5 * ckpt.t_r / 0.003)
    # a replay at 100×: half a TR of stream is 1/100 of it in wall time
    engine._clock_marks.extend([(0.0, 50.0), (5.0, 550.0)])
    assert engine._pace() == 100.0
    assert engine._fits_in_budget() == max(2, int(0.5 * ckpt.t_r / 100 / 0.003))
    engine._clock_marks.clear()
    engine._clock_marks.extend([(0.0, 50.0), (10.0, 55.0)])  # a stall: never a wider budget
    assert engine._pace() == 1.0
    engine._cost_s.extend([2.0 * ckpt.t_r] * 20)  # slower than a TR: the backlog floor
    assert engine._fits_in_budget() == engine.max_backlog == 2


def test_skipped_volumes_are_logged_a_few_then_summarised(rt_log):
    from rt_eeg2fmri.realtime.engine import _SkipLog

    log = _SkipLog(first=3, every=3600.0)
    for i in range(2768):
        log.add(i, "its window has left the ring buffer")
    log.flush()
    lines = [r.getMessage() for r in rt_log.records if "skipped" in r.getMessage()]
    assert len(lines) == 5, lines  # three, the notice, one summary
    assert lines[0] == "Volume 0 skipped: its window has left the ring buffer."
    assert "summarised every 3600 s" in lines[3]
    assert lines[4] == (
        "2765 more volumes skipped (3 to 2767; the last: its window has left the ring buffer)."
    )
