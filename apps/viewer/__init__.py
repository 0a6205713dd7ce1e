"""The live viewer: orthogonal slices of streamed volumes over the MNI T1.

A linked crosshair, a time course, prediction beside truth and an EEG strip. Qt-free
parts (testable without a display): :mod:`.logic` (orientation, slicing, colour,
crosshair), :mod:`.series` (history, pairing, correlation, status), :mod:`.model`
(``ViewerModel``), :mod:`.streams` (LSL subscribers). Qt parts: :mod:`.window`
(``ViewerWindow``) and :mod:`.app` (``run_viewer``, ``run_engine_viewer``).
"""
