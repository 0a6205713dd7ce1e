"""Trigger channels: the spec, and rising edges found chunk by chunk as MNE finds events."""

import mne
import numpy as np
import pytest

from rt_eeg2fmri.data.triggers import TriggerChannel, is_channel_spec

SFREQ = 500.0


def _status(n_times=20_000, seed=0):
    """A BioSemi-like status channel: bits 9–13 always set (amplifier state), stimulus codes
    1–255 on the low byte at random times, and the scanner's pulse on bit 8 (0x100), five
    samples long every 2 s, sometimes during a stimulus code."""
    rng = np.random.default_rng(seed)
    x = np.full(n_times, 0x3E00, np.int64)
    for t in rng.integers(0, n_times - 50, 40):
        x[t : t + int(rng.integers(2, 40))] |= int(rng.integers(1, 256))
    onsets = np.arange(137, n_times - 10, int(2 * SFREQ))
    for t in onsets:
        x[t : t + 5] |= 0x100
    return x.astype(float), onsets


def _raw(stim, name="STI 014"):
    info = mne.create_info(["Cz", name], SFREQ, ["eeg", "stim"])
    data = np.vstack([1e-5 * np.random.default_rng(1).standard_normal(stim.size), stim])
    return mne.io.RawArray(data, info, verbose="error")


def test_the_spec_is_parsed_and_spelled_back():
    assert TriggerChannel.parse("eeg:TRIG") == TriggerChannel("TRIG", level=0.5)
    assert TriggerChannel.parse("eeg:Status:2.5") == TriggerChannel("Status", level=2.5)
    assert TriggerChannel.parse("EEG: STI 014 :mask=0x100") == TriggerChannel("STI 014", mask=256)
    assert TriggerChannel.parse("eeg:Status:mask=8").describe() == "rising edge of bits 0x8"
    assert TriggerChannel.parse("eeg:TRIG:3").describe() == "rising edge through 3"
    for spec in ("eeg:TRIG:0.5", "eeg:Status:mask=0x100"):
        assert TriggerChannel.parse(TriggerChannel.parse(spec).spec) == TriggerChannel.parse(spec)
    for spec in ("R128", "scanner:R128", None, ""):
        assert TriggerChannel.parse(spec) is None and not is_channel_spec(spec)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("eeg:", r"'marker' eeg:CHANNEL\[:LEVEL\|:mask=BITS\] names no channel: got 'eeg:'"),
        (
            "eeg:TRIG:high",
            r"the level must be a number, with a voltage unit or none \(0.5, "
            r"2.5V, 100uV\), or mask=BITS; got 'high'",
        ),
        ("eeg:TRIG:2.5A", r"the level's unit must be a voltage \(V, mV, uV, nV\), got 'A'"),
        ("eeg:TRIG:nan", r"the level must be finite, got 'nan'"),
        ("eeg:Status:mask=bit8", r"the mask must be an integer \(e.g. 8 or 0x8\), got 'bit8'"),
        ("eeg:Status:mask=0", r"the mask must have a bit set, got '0'"),
    ],
)
def test_a_bad_spec_is_refused_naming_the_parameter(spec, message):
    with pytest.raises(ValueError, match=message):
        TriggerChannel.parse(spec, what="'marker'")


@pytest.mark.parametrize("chunk", [1, 7, 100, 20_000])
def test_edges_through_a_level_chunk_by_chunk_are_mnes_events(chunk):
    """A stim channel of codes (0, then 1–255 for a few samples): every chunking finds
    exactly the onsets ``mne.find_events`` finds (``consecutive=False``: from zero)."""
    x = np.zeros(20_000)
    rng = np.random.default_rng(2)
    starts = np.sort(rng.choice(np.arange(1, 19_900, 60), 80, replace=False))
    for t in starts:
        x[t : t + int(rng.integers(1, 50))] = int(rng.integers(1, 256))
    raw = _raw(x)
    events = mne.find_events(raw, "STI 014", consecutive=False, shortest_event=1, verbose="error")
    edges = TriggerChannel("STI 014").edges()
    found = np.concatenate([a + edges.find(x[a : a + chunk]) for a in range(0, x.size, chunk)])
    np.testing.assert_array_equal(found, events[:, 0])
    np.testing.assert_allclose(TriggerChannel("STI 014").onsets(raw), events[:, 0] / SFREQ)


@pytest.mark.parametrize("chunk", [1, 13, 20_000])
def test_edges_of_a_status_bit_are_mnes_masked_events(chunk):
    """With ``mask=0x100`` only the scanner's bit counts, under stimulus codes and bits that
    are always set: the onsets ``mne.find_events(mask=0x100, mask_type="and")`` finds."""
    x, onsets = _status()
    raw = _raw(x, "Status")
    events = mne.find_events(raw, "Status", consecutive=False, shortest_event=1, mask=0x100,
                             mask_type="and", verbose="error")  # fmt: skip
    np.testing.assert_array_equal(events[:, 0], onsets)
    edges = TriggerChannel("Status", mask=0x100).edges()
    found = np.concatenate([a + edges.find(x[a : a + chunk]) for a in range(0, x.size, chunk)])
    np.testing.assert_array_equal(found, onsets)
    # a level cannot tell the scanner's bit from the others: every sample is above 0.5
    assert TriggerChannel("Status").edges().find(x).size == 0


def test_a_pulse_high_at_the_start_and_values_not_a_number_are_not_edges():
    edges = TriggerChannel("T").edges()
    assert edges.find([1.0, 1.0, 0.0, np.nan, 1.0, np.nan, 2.0]).tolist() == [4, 6]
    masked = TriggerChannel("T", mask=4).edges()
    assert masked.find([4.0, 0.0, np.nan, 5.0, 1.0, np.inf, 12.0]).tolist() == [3, 6]


def test_onsets_of_a_channel_the_recording_lacks_name_its_channels(tmp_path):
    raw = _raw(np.zeros(100))
    with pytest.raises(ValueError, match=r"the trigger channel 'TRIG' is not among its channels"):
        TriggerChannel("TRIG").onsets(raw)


def test_a_level_with_a_unit_is_a_voltage_in_any_units():
    """``eeg:TRIG:100uV`` is parsed with its unit, spelled back, and put in the samples'
    units: MNE's volts, a stream's microvolts or millivolts, mne-lsl's power of ten."""
    spec = TriggerChannel.parse("eeg:TRIG:100 uV")
    assert spec == TriggerChannel("TRIG", level=100.0, unit="uV")
    assert spec.spec == "eeg:TRIG:100uV" and TriggerChannel.parse(spec.spec) == spec
    assert spec.describe() == "rising edge through 100 uV"
    assert TriggerChannel.parse("eeg:TRIG:2.5V").in_units(1e-6).level == pytest.approx(2.5e6)
    assert spec.in_units(1.0).level == pytest.approx(1e-4) and spec.in_units(1.0).unit is None
    where = "EEG stream: trigger channel 'TRIG'"
    for unit, level in (("microvolts", 100.0), ("mV", 0.1), ("0", 1e-4), (None, 100.0)):
        assert spec.in_stream_units(unit, where=where).level == pytest.approx(level)
    with pytest.raises(
        ValueError,
        match=r"'TRIG' \(unit 'none'\): the level 100uV of "
        r"'eeg:TRIG:100uV' is a voltage, but the channel's samples are not",
    ):
        spec.in_stream_units("none", where=where)
    # mne-lsl gives a stim channel unit "0" (volts), as MNE does: its type says it holds codes
    assert spec.in_stream_units("0", where=where, kind="eeg").level == pytest.approx(1e-4)
    with pytest.raises(ValueError, match=r"'TRIG' \(type 'stim'\): the level 100uV .* not \(codes"):
        spec.in_stream_units("0", where=where, kind="stim")
    with pytest.raises(ValueError, match="put it in the samples' units first"):
        spec.edges()
    assert TriggerChannel.parse("eeg:TRIG:3").in_units(None).level == 3.0  # no unit: as is


def test_onsets_of_an_analog_lead_through_a_level_in_microvolts():
    """A TTL lead of 80 µV that MNE types EEG (as BrainVision's TRIG): a level in µV finds
    its pulses in the file's volts; the default 0.5 (volts there) finds none; a unit on a
    stim channel (codes) is refused, naming the file's channel."""
    x = np.zeros(5_000)
    onsets = np.arange(100, 5_000, 1_000)
    for t in onsets:
        x[t : t + 20] = 80e-6
    info = mne.create_info(["Cz", "TRIG"], SFREQ, ["eeg", "eeg"])
    raw = mne.io.RawArray(np.vstack([np.zeros_like(x), x]), info, verbose="error")
    np.testing.assert_allclose(TriggerChannel.parse("eeg:TRIG:40uV").onsets(raw), onsets / SFREQ)
    assert TriggerChannel.parse("eeg:TRIG").onsets(raw).size == 0
    with pytest.raises(
        ValueError,
        match=r"channel 'STI 014': the level 40uV of 'eeg:STI "
        r"014:40uV' is a voltage, but the channel's samples are not",
    ):
        TriggerChannel.parse("eeg:STI 014:40uV").onsets(_raw(np.zeros(100)))


def test_the_level_midway_through_a_leads_range_is_put_in_a_readable_unit():
    assert TriggerChannel.midway("T", [0.0, 5.0, 0.0], 1.0).spec == "eeg:T:2.5V"
    assert TriggerChannel.midway("T", [0.0, 150e-6], 1.0).spec == "eeg:T:75uV"
    assert TriggerChannel.midway("T", [1.0, 151.0, np.nan], 1e-6).spec == "eeg:T:76uV"
    assert TriggerChannel.midway("T", [0.0, 0.4], 1e-3).spec == "eeg:T:200uV"
    assert TriggerChannel.midway("T", [0.0, 0.9], 1.0).spec == "eeg:T:450mV"
    assert TriggerChannel.midway("T", [3.0, 3.0], 1.0) is None


def test_the_hint_for_a_recording_without_markers_names_the_lead_and_a_level(tmp_path):
    """No ``R128`` annotation, triggers on an 80 µV lead typed EEG: the hint names the lead
    and the spec through the middle of its range; ``eeg:TRIG`` (0.5 V, never reached) gets
    the channel's range and that spec; a file with neither gets no hint."""
    from rt_eeg2fmri.data.eeg_io import marker_hint

    x = np.zeros(2_000)
    x[100::500] = 80e-6
    info = mne.create_info(["Cz", "TRIG"], SFREQ, ["eeg", "eeg"])
    raw = mne.io.RawArray(np.vstack([np.zeros_like(x), x]), info, verbose="error")
    raw.save(tmp_path / "lead_raw.fif", verbose="error")
    raw = mne.io.read_raw_fif(tmp_path / "lead_raw.fif", verbose="error")
    assert marker_hint(raw, "R128").startswith(
        "no 'R128' scanner marker among its annotations, but it has trigger lead(s) ['TRIG']: "
        "if the scanner's triggers are there, pass marker 'eeg:TRIG:40uV'"
    )
    assert marker_hint(raw, "eeg:TRIG") == (
        "no rising edge through 0.5 on its trigger channel 'TRIG', which spans 0 to 8e-05 V: "
        "try marker 'eeg:TRIG:40uV' (the middle of its range)."
    )
    assert "holds the codes [0.0, 1.0]" in marker_hint(_raw(np.r_[0.0, 1.0]), "eeg:STI 014:2")
    assert marker_hint(raw.copy().pick(["Cz"]), "R128") == ""
