from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from rt_eeg2fmri.realtime.ring import RingBuffer, TorchRingMirror


def _fill(ring, rng, n_total, *, max_chunk=37, channels_first=False):
    """Write a ramp (value = absolute sample index + 1000·channel) in random chunks."""
    n = ring.n_written
    end = n + n_total
    while n < end:
        k = int(rng.integers(1, max_chunk + 1))
        idx = np.arange(n, n + k)
        data = idx[None, :] + 1000.0 * np.arange(ring.n_chans)[:, None]
        ring.write(data if channels_first else data.T, idx / 100.0, channels_first=channels_first)
        n += k
    return n


def _ramp(ring, start, stop):
    idx = np.arange(start, stop)
    return (idx[None, :] + 1000.0 * np.arange(ring.n_chans)[:, None]).astype(ring.dtype)


@pytest.mark.parametrize("channels_first", [False, True])
def test_latest_returns_the_newest_samples_in_time_order_across_wraps(rng, channels_first):
    ring = RingBuffer(3, 100)
    data_before = ring._data
    n = _fill(ring, rng, 1234, channels_first=channels_first)
    assert ring.n_written == n and ring._data is data_before  # written in place
    for k in (1, 50, 99, 100):
        data, times = ring.latest(k)
        np.testing.assert_array_equal(data, _ramp(ring, n - k, n))
        np.testing.assert_array_equal(times, np.arange(n - k, n) / 100.0)
    assert ring.latest_time == (n - 1) / 100.0
    assert ring.first_time == 0.0


def test_read_by_absolute_count_and_into_out(rng):
    ring = RingBuffer(2, 64)
    n = _fill(ring, rng, 500)
    out, times_out = np.empty((2, 40), np.float32), np.empty(40)
    data, times = ring.read(n - 10, 40, out=out, times_out=times_out)
    assert data is out and times is times_out
    np.testing.assert_array_equal(out, _ramp(ring, n - 50, n - 10))
    with pytest.raises(RuntimeError, match="overwritten"):
        ring.read(n - 64, 10)
    with pytest.raises(RuntimeError, match=f"only {n} written"):
        ring.read(n + 1, 10)
    ring._reserved += 20  # a writer about to overwrite the 20 oldest samples
    with pytest.raises(RuntimeError, match="overwritten"):
        ring.read(n - 50, 10)
    ring._reserved -= 20
    with pytest.raises(ValueError, match="'out' must have shape"):
        ring.latest(40, out=np.empty((2, 41), np.float32))
    with pytest.raises(ValueError, match="'times_out' must have shape"):
        ring.latest(40, times_out=np.empty(3))


def test_chunk_larger_than_capacity_keeps_the_newest():
    ring = RingBuffer(1, 10)
    ring.write(np.arange(25.0)[None], np.arange(25.0), channels_first=True)
    assert ring.n_written == 25 and ring.first_time == 0.0
    data, times = ring.latest(10)
    np.testing.assert_array_equal(data[0], np.arange(15, 25))
    np.testing.assert_array_equal(times, np.arange(15, 25))


def test_bad_arguments_name_the_parameter():
    with pytest.raises(ValueError, match="'n_chans'"):
        RingBuffer(0, 10)
    with pytest.raises(ValueError, match="'bufsize_samples'"):
        RingBuffer(2, 2.5)
    ring = RingBuffer(4, 10)
    with pytest.raises(ValueError, match="ambiguous.*channels_first"):
        ring.write(np.zeros((4, 4)), np.arange(4.0))
    with pytest.raises(ValueError, match=r"'data' must have shape .*got \(3, 5\)"):
        ring.write(np.zeros((3, 5)), np.arange(5.0))
    with pytest.raises(ValueError, match=r"'data' must have shape \(4, 5\)"):
        ring.write(np.zeros((5, 4)), np.arange(5.0), channels_first=True)
    with pytest.raises(ValueError, match=r"'n' must be an integer in \[1, 10\], got n=11"):
        ring.latest(11)
    with pytest.raises(RuntimeError, match="3 samples requested, only 0 written"):
        ring.latest(3)
    assert ring.write(np.zeros((0, 4)), []) == 0 and ring.latest_time is None


def test_window_ending_at_uses_timestamps_strictly_before_the_end(rng):
    ring = RingBuffer(2, 400)
    assert ring.count_before(1.0) is None
    n = _fill(ring, rng, 1000)  # timestamps i / 100
    assert ring.window_ending_at(n / 100.0 + 0.001, 10) is None  # not arrived yet
    assert ring.count_before(9.0) == 900
    data, times = ring.window_ending_at(9.0, 250)  # the window wraps in the ring
    np.testing.assert_array_equal(times, np.arange(650, 900) / 100.0)
    np.testing.assert_array_equal(data, _ramp(ring, 650, 900))
    data, times = ring.window_ending_at(9.005, 250)  # between samples: up to 900 included
    assert times[-1] == 9.0
    with pytest.raises(RuntimeError, match="overwritten"):
        ring.window_ending_at(5.0, 10)
    fresh = RingBuffer(1, 100)
    fresh.write(np.zeros((1, 50)), 10 + np.arange(50) / 100.0)
    with pytest.raises(
        ValueError, match="only 20 samples precede t_end=10.2, the window needs n=30"
    ):
        fresh.window_ending_at(10.2, 30)


def test_on_write_reports_the_slots_written():
    ring = RingBuffer(1, 10)
    calls = []
    ring.on_write.append(lambda start, n: calls.append((start, n)))
    for k in (4, 4, 4, 25):
        ring.write(np.zeros((k, 1)), np.zeros(k))
    assert calls == [(0, 4), (4, 4), (8, 4), (7, 10)]


def test_one_writer_one_reader_never_see_a_torn_window():
    """Reads race a writer on purpose; every window must be consecutive samples."""
    ring = RingBuffer(8, 2000)
    stop = threading.Event()

    def writer():
        rng, n = np.random.default_rng(1), 0
        while not stop.is_set():
            k = int(rng.integers(1, 200))
            idx = np.arange(n, n + k)
            ring.write(np.repeat(idx[:, None], 8, axis=1), idx.astype(float), channels_first=False)
            n += k
            time.sleep(0)

    thread = threading.Thread(target=writer)
    thread.start()
    reads = overruns = 0
    try:
        while reads < 1000:
            if ring.n_written < 1500:
                continue
            try:
                data, times = ring.latest(1500)
            except RuntimeError as err:  # the writer lapped the reader: detected, not torn
                assert "overran" in str(err)
                overruns += 1
                continue
            assert np.all(np.diff(times) == 1.0)
            assert np.all(data == times[None, :].astype(np.float32))
            reads += 1
    finally:
        stop.set()
        thread.join()


def test_torch_mirror_on_cpu_equals_the_host_ring(rng):
    torch = pytest.importorskip("torch")
    ring = RingBuffer(3, 128)
    _fill(ring, rng, 130)
    mirror = TorchRingMirror(ring, device="cpu")  # copies what is there already
    for _ in range(5):
        n = _fill(ring, rng, int(rng.integers(1, 300)))
        assert mirror.n_written == n
        np.testing.assert_array_equal(mirror.data.numpy(), ring._data)
        for k in (1, 77, 128):
            window = mirror.window(k)
            assert isinstance(window, torch.Tensor) and window.shape == (3, k)
            np.testing.assert_array_equal(window.numpy(), ring.latest(k)[0])
    np.testing.assert_array_equal(mirror.window(20, stop=n - 5).numpy(), ring.read(n - 5, 20)[0])
    with pytest.raises(RuntimeError, match="mirrored so far"):
        mirror.window(10, stop=n + 1)
    mirror.close()
    ring.write(np.ones((5, 3)), np.zeros(5))
    assert mirror.n_written == n


@pytest.mark.gpu
def test_torch_mirror_on_cuda_equals_the_host_ring(rng):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    ring = RingBuffer(64, 5000)
    mirror = TorchRingMirror(ring, device="cuda")
    for _ in range(20):
        _fill(ring, rng, int(rng.integers(1, 2000)), max_chunk=300)
        k = min(4000, ring.n_written)  # the first fills hold fewer samples than a window
        window = mirror.window(k)
        assert window.device.type == "cuda"
        np.testing.assert_array_equal(window.cpu().numpy(), ring.latest(k)[0])
    torch.cuda.synchronize()
    np.testing.assert_array_equal(mirror.data.cpu().numpy(), ring._data)
