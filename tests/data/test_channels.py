from __future__ import annotations

import numpy as np
import pytest

from rt_eeg2fmri.data.channels import map_channels, unit_scale, unit_scales


def test_channels_are_matched_by_label_ignoring_case_spaces_and_extras():
    labels = ["ECG", " cz ", "FZ", None, "Pz", "Trigger"]
    index = map_channels(labels, ["Fz", "Cz", "Pz"])
    np.testing.assert_array_equal(index, [2, 1, 4])
    assert index.dtype == np.intp


def test_missing_channels_raise_naming_them_or_are_zero_filled(rt_log):
    with pytest.raises(ValueError, match=r"2 of the model's 3 channels are missing.*'Oz', 'T7'"):
        map_channels(["Fz", "Cz"], ["Fz", "Oz", "T7"], stream="stream 'amp'")
    index = map_channels(["Fz", "Cz"], ["Fz", "Oz", "Cz"], allow_missing=True, stream="s")
    np.testing.assert_array_equal(index, [0, -1, 1])
    assert any(
        "zero-filling 1 model channel" in r.message and "Oz" in r.message for r in rt_log.records
    )


def test_a_label_twice_in_the_stream_is_ambiguous():
    with pytest.raises(ValueError, match=r"'Cz' \(stream columns \[0, 2\]\)"):
        map_channels(["Cz", "Fz", "CZ"], ["Cz"])
    np.testing.assert_array_equal(map_channels(["Cz", "X", "x"], ["Cz"]), [0])  # unused dups


def test_a_stream_without_labels_needs_assume_order_and_equal_counts():
    with pytest.raises(ValueError, match="no channel labels.*assume_order=True"):
        map_channels(None, ["A", "B"], n_stream_channels=2, stream="stream 'amp'")
    with pytest.raises(ValueError, match="no channel labels"):
        map_channels([None, None], ["A", "B"])
    np.testing.assert_array_equal(map_channels([None, None], ["A", "B"], assume_order=True), [0, 1])
    with pytest.raises(ValueError, match="got 3 stream channels and 2 in 'ch_names'"):
        map_channels(None, ["A", "B"], n_stream_channels=3, assume_order=True)
    with pytest.raises(ValueError, match="'n_stream_channels' is needed"):
        map_channels(None, ["A"])
    with pytest.raises(ValueError, match="2 channel labels for 3 channels"):
        map_channels(["A", "B"], ["A"], n_stream_channels=3)
    with pytest.raises(ValueError, match="duplicate channel name"):
        map_channels(["A"], ["A", "a"])


@pytest.mark.parametrize(
    ("unit", "scale"),
    [("microvolts", 1e-6), ("µV", 1e-6), ("μV", 1e-6), (" uV ", 1e-6), ("mV", 1e-3),
     ("millivolts", 1e-3), ("V", 1.0), ("volts", 1.0), ("nV", 1e-9), ("", None), (None, None)],
)  # fmt: skip
def test_unit_scale(unit, scale):
    assert unit_scale(unit) == scale


def test_unknown_unit_raises_naming_it():
    with pytest.raises(ValueError, match="unknown unit 'degC'"):
        unit_scale("degC")
    with pytest.raises(ValueError, match="stream 'amp': channel 'Cz': unknown unit 'counts'"):
        unit_scales(["uV", "counts"], np.array([0, 1]), ["Fz", "Cz"], stream="stream 'amp'")


def test_unit_scales_default_to_microvolts_with_one_warning(rt_log):
    units = ["mV", None, "", "degC"]  # the unknown unit is on a channel the model ignores
    scales = unit_scales(units, np.array([0, 1, 2, -1]), ["A", "B", "C", "D"], stream="s")
    np.testing.assert_array_equal(scales, [1e-3, 1e-6, 1e-6, 0.0])
    warnings = [r for r in rt_log.records if "no unit" in r.message]
    assert len(warnings) == 1 and "2 channel(s)" in warnings[0].message
    np.testing.assert_array_equal(unit_scales(None, np.array([1]), ["A"]), [1e-6])
    with pytest.raises(ValueError, match="2 indices for 1 channel names"):
        unit_scales(None, np.array([0, 1]), ["A"])
