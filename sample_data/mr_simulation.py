"""Simulated T1-weighted spin-echo MRI (1.5 T) from a CT in HU plus organ labels.

THIS IS A SIMULATION, NOT A REAL MRI. Used by ``make_sample_data.py``.

Model
-----
Every voxel inside the body is a mixture of at most two "compartments" (tissues of the table
``TISSUES`` below), chosen from its organ label, with the mixing fraction read from its HU value.
Each label group has a *ladder* of (HU anchor, tissue) pairs; between two anchors the voxel is a
linear partial-volume mixture of the two tissues, and outside the ladder it is the end tissue.
Examples: unlabelled soft tissue = air (-1000 HU) / fat (-100 HU) / muscle (+40 HU), which is the
two-compartment fat/water model; lung = air / lung tissue, i.e. tissue density from HU; bone =
fat / marrow / cortical bone. Fat and water do not exchange on the MR time scale, so signals (not
relaxation rates) mix linearly, and the voxel signal is simply the piecewise-linear interpolation
of the compartments' signals at the anchors.

Signal of a compartment (spin echo, TR >> TE, perfect pulses, no T2* in a spin echo):

    S = PD * (1 - exp(-TR / T1)) * exp(-TE / T2) * flow_residual

``flow_residual`` < 1 models the spin-echo flow void of moving blood: spins that leave the slice
between the 90 and 180 degree pulses give no echo (wash-out ~ v * TE / 2 over the slice
thickness). Arterial/cardiac blood (fast) keeps 10 %, venous blood (slower) 35 %. No other flow,
motion, chemical-shift, susceptibility or coil effects are modelled, apart from a smooth bias
field and Rician noise added by the caller.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

FIELD_STRENGTH_T = 1.5
TR_MS = 500.0
TE_MS = 15.0

STANISZ = "Stanisz et al. 2005, Magn Reson Med 54:507 (1.5 T)"
BAZELAIRE = "de Bazelaire et al. 2004, Radiology 230:652 (1.5 T column)"
STADLER = "Stadler et al. 2005, J Magn Reson Imaging 21:759 (1.5 T, inspiration)"
ASSUMED = "assumed (no single literature source; see README)"


@dataclass(frozen=True)
class Tissue:
    """MR properties of one compartment at 1.5 T.

    Attributes:
        t1_ms: longitudinal relaxation time.
        t2_ms: transverse relaxation time.
        pd: proton density relative to pure water (approximate; chosen, not measured).
        flow_residual: fraction of signal left after spin-echo flow wash-out (1 = static).
        source: where T1/T2 come from.
    """

    t1_ms: float
    t2_ms: float
    pd: float
    flow_residual: float = 1.0
    source: str = ASSUMED

    def signal(self, tr_ms: float = TR_MS, te_ms: float = TE_MS) -> float:
        """Spin-echo signal PD * (1 - exp(-TR/T1)) * exp(-TE/T2) * flow_residual."""
        return self.pd * (1.0 - math.exp(-tr_ms / self.t1_ms)) * math.exp(-te_ms / self.t2_ms) * self.flow_residual


# T1/T2 at 1.5 T (ms). PD: relative to water, approximate values by tissue water/fat proton
# content (not from the cited papers). Cortical bone: T2 ~ 0.4 ms (ultrashort), so any
# TE of 15 ms gives ~0 signal whatever its T1/PD; its numbers are indicative only.
TISSUES: dict[str, Tissue] = {
    "air": Tissue(t1_ms=1.0, t2_ms=1.0, pd=0.0, source="no signal"),
    "fat": Tissue(343.0, 58.0, 0.90, source=BAZELAIRE + ", subcutaneous fat"),
    "muscle": Tissue(856.0, 27.0, 0.80, source=BAZELAIRE + ", paravertebral muscle"),
    "liver": Tissue(586.0, 46.0, 0.70, source=BAZELAIRE),
    "spleen": Tissue(1057.0, 79.0, 0.80, source=BAZELAIRE),
    "pancreas": Tissue(584.0, 46.0, 0.75, source=BAZELAIRE),
    "renal_cortex": Tissue(966.0, 87.0, 0.85, source=BAZELAIRE),
    "renal_medulla": Tissue(1412.0, 85.0, 0.85, source=BAZELAIRE),
    "marrow": Tissue(549.0, 49.0, 0.90, source=BAZELAIRE + ", L4 vertebral marrow"),
    "myocardium": Tissue(1030.0, 40.0, 0.80, source=STANISZ + ", heart"),
    "cartilage": Tissue(1024.0, 30.0, 0.70, source=STANISZ),
    "spinal_cord": Tissue(745.0, 74.0, 0.75, source=STANISZ),
    "blood_arterial": Tissue(1441.0, 290.0, 0.90, flow_residual=0.10, source=STANISZ + ", blood"),
    "blood_venous": Tissue(1441.0, 290.0, 0.90, flow_residual=0.35, source=STANISZ + ", blood"),
    "lung_tissue": Tissue(1199.0, 40.0, 0.80, source=STADLER + " (T1); T2 and PD assumed"),
    "fluid": Tissue(3000.0, 1000.0, 1.00, source=ASSUMED + "; free-water-like (bile, urine, cyst, CSF)"),
    "thyroid": Tissue(800.0, 60.0, 0.80, source=ASSUMED),
    "cortical_bone": Tissue(250.0, 0.4, 0.20, source=ASSUMED + "; ultrashort T2"),
}

# Fixed mixtures for labels that cover two tissues that CT cannot tell apart.
COMPOSITES: dict[str, dict[str, float]] = {
    "spinal_canal": {"spinal_cord": 0.5, "fluid": 0.5},  # the label covers cord + CSF in the dural sac
}

Ladder = tuple[tuple[float, str], ...]


def compartment_signal(name: str) -> float:
    """Signal of a tissue of ``TISSUES`` or of a fixed mixture of ``COMPOSITES``."""
    if name in COMPOSITES:
        return sum(frac * TISSUES[t].signal() for t, frac in COMPOSITES[name].items())
    return TISSUES[name].signal()


def _soft(tissue: str) -> Ladder:
    """Air / fat / tissue partial-volume ladder for a solid organ or vessel."""
    return ((-1000.0, "air"), (-100.0, "fat"), (40.0, tissue))


def _gas(tissue: str) -> Ladder:
    """Air / tissue ladder for gas-containing organs (gut, airway): gas < -500 HU is mostly air."""
    return ((-1000.0, "air"), (40.0, tissue))


# HU anchors per label group. The CT is contrast enhanced (aorta ~400 HU), so HU above
# ~150-300 in vessels/heart/unlabelled tissue is enhanced (flowing) blood, not bone; in the heart
# label it separates blood pool (~350 HU) from myocardium (~120 HU), and in the kidney the
# enhancing cortex (~260 HU) from the medulla (~80 HU).
LADDERS: dict[str, Ladder] = {
    "unlabelled": (*_soft("muscle"), (150.0, "muscle"), (300.0, "blood_arterial")),
    "lung": (*_gas("lung_tissue"), (150.0, "lung_tissue"), (300.0, "blood_arterial")),
    "heart": (*_soft("myocardium"), (150.0, "myocardium"), (300.0, "blood_arterial")),
    "artery": _soft("blood_arterial"),
    "vein": _soft("blood_venous"),
    "bone": ((-1000.0, "air"), (-100.0, "fat"), (50.0, "marrow"), (200.0, "marrow"), (800.0, "cortical_bone")),
    "cartilage": (*_soft("cartilage"), (250.0, "cartilage"), (800.0, "cortical_bone")),
    "gut": _gas("muscle"),
    "airway": _gas("cartilage"),
    "liver": _soft("liver"),
    "spleen": _soft("spleen"),
    "pancreas": _soft("pancreas"),
    "kidney": (*_soft("renal_medulla"), (100.0, "renal_medulla"), (250.0, "renal_cortex")),
    "fluid": _soft("fluid"),
    "thyroid": _soft("thyroid"),
    "spinal_cord": _soft("spinal_canal"),
    "muscle": _soft("muscle"),
}

# Structure name (structures.csv) -> ladder; first matching regular expression wins.
STRUCTURE_RULES: tuple[tuple[str, str | None], ...] = (
    (r"lung_", "lung"),
    (r"heart|atrial_appendage", "heart"),
    (r"aorta|artery|brachiocephalic_trunk|pulmonary_vein", "artery"),
    (r"vein|vena", "vein"),
    (r"vertebrae|sacrum|rib_|sternum|humerus|scapula|clavicula|femur|hip_|skull|carpal", "bone"),
    (r"costal_cartilages", "cartilage"),
    (r"stomach|small_bowel|duodenum|colon|esophagus", "gut"),
    (r"trachea", "airway"),
    (r"kidney_cyst|gallbladder|urinary_bladder", "fluid"),
    (r"kidney", "kidney"),
    (r"liver|spleen|pancreas|spinal_cord", None),  # ladder named like the structure
    (r"thyroid", "thyroid"),
    (r"gluteus|autochthon|iliopsoas", "muscle"),
    (r"adrenal|prostate|brain", "muscle"),  # no 1.5 T values in the cited sources: generic tissue
)


def ladder_for_structure(name: str) -> str:
    """Return the ladder name for a structure name from ``structures.csv``.

    Raises:
        KeyError: if no rule matches (a new label set must be mapped explicitly).
    """
    for pattern, ladder in STRUCTURE_RULES:
        if re.search(pattern, name):
            return ladder or name
    raise KeyError(f"structure {name!r} has no MR tissue rule; add it to STRUCTURE_RULES")


def ladder_curve(ladder: Ladder) -> tuple[np.ndarray, np.ndarray]:
    """Return (HU anchors, signal at anchors) for ``np.interp``."""
    hu = np.array([a for a, _ in ladder], dtype=np.float64)
    if np.any(np.diff(hu) <= 0):
        raise ValueError(f"ladder anchors must increase, got {hu.tolist()}")
    return hu, np.array([compartment_signal(t) for _, t in ladder], dtype=np.float64)


def simulate_signal(hu: np.ndarray, ladder_index: np.ndarray, ladder_names: list[str]) -> np.ndarray:
    """Noise-free, bias-free T1w spin-echo signal per voxel (float32, arbitrary units).

    Args:
        hu: CT in HU (X, Y, Z), ideally lightly denoised.
        ladder_index: int array (X, Y, Z), index into ``ladder_names``; -1 = outside the body.
        ladder_names: keys of ``LADDERS``.

    Returns:
        Signal (X, Y, Z), float32; 0 outside the body.
    """
    signal = np.zeros(hu.shape, dtype=np.float32)
    for k, name in enumerate(ladder_names):
        sel = ladder_index == k
        if sel.any():
            xs, ys = ladder_curve(LADDERS[name])
            signal[sel] = np.interp(hu[sel], xs, ys)
    return signal


def polynomial_bias_field(
    coords: tuple[np.ndarray, np.ndarray, np.ndarray],
    body: np.ndarray,
    rng: np.random.Generator,
    amplitude: float,
) -> np.ndarray:
    """Smooth multiplicative field exp(log(1 + a) * p), p a random 2nd-order polynomial.

    p has zero mean and max |p| = 1 over the body, so the field spans about [1/(1+a), 1+a] there.

    Args:
        coords: normalised coordinates (about -1..1) along each axis, broadcastable to a volume.
        body: boolean body mask (where p is normalised).
        rng: seeded generator (draws 9 coefficients).
        amplitude: relative amplitude, e.g. 0.15 gives a field within [1/1.15, 1.15].

    Returns:
        Field (X, Y, Z), float32.
    """
    u, v, w = coords
    terms = (u, v, w, u * u, v * v, w * w, u * v, u * w, v * w)
    coef = rng.normal(size=len(terms))
    poly = sum((c * t for c, t in zip(coef, terms, strict=True)), start=np.zeros(body.shape))
    poly = poly - poly[body].mean()
    poly = poly / np.abs(poly[body]).max()
    return np.exp(math.log1p(amplitude) * poly).astype(np.float32)


def add_rician_noise(signal: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Magnitude of (signal + n1, n2), n1, n2 ~ N(0, sigma^2) i.i.d. per voxel (float64)."""
    n1 = rng.normal(0.0, sigma, size=signal.shape)
    n2 = rng.normal(0.0, sigma, size=signal.shape)
    return np.hypot(signal + n1, n2)
