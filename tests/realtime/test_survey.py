"""``rt-eeg2fmri streams``: what is on the network, and the ``--trigger`` a live stream needs.

Real producers over loopback: our replay of a FIF (its stim channel and its marker stream)
and mne-lsl's ``PlayerLSL`` (an analog trigger lead it sends in volts, no markers).
"""

from __future__ import annotations

import mne
import numpy as np
import pytest

from apps.cli import main
from rt_eeg2fmri.realtime.survey import format_survey, survey

pytestmark = pytest.mark.lsl
SFREQ = 200.0
T_R = 0.5


def _recording(n_seconds=60.0, *, trigger="stim"):
    """4 EEG channels and the scanner's triggers every 0.5 s from 0.25 s: on ``STI 014``
    (codes) with ``R128`` annotations, or (``"lead"``) only on a 150 µV lead ``TRIG``."""
    n = int(n_seconds * SFREQ)
    rng = np.random.default_rng(4)
    onsets = np.arange(0.25, n_seconds - 1, T_R)
    pulse = np.zeros(n)
    for t in onsets:
        pulse[round(t * SFREQ) : round(t * SFREQ) + 3] = 1.0
    data = [20e-6 * rng.standard_normal((4, n))]
    names, kinds = ["Fz", "Cz", "Pz", "Oz"], ["eeg"] * 4
    if trigger == "stim":
        data.append(pulse[None])
        names, kinds = [*names, "STI 014"], [*kinds, "stim"]
    else:
        data.append(150e-6 * pulse[None] + 1e-6 * rng.standard_normal((1, n)))
        names, kinds = [*names, "TRIG"], [*kinds, "eeg"]
    raw = mne.io.RawArray(np.vstack(data), mne.create_info(names, SFREQ, kinds), verbose="error")
    if trigger == "stim":
        raw.set_annotations(mne.Annotations(onsets, 0.0, ["R128"] * onsets.size))
    return raw


def test_the_streams_are_listed_and_the_trigger_of_a_replay_is_found(tmp_path, uid, capsys):
    """Our replay of a FIF publishes its EEG with ``STI 014`` and its ``R128`` markers:
    listening a few seconds finds both evenly spaced at the TR and suggests the marker
    stream (``--trigger NAME-Markers:R128``), the channel as the other way."""
    from rt_eeg2fmri.replay import Replay, load_recording

    _recording().save(tmp_path / "rec_raw.fif", verbose="error")
    replay = Replay(load_recording(tmp_path / "rec_raw.fif"), name=uid, truth=False,
                    source_id=uid, loop=True)  # fmt: skip
    replay.start()
    try:
        listed = {s["name"]: s for s in survey(wait=1.0)["streams"]}
        assert listed[f"{uid}-EEG"]["sfreq"] == SFREQ and listed[f"{uid}-EEG"]["channels"] == 5
        assert listed[f"{uid}-Markers"]["format"] == "string"
        result = survey(source=f"name:{uid}-EEG", listen=3.0, wait=2.0)
        heard = result["listened"]
        assert f"{uid}-Markers" in heard["marker_streams"]
        assert heard["suggested"] == f"{uid}-Markers:R128" and heard["flag"] == "--trigger"
        assert heard["marker"]["timing"]["t_r"] == pytest.approx(T_R, abs=0.01)
        assert heard["triggers"]["STI 014"]["specs"]["eeg:STI 014"]["t_r"] == pytest.approx(T_R)
        assert heard["channels"] == {"EEG": ["Fz", "Cz", "Pz", "Oz"], "STIM": ["STI 014"]}
        text = format_survey(result)
        assert f"use       --trigger {uid}-Markers:R128" in text
        assert "eeg:STI 014: " in text and "TR 0.5 s" in text and "Problems: none" in text
        assert main(["streams", "--listen", "2", "--source", f"name:{uid}-EEG", "--json"]) == 0
        assert f'"suggested": "{uid}-Markers:R128"' in capsys.readouterr().out
    finally:
        replay.stop()


def test_an_analog_trigger_lead_from_mne_lsl_gets_a_level_in_volts(uid):
    """mne-lsl's ``PlayerLSL`` sends a 150 µV trigger lead (typed EEG) in volts and no
    markers: the lead is found by its label and the level through the middle of its range
    is suggested with its unit, the spec ``stream --trigger`` takes as it is."""
    from mne_lsl.player import PlayerLSL

    player = PlayerLSL(_recording(trigger="lead"), chunk_size=10, name=uid, source_id=uid)
    player.start()
    try:
        heard = survey(source=f"source_id:{uid}", listen=3.0, wait=2.0)["listened"]
    finally:
        player.stop()
    spec = heard["suggested"]
    assert spec is not None and spec.startswith("eeg:TRIG:") and spec.endswith("uV"), heard
    assert 60 < float(spec[9:-2]) < 90
    assert heard["triggers"]["TRIG"]["specs"][spec]["t_r"] == pytest.approx(T_R, abs=0.01)
    assert heard["problems"][0].startswith(f"no 'R128' scanner marker among the marker streams: "
                                           f"try --trigger {spec}")  # fmt: skip


def test_nothing_to_listen_to_is_an_error_naming_the_source(uid):
    with pytest.raises(RuntimeError, match=rf"no LSL stream with name='{uid}' found"):
        survey(source=uid, listen=1.0, wait=0.5)
    with pytest.raises(ValueError, match="'wait' must be"):
        survey(wait=0.0)
