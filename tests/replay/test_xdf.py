from __future__ import annotations

import numpy as np
import pytest

from rt_eeg2fmri.replay import load_recording, read_xdf
from rt_eeg2fmri.replay.outlets import eeg_stream_info, marker_stream_info
from rt_eeg2fmri.replay.xdf import is_scanner_marker
from tests.replay.xdf_writer import write_xdf

SFREQ = 200.0
T_FIRST = 5000.0  # LSL clock of the first EEG sample


def _eeg_stream(rng, *, name="amp", n_times=1000, ch_names=("Fp1", "Fp2", "Cz"), unit=None):
    info = eeg_stream_info(name, ch_names=ch_names, sfreq=SFREQ, source_id=name)
    xml = info.as_xml()
    if unit is not None:
        xml = xml.replace("<unit>microvolts</unit>", f"<unit>{unit}</unit>")
    data = (rng.standard_normal((n_times, len(ch_names))) * 20).astype(np.float32)
    return {
        "xml": xml,
        "format": "float32",
        "data": data,
        "stamps": T_FIRST + np.arange(n_times) / SFREQ,
    }


def _marker_stream(values, times, name="markers"):
    xml = marker_stream_info(name, source_id=name).as_xml()
    return {
        "xml": xml,
        "format": "string",
        "data": [[v] for v in values],
        "stamps": T_FIRST + np.asarray(times),
    }


def test_read_labrecorder_style_file(tmp_path, rng):
    eeg = _eeg_stream(rng)
    markers = _marker_stream(
        ["R128", "standard", "R128", "Response/R128", "oddball", "early"],
        [0.5, 0.75, 1.5, 2.5, 3.0, -1.0],
    )
    path = write_xdf(tmp_path / "rec.xdf", [markers, eeg])
    s = read_xdf(path, subject="07", run="2")
    assert (s.sfreq, s.ch_names, s.subject, s.run) == (SFREQ, ["Fp1", "Fp2", "Cz"], "07", "2")
    np.testing.assert_allclose(s.eeg, eeg["data"].T * 1e-6, rtol=1e-6)  # µV → V
    np.testing.assert_allclose(s.volume_onsets, [0.5, 1.5, 2.5], atol=1e-6)
    assert list(s.events["trial_type"]) == ["standard", "oddball"]  # before the EEG: dropped
    np.testing.assert_allclose(s.events["onset"], [0.75, 3.0], atol=1e-6)
    assert s.bold is None and s.source == {"eeg": str(path)}
    # a custom scanner marker
    s = load_recording(path, marker="standard")
    np.testing.assert_allclose(s.volume_onsets, [0.75], atol=1e-6)


def test_units_and_stream_choice(tmp_path, rng):
    mv = _eeg_stream(rng, name="amp-mV", unit="millivolts")
    other = _eeg_stream(rng, name="amp2", ch_names=("C3", "C4"))
    path = write_xdf(tmp_path / "two.xdf", [mv, other])
    with pytest.raises(ValueError, match=r"has 2 EEG streams \('amp-mV'.*'amp2'.*--stream"):
        read_xdf(path)
    s = read_xdf(path, stream="amp-mV")
    np.testing.assert_allclose(s.eeg, mv["data"].T * 1e-3, rtol=1e-6)
    assert load_recording(path, stream="amp2").ch_names == ["C3", "C4"]
    # mne-lsl's units are powers of ten: "-6" is microvolts, "0" volts
    for unit, scale in (("-6", 1e-6), ("0", 1.0)):
        ten = _eeg_stream(rng, name="amp-pow", unit=unit)
        s = read_xdf(write_xdf(tmp_path / f"pow{unit}.xdf", [ten]))
        np.testing.assert_allclose(s.eeg, ten["data"].T * scale, rtol=1e-6)


def test_bad_xdf_files(tmp_path, rng):
    path = write_xdf(tmp_path / "markers-only.xdf", [_marker_stream(["R128"], [0.0])])
    with pytest.raises(ValueError, match=r"markers-only\.xdf' has no EEG stream \(type 'EEG'\); "):
        read_xdf(path)
    with pytest.raises(ValueError, match=r"has no numeric stream named 'amp'"):
        read_xdf(path, stream="amp")
    garbage = tmp_path / "garbage.xdf"
    garbage.write_bytes(b"not an xdf file at all")
    with pytest.raises(ValueError, match=r"cannot read '.*garbage\.xdf' as XDF"):
        read_xdf(garbage)
    with pytest.raises(FileNotFoundError, match=r"XDF recording not found: '.*nope\.xdf'"):
        read_xdf(tmp_path / "nope.xdf")
    with pytest.raises(FileNotFoundError, match=r"recording not found: '.*nope\.vhdr'"):
        load_recording(tmp_path / "nope.vhdr")
    irregular = _eeg_stream(rng)
    irregular["xml"] = irregular["xml"].replace(
        "<nominal_srate>200.0000000000000</nominal_srate>", "<nominal_srate>0</nominal_srate>"
    )
    assert "<nominal_srate>0</nominal_srate>" in irregular["xml"]
    path = write_xdf(tmp_path / "irregular.xdf", [irregular])
    with pytest.raises(ValueError, match="EEG stream 'amp' has an irregular rate"):
        read_xdf(path)


def test_scanner_marker_matching():
    assert is_scanner_marker("R128", "R128") and is_scanner_marker("R 128", "R128")
    assert is_scanner_marker("Response/R128", "R128") and not is_scanner_marker("R12", "R128")
    assert is_scanner_marker("r128", "R128") and is_scanner_marker("TR\t", "tr")


@pytest.mark.lsl
def test_replayed_xdf_matches_the_recording(tmp_path, rng, uid):
    from rt_eeg2fmri.replay import Replay
    from tests.replay.helpers import connect, drain

    eeg = _eeg_stream(rng, n_times=400)
    path = write_xdf(
        tmp_path / "rec.xdf", [eeg, _marker_stream(["R128", "go", "R128"], [0.25, 0.5, 1.25])]
    )
    replay = Replay(load_recording(path), name=uid, speed=20.0)
    assert "truth" not in replay.stream_names
    replay.open()
    inlets = [connect(replay.source_ids[k]) for k in ("eeg", "markers")]
    assert replay.wait_for_consumers(10.0)
    with replay:
        replay.wait(10.0)
        data, ts = drain(inlets[0], n_min=400)
        m, mts = drain(inlets[1], n_min=3)
    # the values the amplifier sent, in µV, at the recorded rate
    np.testing.assert_allclose(np.asarray(data, np.float32), eeg["data"], rtol=1e-6)
    assert [x[0] for x in m] == ["R128", "go", "R128"]
    np.testing.assert_allclose(mts - replay.t0, [0.25, 0.5, 1.25], atol=1e-6)
    np.testing.assert_array_equal(ts, replay.t0 + np.arange(400) / SFREQ)


def test_triggers_on_a_channel_of_the_eeg_stream(tmp_path, rng):
    """``marker="eeg:TRIG"``: the volume onsets are the rising edges of the EEG stream's
    ``TRIG`` channel, stamped with their samples' times; the channel is kept out of the EEG
    (in ``stim``, for the replay to publish), and marker-stream ``R128`` are events then."""
    eeg = _eeg_stream(rng, ch_names=("Fp1", "TRIG", "Cz"), n_times=1000)
    trig = np.zeros(1000, np.float32)
    for a in (100, 500, 900):  # high for 4 samples from 0.5, 2.5 and 4.5 s
        trig[a : a + 4] = 5.0
    eeg["data"][:, 1] = trig
    path = write_xdf(tmp_path / "trig.xdf", [eeg, _marker_stream(["R128"], [1.0])])
    s = read_xdf(path, marker="eeg:TRIG")
    np.testing.assert_allclose(s.volume_onsets, [0.5, 2.5, 4.5], atol=1e-9)
    assert s.ch_names == ["Fp1", "Cz"] and list(s.stim) == ["TRIG"]
    np.testing.assert_array_equal(s.stim["TRIG"], trig)
    np.testing.assert_allclose(s.eeg, eeg["data"][:, [0, 2]].T * 1e-6, rtol=1e-6)
    assert list(s.events["trial_type"]) == ["R128"]
    assert read_xdf(path, marker="eeg:TRIG:6").volume_onsets is None  # never through 6
    # a level with a unit, in the channel's unit (microvolts): 5 µV pulses pass 2 µV, not 6
    s = read_xdf(path, marker="eeg:TRIG:2uV")
    np.testing.assert_allclose(s.volume_onsets, [0.5, 2.5, 4.5], atol=1e-9)
    assert s.stim_units == {"TRIG": "microvolts"}  # the replay publishes it so
    assert read_xdf(path, marker="eeg:TRIG:0.006mV").volume_onsets is None
    with pytest.raises(ValueError, match=r"EEG stream 'amp': the trigger channel 'STI' is not"):
        read_xdf(path, marker="eeg:STI")


def test_info_of_an_xdf_recording(tmp_path, rng, capsys):
    """``info rec.xdf``: the EEG stream's channels by type, the marker streams' markers, and
    the scanner's triggers — on a marker stream (``R128``) or, when a lab sends them to an
    amplifier's trigger input, on a coded channel of the EEG stream (``--marker eeg:TRIG``
    suggested)."""
    import json

    from apps.cli import main

    eeg = _eeg_stream(rng, ch_names=("Fp1", "ECG", "TRIG"), n_times=2000)
    trig = np.zeros(2000, np.float32)
    for a in range(100, 2000, 400):  # every 2 s from 0.5 s: 5 volumes
        trig[a : a + 4] = 1.0
    eeg["data"][:, 2] = trig
    stims = _marker_stream(["standard", "oddball", "standard"], [1.0, 3.3, 7.1])
    path = write_xdf(tmp_path / "trig.xdf", [eeg, stims])
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "(EEG stream 'amp')" in out and "ECG       ECG" in out
    assert "markers   standard ×2, oddball ×1" in out
    assert "eeg:TRIG: 5 onsets, TR 2 s" in out and "use       --marker eeg:TRIG" in out
    assert "no 'R128' scanner marker among the marker streams: try --marker eeg:TRIG" in out
    assert main(["info", str(path), "--marker", "eeg:TRIG", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["marker"]["timing"] == {"n": 5, "t_r": 2.0, "first": 0.5}
    assert summary["problems"] == []

    # an analog trigger lead in microvolts (not whole numbers): the level midway, in µV
    eeg = _eeg_stream(rng, ch_names=("Fp1", "Cz", "TRIG"), n_times=2000)
    eeg["data"][:, 2] = (rng.standard_normal(2000) + 300.0 * (trig > 0)).astype(np.float32)
    path = write_xdf(tmp_path / "analog.xdf", [eeg])
    assert main(["info", str(path), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    spec = summary["suggested"]
    assert spec.startswith("eeg:TRIG:") and spec.endswith("uV"), summary
    assert 100 < float(spec[9:-2]) < 200 and summary["triggers"]["TRIG"]["specs"][spec]["n"] == 5
    assert read_xdf(path, marker=spec).volume_onsets.size == 5

    scanner = _marker_stream(["R128"] * 4, [0.5, 2.5, 4.5, 6.5], name="scanner")
    path = write_xdf(tmp_path / "markers.xdf", [_eeg_stream(rng, n_times=2000), scanner])
    assert main(["info", str(path), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["marker"]["timing"]["n"] == 4 and summary["suggested"] == "R128"
    assert main(["info", str(tmp_path), "--stream", "amp"]) == 1
    assert "'--stream' names an .xdf file's EEG stream" in capsys.readouterr().err
