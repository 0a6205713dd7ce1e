from __future__ import annotations

import time

import pylsl
import pytest

from rt_eeg2fmri.realtime.resolve import lsl_timeout, parse_source, resolve_eeg_stream


@pytest.mark.parametrize(
    ("source", "expected"),
    [("Amp", ("name", "Amp")), ("name:Amp", ("name", "Amp")), ("type:EEG", ("type", "EEG")),
     ("source_id: abc ", ("source_id", "abc")), ("host:Amp", ("name", "host:Amp")),
     ("type:", ("name", "type:"))],
)  # fmt: skip
def test_parse_source(source, expected):
    assert parse_source(source) == expected


def test_lsl_timeout_nudges_only_half_a_second():
    assert (lsl_timeout(0.5), lsl_timeout(0.3), lsl_timeout(5.0)) == (0.51, 0.3, 5.0)


def test_parse_source_rejects_empty():
    with pytest.raises(ValueError, match="'source' must be a non-empty string, got ''"):
        parse_source("")


@pytest.fixture
def outlet(uid):
    info = pylsl.StreamInfo(uid, f"EEG-{uid}", 3, 250.0, pylsl.cf_float32, f"sid-{uid}")
    outlet = pylsl.StreamOutlet(info)
    yield outlet
    del outlet


@pytest.mark.lsl
@pytest.mark.parametrize("query", ["{uid}", "name:{uid}", "type:EEG-{uid}", "source_id:sid-{uid}"])
def test_resolve_by_name_type_or_source_id(outlet, uid, query):
    info = resolve_eeg_stream(query.format(uid=uid), timeout=5)
    assert (info.name(), info.source_id(), info.channel_count()) == (uid, f"sid-{uid}", 3)


@pytest.mark.lsl
def test_no_match_lists_the_visible_streams(outlet, uid):
    t0 = time.monotonic()
    with pytest.raises(RuntimeError) as err:
        resolve_eeg_stream(f"name:missing-{uid}", timeout=0.5)
    assert time.monotonic() - t0 < 3.0  # liblsl's 5 s stall at exactly 0.5 s is avoided
    msg = str(err.value)
    assert f"no LSL stream with name='missing-{uid}'" in msg
    assert f"name='{uid}' type='EEG-{uid}' source_id='sid-{uid}' channels=3 sfreq=250 Hz" in msg
    assert "host=" in msg
    with pytest.raises(ValueError, match="'timeout' must be positive"):
        resolve_eeg_stream(uid, timeout=0)
