"""The simulated brain: regions at literature MNI coordinates and per-subject parameters.

Each region has a position (MNI mm), an EEG visibility, a network (for the spontaneous
slow fluctuations it shares), task weights per event type, a BOLD blob (Gaussian, σ in
mm) with an amplitude in percent signal change per unit of neural drive, and, when it
is visible in EEG, a current dipole (orientation, evoked components, oscillation bands
whose power follows the drive). Coordinates are rounded peaks from the oddball and
resting-state literature (e.g. Heschl's gyrus ±42, −22, 8; TPJ/supramarginal P300
generators ±55, −47, 24; the left-hand knob of M1 −38, −22, 56; PCC 0, −52, 26).

Deep or closed-field regions (thalamus, insula, hippocampus) are driven by the task and
by their own fluctuations but project nothing to the scalp: their BOLD is the part no
EEG model can predict.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

EVENT_TYPES: tuple[str, ...] = (
    "auditory_standard",
    "auditory_target",
    "visual_standard",
    "visual_target",
    "button_press",
)
NETWORKS: tuple[str, ...] = ("visual", "auditory", "attention", "motor", "dmn", "subcortical")


@dataclass(frozen=True)
class Band:
    """An oscillation of a region's source: ``lo``–``hi`` Hz, ``amp`` nAm at zero drive.

    Its amplitude envelope is ``amp · exp(kappa · z(t))`` with ``z`` the region's
    standardized, 0.5 s-smoothed neural drive: ``kappa < 0`` for alpha/beta suppression,
    ``kappa > 0`` for gamma increases.
    """

    name: str
    lo: float
    hi: float
    amp: float
    kappa: float


@dataclass(frozen=True)
class Region:
    """One simulated region.

    Attributes
    ----------
    name : str
    xyz : tuple of float
        MNI position (mm).
    eeg_visible : bool
    network : str
        One of ``NETWORKS``.
    weights : dict of str to float
        Task weight per event type (neural drive per event, and evoked EEG amplitude).
    sigma : float
        Spatial σ of the BOLD blob (mm).
    amp : float
        BOLD percent signal change per unit of HRF-convolved drive.
    spont : float
        Scale of the spontaneous slow fluctuation in the drive.
    orientation : tuple of float
        Dipole direction (RAS) of a visible region.
    erp : tuple of (latency s, width s, amplitude nAm)
        Evoked components per unit task weight (Gaussian bumps).
    bands : tuple of Band
    """

    name: str
    xyz: tuple[float, float, float]
    eeg_visible: bool
    network: str
    weights: dict = field(default_factory=dict)
    sigma: float = 9.0
    amp: float = 3.0
    spont: float = 0.15
    orientation: tuple[float, float, float] = (0.0, 0.0, 1.0)
    erp: tuple = ()
    bands: tuple = ()


def _vis(w_std: float, w_tgt: float) -> dict:
    return {"visual_standard": w_std, "visual_target": w_tgt}


def _aud(w_std: float, w_tgt: float) -> dict:
    return {"auditory_standard": w_std, "auditory_target": w_tgt}


def _alpha(amp: float, kappa: float) -> Band:
    return Band("alpha", 8.0, 12.0, amp, kappa)


def _gamma(amp: float, kappa: float) -> Band:
    return Band("gamma", 32.0, 45.0, amp, kappa)


_P1 = (0.100, 0.018, 18.0)
_N1_VIS = (0.170, 0.028, -22.0)
_N1_AUD = (0.100, 0.022, -28.0)  # dipole points up: negative = vertex-negative N1
_P2_AUD = (0.185, 0.035, 16.0)
_P300 = (0.350, 0.075, 30.0)
_MRCP = (0.020, 0.060, 20.0)

_VISUAL_BANDS = (_alpha(45.0, -0.55), _gamma(3.0, 0.8))
_AUDITORY_BANDS = (_alpha(12.0, -0.45), _gamma(3.0, 0.8))
_P3_BANDS = (Band("theta", 4.0, 7.0, 12.0, 0.45), _alpha(20.0, -0.5))
_DMN_BANDS = (_alpha(25.0, 0.5), Band("theta", 4.0, 7.0, 8.0, 0.3))


def _mirror(name: str, xyz, **kw) -> list[Region]:
    """Left and right copies of a region (x mirrored, orientation's x mirrored)."""
    x, y, z = xyz
    ori = kw.pop("orientation", (0.0, 0.0, 1.0))
    xr = kw.pop("x_right", -x)
    return [
        Region(f"{name}_L", (x, y, z), orientation=ori, **kw),
        Region(f"{name}_R", (xr, y, z), orientation=(-ori[0], ori[1], ori[2]), **kw),
    ]


REGIONS: tuple[Region, ...] = tuple(
    [
        *_mirror(
            "V1", (-10.0, -94.0, 0.0), x_right=12.0, eeg_visible=True, network="visual",
            weights=_vis(1.0, 1.1), orientation=(0.15, -0.8, 0.55), erp=(_P1,),
            bands=_VISUAL_BANDS,
        ),
        *_mirror(
            "V2", (-16.0, -88.0, 14.0), x_right=18.0, eeg_visible=True, network="visual",
            weights=_vis(0.8, 1.0), orientation=(-0.2, -0.7, 0.7), erp=(_P1, _N1_VIS),
            bands=_VISUAL_BANDS,
        ),
        *_mirror(
            "LOC", (-44.0, -74.0, -4.0), x_right=44.0, eeg_visible=True, network="visual",
            weights=_vis(0.7, 1.0), amp=2.5, orientation=(-0.75, -0.6, 0.25), erp=(_N1_VIS,),
            bands=_VISUAL_BANDS,
        ),
        *_mirror(
            "A1", (-42.0, -22.0, 8.0), x_right=46.0, eeg_visible=True, network="auditory",
            weights=_aud(1.0, 1.1), orientation=(-0.2, 0.1, 0.97), erp=(_N1_AUD, _P2_AUD),
            bands=_AUDITORY_BANDS,
        ),
        *_mirror(
            "STG", (-58.0, -30.0, 10.0), x_right=60.0, eeg_visible=True, network="auditory",
            weights=_aud(0.7, 1.0), amp=2.5, orientation=(-0.6, 0.0, 0.8),
            erp=(_N1_AUD, _P2_AUD), bands=_AUDITORY_BANDS,
        ),
        *_mirror(
            "TPJ", (-54.0, -48.0, 24.0), x_right=56.0, eeg_visible=True, network="attention",
            weights={**_aud(0.2, 1.0), **_vis(0.2, 1.0)}, amp=2.5,
            orientation=(-0.5, -0.3, 0.8), erp=(_P300,), bands=_P3_BANDS,
        ),
        *_mirror(
            "IPS", (-32.0, -58.0, 46.0), x_right=34.0, eeg_visible=True, network="attention",
            weights={**_aud(0.15, 0.9), **_vis(0.15, 0.9)}, amp=2.5,
            orientation=(-0.3, -0.35, 0.9), erp=(_P300,), bands=_P3_BANDS,
        ),
        Region(
            "M1_L", (-38.0, -22.0, 56.0), eeg_visible=True, network="motor",
            weights={"button_press": 1.6}, amp=3.0, orientation=(0.2, 0.85, 0.5),
            erp=(_MRCP,), bands=(Band("beta", 15.0, 25.0, 18.0, -0.6), _gamma(2.5, 0.7)),
        ),
        Region(
            "PCC", (0.0, -52.0, 26.0), eeg_visible=True, network="dmn",
            weights=dict.fromkeys(EVENT_TYPES[:4], -0.25), spont=0.25, amp=2.0,
            sigma=10.0, orientation=(0.0, -0.5, 0.85), bands=_DMN_BANDS,
        ),
        Region(
            "mPFC", (0.0, 52.0, 8.0), eeg_visible=True, network="dmn",
            weights=dict.fromkeys(EVENT_TYPES[:4], -0.2), spont=0.25, amp=2.0,
            sigma=10.0, orientation=(0.0, 0.9, 0.4), bands=_DMN_BANDS,
        ),
        *_mirror(
            "AG", (-46.0, -66.0, 32.0), x_right=48.0, eeg_visible=True, network="dmn",
            weights=dict.fromkeys(EVENT_TYPES[:4], -0.2), spont=0.25, amp=2.0,
            orientation=(-0.6, -0.4, 0.7), bands=_DMN_BANDS,
        ),
        *_mirror(
            "Thalamus", (-10.0, -18.0, 6.0), x_right=10.0, eeg_visible=False,
            network="subcortical",
            weights={**_aud(0.5, 0.6), **_vis(0.5, 0.6), "button_press": 0.3}, amp=2.0,
            spont=0.2,
        ),
        *_mirror(
            "Insula", (-36.0, 16.0, 2.0), x_right=38.0, eeg_visible=False, network="attention",
            weights={**_aud(0.2, 0.9), **_vis(0.2, 0.9), "button_press": 0.3}, amp=2.0,
            spont=0.2,
        ),
        *_mirror(
            "Hippocampus", (-26.0, -22.0, -14.0), x_right=28.0, eeg_visible=False,
            network="dmn", weights={"auditory_target": 0.3, "visual_target": 0.3}, amp=1.5,
            spont=0.25,
        ),
    ]
)  # fmt: skip


def task_weights(regions=REGIONS) -> np.ndarray:
    """Task weights as an array of shape (n_regions, n_event_types), columns ``EVENT_TYPES``."""
    return np.array([[r.weights.get(t, 0.0) for t in EVENT_TYPES] for r in regions])


@dataclass(frozen=True)
class SubjectParams:
    """What makes one simulated subject differ from another.

    Attributes
    ----------
    label : str
        BIDS label (``"01"``).
    xyz : array of shape (n_regions, 3)
        Region positions (MNI mm), nominal plus a few mm of jitter.
    orientation : array of shape (n_regions, 3)
        Unit dipole directions, jittered by ~15°.
    bold_gain, eeg_gain : array of shape (n_regions,)
        Multiplicative gains of the BOLD amplitude and of the source strength.
    hrf_peak : float
        Peak latency of the subject's HRF (s, 5–7).
    alpha_freq : float
        Individual alpha frequency (Hz).
    erp_latency_shift : float
        Shift of every evoked component (s).
    rt_median : float
        Median button-press reaction time (s).
    baseline_scale : float
        Global EPI intensity factor.
    hrf_undershoot : float
        Time to the HRF's undershoot peak (s; SPM: 16).
    hrf_ratio : float
        Undershoot amplitude relative to the peak (SPM: 1/6).
    region_delay : array of shape (n_regions,) | None
        Per-region haemodynamic delay added to ``hrf_peak`` (s); ``None``: none.
    noise_scale : float
        Factor on the thermal and physiological BOLD noise.
    """

    label: str
    xyz: np.ndarray
    orientation: np.ndarray
    bold_gain: np.ndarray
    eeg_gain: np.ndarray
    hrf_peak: float
    alpha_freq: float
    erp_latency_shift: float
    rt_median: float
    baseline_scale: float
    hrf_undershoot: float = 16.0
    hrf_ratio: float = 1.0 / 6.0
    region_delay: np.ndarray | None = None
    noise_scale: float = 1.0

    def delay(self, i: int) -> float:
        """Haemodynamic delay of region ``i`` added to the subject's HRF peak (s)."""
        return 0.0 if self.region_delay is None else float(self.region_delay[i])

    def to_json(self, regions=REGIONS) -> dict:
        """A JSON-serializable description (written to ``derivatives/simulation``)."""
        return {
            "subject": self.label,
            "hrf_peak_s": round(self.hrf_peak, 4),
            "alpha_freq_hz": round(self.alpha_freq, 4),
            "erp_latency_shift_s": round(self.erp_latency_shift, 4),
            "rt_median_s": round(self.rt_median, 4),
            "baseline_scale": round(self.baseline_scale, 4),
            "hrf_undershoot_s": round(self.hrf_undershoot, 4),
            "hrf_undershoot_ratio": round(self.hrf_ratio, 4),
            "bold_noise_scale": round(self.noise_scale, 4),
            "regions": {
                r.name: {
                    "x": round(float(self.xyz[i, 0]), 2),
                    "y": round(float(self.xyz[i, 1]), 2),
                    "z": round(float(self.xyz[i, 2]), 2),
                    "orientation": [round(float(v), 4) for v in self.orientation[i]],
                    "bold_gain": round(float(self.bold_gain[i]), 4),
                    "eeg_gain": round(float(self.eeg_gain[i]), 4),
                    "bold_amp_percent_per_unit": round(float(r.amp * self.bold_gain[i]), 4),
                    "eeg_visible": r.eeg_visible,
                    "hrf_delay_s": round(self.delay(i), 4),
                }
                for i, r in enumerate(regions)
            },
        }


def draw_subject(
    rng: np.random.Generator, label: str, regions=REGIONS, *, randomize: bool = False
) -> SubjectParams:
    """Draw one subject's parameters.

    Parameters
    ----------
    rng : numpy.random.Generator
    label : str
        BIDS subject label.
    regions : sequence of Region
    randomize : bool
        Also draw the haemodynamics and the noise level (see :func:`randomize_regions`):
        HRF peak 4–8 s, undershoot 12–20 s at 0–35 % of the peak, a per-region delay
        (sd 0.75 s) and a BOLD noise factor 0.6–1.6. Off: SPM's shape, peak 5–7 s.
    """
    n = len(regions)
    xyz = np.array([r.xyz for r in regions], dtype=float) + rng.normal(0.0, 2.5, (n, 3))
    ori = np.array([r.orientation for r in regions], dtype=float)
    ori /= np.linalg.norm(ori, axis=1, keepdims=True)
    ori = ori + rng.normal(0.0, 0.25, (n, 3))
    ori /= np.linalg.norm(ori, axis=1, keepdims=True)
    params = SubjectParams(
        label=label,
        xyz=xyz,
        orientation=ori,
        bold_gain=np.exp(rng.normal(0.0, 0.2, n)),
        eeg_gain=np.exp(rng.normal(0.0, 0.2, n)),
        hrf_peak=float(rng.uniform(5.0, 7.0)),
        alpha_freq=float(np.clip(rng.normal(10.0, 0.8), 8.5, 11.5)),
        erp_latency_shift=float(rng.normal(0.0, 0.010)),
        rt_median=float(rng.uniform(0.38, 0.52)),
        baseline_scale=float(rng.uniform(0.85, 1.15)),
    )
    if not randomize:  # drawn after the fixed generator's, so its outputs stay as they were
        return params
    return replace(
        params,
        hrf_peak=float(rng.uniform(4.0, 8.0)),
        hrf_undershoot=float(rng.uniform(12.0, 20.0)),
        hrf_ratio=float(rng.uniform(0.0, 0.35)),
        region_delay=rng.normal(0.0, 0.75, n),
        noise_scale=float(rng.uniform(0.6, 1.6)),
    )


# Bands a randomized region may couple through, with a typical amplitude (nAm).
_BAND_CHOICES: tuple[Band, ...] = (
    Band("delta", 1.5, 3.5, 20.0, 0.0),
    Band("theta", 4.0, 7.0, 12.0, 0.0),
    Band("alpha", 8.0, 12.0, 25.0, 0.0),
    Band("beta", 15.0, 25.0, 15.0, 0.0),
    Band("gamma", 32.0, 45.0, 3.0, 0.0),
)


def randomize_regions(rng: np.random.Generator, regions=REGIONS) -> tuple[Region, ...]:
    """One dataset's draw of the generative choices our models were designed around.

    Every EEG-visible region couples to its drive through one or two bands chosen at
    random (delta, theta, alpha, beta, gamma), each with a random sign and strength
    (|κ| 0.25–0.8) and an amplitude 0.5–2× the band's typical one; BOLD blob widths are
    scaled 0.6–1.6× and amplitudes 0.6–1.4×, evoked components 0.5–1.5×. Positions,
    networks and task weights stay. With the per-subject draws of
    :func:`draw_subject` (``randomize=True``), this is the ``simulate --randomize``
    generator: a model trained or chosen on it cannot lean on one coupling pattern.
    """
    out = []
    for r in regions:
        sigma = r.sigma * float(rng.uniform(0.6, 1.6))
        amp = r.amp * float(rng.uniform(0.6, 1.4))
        if not r.eeg_visible:
            out.append(replace(r, sigma=sigma, amp=amp))
            continue
        picks = rng.choice(len(_BAND_CHOICES), size=int(rng.integers(1, 3)), replace=False)
        bands = tuple(
            replace(
                _BAND_CHOICES[k],
                amp=_BAND_CHOICES[k].amp * float(np.exp(rng.uniform(np.log(0.5), np.log(2.0)))),
                kappa=float(rng.choice((-1.0, 1.0)) * rng.uniform(0.25, 0.8)),
            )
            for k in sorted(picks)
        )
        scale = float(rng.uniform(0.5, 1.5))
        erp = tuple((lat, width, a * scale) for lat, width, a in r.erp)
        out.append(replace(r, sigma=sigma, amp=amp, bands=bands, erp=erp))
    return tuple(out)
