"""Any cap onto a model's channels: one fixed spherical-spline matrix per stream or run.

The first stage of the :class:`~rt_eeg2fmri.data.eeg_chain.EEGChain`. Model channels the
recording has are taken as measured; the others are interpolated from the recorded
channels with MNE's spherical splines (``Raw.interpolate_to``, the matrix behind
``interpolate_bads``), computed once from electrode positions: a source's own (a stream's
``desc/channels/channel/location``, a BIDS ``electrodes.tsv``, ``--montage FILE``) or the
standard 10-05 positions of the channel names. A model channel farther than
``max_distance`` from every recorded electrode cannot be interpolated honestly and is an
error that names it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

MAX_DISTANCE = 0.07  # m: the farthest a model channel may lie from every recorded electrode
SPLINE_REG = 1e-5  # the regularisation of MNE's interpolate_bads (interpolate_to's default is 0)


@lru_cache(maxsize=1)
def standard_positions() -> dict[str, np.ndarray]:
    """10-05 positions (m, MNE's head frame), keyed by lower-cased channel name."""
    import mne

    name = "colin27_1005" if "colin27_1005" in mne.channels.get_builtin_montages() else None
    montage = mne.channels.make_standard_montage(name or "standard_1005")
    return {k.lower(): np.asarray(v, float) for k, v in montage.get_positions()["ch_pos"].items()}


def read_positions(path) -> dict[str, np.ndarray]:
    """Electrode positions (m) from a file MNE reads (``.elc``, ``.sfp``, ``.bvef``, ...)."""
    import mne

    from .._checks import check_file

    montage = mne.channels.read_custom_montage(check_file(path, "montage file"))
    return {k: np.asarray(v, float) for k, v in montage.get_positions()["ch_pos"].items()}


def channel_positions(
    names: Sequence[str], given: Mapping[str, np.ndarray] | None = None, *, where: str = "EEG"
) -> np.ndarray:
    """Positions of ``names``, shape (n, 3) in m: ``given`` first, else the 10-05 name.

    Raises ``ValueError`` naming the channels that have neither.
    """
    lookup = {k.lower(): np.asarray(v, float) for k, v in (given or {}).items()}
    standard = standard_positions()
    out, unknown = [], []
    for name in names:
        pos = lookup.get(name.lower(), standard.get(name.strip().lower()))
        if pos is None or not np.isfinite(pos).all():
            unknown.append(name)
            pos = np.full(3, np.nan)
        out.append(pos)
    if unknown:
        raise ValueError(
            f"{where}: no position for channel(s) {unknown}: not 10-05 names, and no location "
            "given (the stream's desc/channels/channel/location, electrodes.tsv or "
            "montage=FILE)."
        )
    return np.array(out)


@dataclass(frozen=True)
class Montage:
    """The map from a recording's channels onto a model's.

    Attributes
    ----------
    columns : array of int, shape (n_used,)
        The recording's channels the model's channels are made from.
    matrix : array of shape (n_chans, n_used) | None
        Model channel = ``matrix @ used channels``; ``None`` when every model channel was
        recorded (a plain selection, ``columns`` in the model's order).
    interpolated : list of str
        Model channels interpolated (not recorded).
    distance : dict of str to float
        For each interpolated channel, the distance (mm) to the nearest recorded electrode.
    """

    columns: np.ndarray
    matrix: np.ndarray | None = None
    interpolated: list = field(default_factory=list)
    distance: dict = field(default_factory=dict)

    def describe(self) -> str:
        """One line for the log and the sidecar."""
        if not self.interpolated:
            return "every model channel recorded"
        far = max(self.distance.values())
        return (
            f"{len(self.interpolated)} model channel(s) interpolated by spherical splines from "
            f"{self.columns.size} recorded: {', '.join(self.interpolated)} (nearest recorded "
            f"electrode at most {far:.0f} mm away)"
        )

    def to_dict(self) -> dict:
        """Plain values (the stream's sidecar)."""
        return {
            "Interpolated": list(self.interpolated),
            "Method": "spherical spline (MNE)" if self.interpolated else "none",
            "NearestElectrodeMm": {k: round(v, 1) for k, v in self.distance.items()},
        }


def make_montage(
    labels: Sequence[str],
    ch_names: Sequence[str],
    index: np.ndarray,
    *,
    positions: Mapping[str, np.ndarray] | None = None,
    max_distance: float = MAX_DISTANCE,
    where: str = "EEG",
    kind: str = "stream",
) -> Montage:
    """The montage of a recording whose channel ``labels`` map onto ``ch_names`` by ``index``.

    Parameters
    ----------
    labels : list of str
        The recording's channels.
    ch_names : list of str
        The model's channels.
    index : array of int, shape (n_chans,)
        Column of each model channel in the recording, ``-1`` when it was not recorded
        (:func:`~rt_eeg2fmri.data.channels.map_channels` with ``allow_missing``).
    positions : mapping of str to array of shape (3,) | None
        Electrode positions (m) overriding the 10-05 positions of the names.
    max_distance : float
        Farthest (m) a model channel may lie from every recorded electrode.
    where : str
        The recording, for messages.
    kind : str
        What the recording is, for messages (``"stream"``, ``"recording"``).

    Returns
    -------
    montage : Montage
    """
    index = np.asarray(index)
    missing = np.flatnonzero(index < 0)
    if missing.size == 0:
        return Montage(columns=index.astype(np.intp))
    # interpolate from every recorded channel with a position (model channels or not)
    known = {k.lower() for k in (positions or {})} | set(standard_positions())
    used = [i for i, lab in enumerate(labels) if lab and lab.strip().lower() in known]
    used_names = [labels[i] for i in used]
    targets = [ch_names[i] for i in missing]

    def cannot(why: str) -> ValueError:
        return ValueError(
            f"{where}: {len(targets)} of the model's {len(ch_names)} channels are missing from "
            f"the {kind}: {', '.join(map(repr, targets))}; they cannot be interpolated: {why} "
            "(pass allow_missing=True to zero-fill them)."
        )

    if len(used) < 4:
        raise cannot(
            f"spherical splines need at least 4 recorded channels with a position, found "
            f"{len(used)} ({used_names})"
        )
    unknown = [t for t in targets if t.lower() not in known]
    if unknown:
        raise cannot(
            f"no position for {unknown} (not 10-05 names, and no location given: the stream's "
            "desc/channels/channel/location, electrodes.tsv or montage=FILE)"
        )
    positions = _in_one_frame(positions)
    pos_in = channel_positions(used_names, positions, where=where)
    pos_out = channel_positions(targets, positions, where=where)
    dist = np.linalg.norm(pos_out[:, None] - pos_in[None], axis=-1).min(axis=1)
    too_far = [
        f"{n} ({1e3 * d:.0f} mm)" for n, d in zip(targets, dist, strict=True) if d > max_distance
    ]
    if too_far:
        raise ValueError(
            f"{where}: model channel(s) {', '.join(too_far)} lie farther than "
            f"{1e3 * max_distance:.0f} mm from every recorded electrode; they cannot be "
            "interpolated (record them, or pass allow_missing=True to zero-fill them)."
        )
    weights = _spline_weights(used_names, pos_in, targets, pos_out)
    col_of = {c: j for j, c in enumerate(used)}
    recorded = [(row, int(col)) for row, col in enumerate(index) if col >= 0]
    for _, col in recorded:  # a recorded model channel without a position: as measured
        if col not in col_of:
            col_of[col] = len(used)
            used.append(col)
    matrix = np.zeros((len(ch_names), len(used)))
    for row, col in recorded:
        matrix[row, col_of[col]] = 1.0
    matrix[missing, : weights.shape[1]] = weights
    return Montage(
        columns=np.asarray(used, np.intp),
        matrix=matrix,
        interpolated=targets,
        distance={n: float(1e3 * d) for n, d in zip(targets, dist, strict=True)},
    )


def _in_one_frame(given) -> dict | None:
    """``given`` positions mapped into the 10-05 frame (m, MNE's head frame).

    A cap's own positions (a stream's locations, ``electrodes.tsv``) are in its own frame
    and units, while the model channels it lacks have only 10-05 positions. A similarity
    transform (scale, rotation, translation; Umeyama's least squares) fitted on the
    channels that have both brings the cap's positions into the 10-05 frame, so the
    spline's sphere fit and the distance check see one head in metres. With fewer than 3
    such channels the positions are taken as they are.
    """
    if not given:
        return None
    given = {k.lower(): np.asarray(v, float) for k, v in given.items()}
    standard = standard_positions()
    common = [k for k in given if k in standard]
    if len(common) < 3:
        return given
    a = np.array([given[k] for k in common])  # the cap's frame
    b = np.array([standard[k] for k in common])  # the 10-05 frame
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov = (b - mu_b).T @ (a - mu_a) / len(common)
    u, d, vt = np.linalg.svd(cov)
    sign = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
    rot = u @ sign @ vt
    scale = np.trace(np.diag(d) @ sign) / ((a - mu_a) ** 2).sum(1).mean()
    return {k: mu_b + scale * rot @ (v - mu_a) for k, v in given.items()}


def _spline_weights(names_in, pos_in, names_out, pos_out) -> np.ndarray:
    """MNE's spherical-spline interpolation matrix, shape (n_out, n_in).

    ``Raw.interpolate_to`` on an identity "recording" returns its matrix; the sphere is fit
    to every electrode (recorded and interpolated), as ``interpolate_bads`` does.
    """
    import mne

    with mne.utils.use_log_level("error"):
        every = mne.create_info([*names_in, *names_out], 1.0, "eeg")
        every.set_montage(
            mne.channels.make_dig_montage(
                dict(zip([*names_in, *names_out], np.vstack([pos_in, pos_out]), strict=True)),
                coord_frame="head",
            )
        )
        origin = mne.bem.fit_sphere_to_headshape(every, dig_kinds=("eeg",), units="m")[1]
        raw = mne.io.RawArray(np.eye(len(names_in)), mne.create_info(list(names_in), 1.0, "eeg"))
        raw.set_montage(
            mne.channels.make_dig_montage(
                dict(zip(names_in, pos_in, strict=True)), coord_frame="head"
            )
        )
        target = mne.channels.make_dig_montage(
            dict(zip(names_out, pos_out, strict=True)), coord_frame="head"
        )
        out = raw.interpolate_to(target, method="spline", origin=origin, reg=SPLINE_REG)
    return out.get_data(picks=list(names_out))
