"""Synthetic radiographs of cast parts with simulated flaws: the data that ships with flawscope.

Two generators:

* `render_radiograph` / `generate_dataset`: a procedural cast part (wheel with hub, spokes, rim and bores,
  or a ribbed plate with bosses) gives a path-length map in mm; the detector sees I = I0·exp(-μ·t)
  (Beer-Lambert), blurred by a Gaussian PSF, with photon (Poisson) and electronic (Gaussian) noise, as 16-bit.
* `superimpose_flaws` / `superimpose_dataset`: simulated flaws added to *real* defect-free radiographs in the
  attenuation domain, the GDXray practice (Mery et al.): grey value -> -log -> change the path length -> back.

Flaws change the path length: voids (gas pores, blowholes, shrinkage clusters: ellipsoids; cracks: thin
tortuous voids) shorten it and look BRIGHTER (more dose reaches the detector); inclusions (denser material)
attenuate more and look DARKER. Each image comes with its pixel mask, one box per connected flaw and the flaw
types present. Image i is drawn from `np.random.default_rng(seed + i)` only, so it is the same whatever the
number of images or workers.
"""

from __future__ import annotations

import csv
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from flawscope.data.sample import Box, Sample
from flawscope.errors import ConfigError, DatasetError

FLAW_TYPES: tuple[str, ...] = ("pore", "crack", "inclusion")
PARTS: tuple[str, ...] = ("wheel", "plate", "mixed")
# Effective linear attenuation coefficients (1/mm) for a ~100-150 kV tube spectrum; they set how dark a part
# of a given thickness looks (aluminium: 45 mm of hub transmits ~4 %, like GDXray wheel hubs).
MATERIALS: dict[str, float] = {"aluminium": 0.07, "magnesium": 0.045, "steel": 0.3}
MANIFEST_COLUMNS: tuple[str, ...] = ("path", "label", "mask", "group", "flaw_types", "boxes", "defective")
CONFIG_FILE = "synth_config.yaml"
MANIFEST_FILE = "manifest.csv"
IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp")
_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0
# Boxes merge flaw pixels this close (px): the pores of one shrinkage cluster make one box, as in GDXray.
_BOX_JOIN_PX = 2


@dataclass(frozen=True)
class SynthConfig:
    """Everything that defines a synthetic dataset; maps 1:1 to `flawscope synth` options.

    Attributes:
        n_images: number of images.
        size: (height, width) in pixels.
        defect_fraction: fraction of images that show at least one flaw (the rest are defect-free).
        flaw_types: flaw types to draw from: pore, crack, inclusion.
        max_flaws: a defective image has 1..max_flaws flaws.
        flaw_size: (min, max) flaw footprint in pixels (pore diameter, inclusion diameter; cracks are longer).
        difficulty: 0 (high-contrast flaws) .. 1 (faint flaws near the noise level).
        noise: photon + electronic noise scale; 0 renders noise-free images.
        blur_sigma: detector PSF sigma in pixels; 0 = no blur.
        heel: strength of the heel-effect gradient and vignetting; 0 = flat field.
        bit_depth: 16 (uint16 output) or 8 (uint8).
        seed: base seed; image i uses seed + i.
        part: wheel, plate or mixed (each part drawn as a wheel or a plate).
        n_parts: images are views of this many distinct parts (the group that splits must keep together).
        material: aluminium, magnesium or steel (sets the part's attenuation coefficient).
    """

    n_images: int = 200
    size: tuple[int, int] = (256, 256)
    defect_fraction: float = 0.5
    flaw_types: tuple[str, ...] = FLAW_TYPES
    max_flaws: int = 4
    flaw_size: tuple[float, float] = (3.0, 14.0)
    difficulty: float = 0.5
    noise: float = 1.0
    blur_sigma: float = 0.8
    heel: float = 0.15
    bit_depth: int = 16
    seed: int = 0
    part: str = "wheel"
    n_parts: int = 20
    material: str = "aluminium"

    def __post_init__(self) -> None:
        # YAML and CLI hand over lists and strings; keep the frozen record hashable and typed.
        size = self.size
        if isinstance(size, int | float):
            size = (size, size)
        object.__setattr__(self, "size", tuple(int(s) for s in size))
        types = (self.flaw_types,) if isinstance(self.flaw_types, str) else self.flaw_types
        object.__setattr__(self, "flaw_types", tuple(types))
        object.__setattr__(self, "flaw_size", tuple(float(s) for s in self.flaw_size))
        self._validate()

    def _validate(self) -> None:
        def bad(name: str, value: Any, expected: str) -> ConfigError:
            return ConfigError(f"synth option {name}={value!r} is invalid: expected {expected}")

        if self.n_images < 0:
            raise bad("n_images", self.n_images, "a count >= 0")
        if len(self.size) != 2 or min(self.size) < 16:
            raise bad("size", self.size, "(height, width) of at least 16 px each")
        if not 0.0 <= self.defect_fraction <= 1.0:
            raise bad("defect_fraction", self.defect_fraction, "a fraction in [0, 1]")
        unknown = [t for t in self.flaw_types if t not in FLAW_TYPES]
        if unknown or not self.flaw_types:
            raise bad("flaw_types", self.flaw_types, f"one or more of {', '.join(FLAW_TYPES)}")
        if self.max_flaws < 1:
            raise bad("max_flaws", self.max_flaws, "at least 1")
        lo, hi = self.flaw_size if len(self.flaw_size) == 2 else (0.0, -1.0)
        if not 2.0 <= lo <= hi <= min(self.size) / 2:
            limit = min(self.size) // 2
            raise bad("flaw_size", self.flaw_size, f"(min, max) px with 2 <= min <= max <= {limit}")
        if not 0.0 <= self.difficulty <= 1.0:
            raise bad("difficulty", self.difficulty, "a value in [0, 1]")
        if self.noise < 0 or self.blur_sigma < 0 or self.heel < 0 or self.heel > 0.5:
            raise bad("noise/blur_sigma/heel", (self.noise, self.blur_sigma, self.heel),
                      "noise >= 0, blur_sigma >= 0 and 0 <= heel <= 0.5")
        if self.bit_depth not in (8, 16):
            raise bad("bit_depth", self.bit_depth, "8 or 16")
        if self.part not in PARTS:
            raise bad("part", self.part, f"one of {', '.join(PARTS)}")
        if self.n_parts < 1:
            raise bad("n_parts", self.n_parts, "at least 1")
        if self.material not in MATERIALS:
            raise bad("material", self.material, f"one of {', '.join(MATERIALS)}")

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (YAML friendly)."""
        d = asdict(self)
        for key in ("size", "flaw_types", "flaw_size"):
            d[key] = list(d[key])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SynthConfig:
        """Inverse of `to_dict`; unknown keys are an error that lists the valid ones."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(
                f"unknown synth option(s) {', '.join(unknown)}; valid: {', '.join(sorted(names))}"
            )
        return cls(**d)


@dataclass
class SynthImage:
    """One rendered radiograph and its ground truth.

    Attributes:
        image: (H, W) uint16 (bit_depth 16) or uint8 grey values; bright = more transmitted dose.
        mask: (H, W) bool, True where a flaw changes the path length noticeably.
        boxes: one box per connected flaw (x = column, x2/y2 exclusive); `label` is the box's flaw type.
        flaw_types: flaw types present in the mask, in FLAW_TYPES order.
        part_id: which of the n_parts parts this is a view of.
    """

    image: np.ndarray
    mask: np.ndarray
    boxes: list[Box] = field(default_factory=list)
    flaw_types: tuple[str, ...] = ()
    part_id: int = 0

    @property
    def defective(self) -> bool:
        return bool(self.mask.any())


# --------------------------------------------------------------------------------------------------------
# Parts: path length (mm) as a function of part-frame coordinates (mm), vectorised over whole images.


def _part_params(cfg: SynthConfig, part_id: int) -> dict[str, Any]:
    """The shape of one part: a pure function of (seed, part_id), so all views show the same part."""
    rng = np.random.default_rng([cfg.seed, part_id, 0x5EED])
    kind = cfg.part if cfg.part != "mixed" else ("wheel", "plate")[int(rng.integers(2))]
    if kind == "wheel":
        n_spokes = int(rng.choice([4, 5, 6, 7, 8, 10]))  # int(): numpy scalars would promote maps to float64
        r_out = 200.0
        r_rim_in = r_out - rng.uniform(14, 28)
        r_hub = rng.uniform(40, 60)
        r_bore = rng.uniform(0.25, 0.4) * r_hub
        n_bolts = int(rng.choice([4, 5, 6]))
        r_bolt_circle = rng.uniform(0.55, 0.72) * r_hub
        return {
            "kind": "wheel", "extent": r_out, "n_spokes": n_spokes, "spoke_phase": rng.uniform(0, 2 * np.pi),
            "r_out": r_out, "r_rim_in": r_rim_in, "t_rim": rng.uniform(25, 42), "t_lip": rng.uniform(6, 12),
            "r_hub": r_hub, "t_hub": rng.uniform(26, 38), "t_flange": rng.uniform(4, 9),
            "r_bore": r_bore, "n_bolts": n_bolts, "r_bolt_circle": r_bolt_circle,
            "r_bolt": rng.uniform(0.08, 0.12) * r_hub, "bolt_phase": rng.uniform(0, 2 * np.pi),
            "w_hub": rng.uniform(14, 24) * 6 / n_spokes, "w_rim": rng.uniform(8, 14) * 6 / n_spokes,
            "t_spoke": rng.uniform(15, 28), "pocket": rng.uniform(4, 9) if rng.random() < 0.5 else 0.0,
            "t_web": rng.uniform(4, 8) if rng.random() < 0.4 else 0.0, "win": rng.uniform(0.55, 0.8),
        }
    half = rng.uniform(60, 130, size=2)
    ribs = [
        (rng.uniform(-0.6, 0.6) * half[0], rng.uniform(-0.6, 0.6) * half[1],
         float(rng.choice([0.0, np.pi / 2, rng.uniform(0, np.pi)])), rng.uniform(2.5, 6), rng.uniform(10, 25))
        for _ in range(int(rng.integers(2, 6)))
    ]
    bosses = [
        (rng.uniform(-0.65, 0.65) * half[0], rng.uniform(-0.65, 0.65) * half[1], rng.uniform(10, 24),
         rng.uniform(15, 30), rng.uniform(0.3, 0.6))
        for _ in range(int(rng.integers(1, 5)))
    ]
    holes = [
        (rng.uniform(-0.6, 0.6) * half[0], rng.uniform(-0.6, 0.6) * half[1], rng.uniform(5, 15))
        for _ in range(int(rng.integers(0, 3)))
    ]
    return {
        "kind": "plate", "extent": float(half.max()), "half": (float(half[0]), float(half[1])),
        "corner": rng.uniform(8, 30), "t_base": rng.uniform(6, 15), "bevel": rng.uniform(3, 10),
        "ribs": ribs, "bosses": bosses, "holes": holes,
    }


def _soft_disc(dist: np.ndarray, radius: float, edge: float = 1.5) -> np.ndarray:
    """1 inside a disc, 0 outside, with a rounded (filleted) rim `edge` mm wide."""
    return np.clip((radius - dist) / edge, 0.0, 1.0)


def _wheel_thickness(u: np.ndarray, v: np.ndarray, p: dict[str, Any]) -> np.ndarray:
    r = np.hypot(u, v)
    th = np.arctan2(v, u)
    # Rim: the tyre seat seen obliquely; its path length peaks mid-band like a tube's chord.
    mid, half = (p["r_out"] + p["r_rim_in"]) / 2, (p["r_out"] - p["r_rim_in"]) / 2
    t = p["t_rim"] * np.sqrt(np.clip(1 - ((r - mid) / half) ** 2, 0, None))
    t = np.maximum(t, p["t_lip"] * _soft_disc(np.abs(r - p["r_out"] - 3), 4.0))
    # Hub: a shallow dome plus a raised central flange.
    hub = p["t_hub"] * (1 - 0.25 * (r / p["r_hub"]) ** 2) * _soft_disc(r, p["r_hub"], 4.0)
    hub += p["t_flange"] * _soft_disc(r, 0.62 * p["r_hub"], 2.0)
    t = np.maximum(t, hub)
    # Spokes: elliptical cross-section with flat top, tapering from hub to rim, optionally pocketed.
    n = p["n_spokes"]
    dth = np.mod(th - p["spoke_phase"] + np.pi / n, 2 * np.pi / n) - np.pi / n
    along = np.clip((r - p["r_hub"]) / (p["r_rim_in"] - p["r_hub"]), 0, 1)
    w = p["w_hub"] + (p["w_rim"] - p["w_hub"]) * along
    d = r * np.abs(np.sin(dth)) / w
    on_spoke = (r > 0.5 * p["r_hub"]) & (r < p["r_rim_in"] + 5)
    spoke = p["t_spoke"] * (1 + 0.3 * (1 - along)) * np.clip(1 - d**2, 0, None) ** 0.35 * on_spoke
    if p["pocket"]:
        pocket = (d < 0.55) & (along > 0.15) & (along < 0.85)
        spoke = spoke - np.float32(p["pocket"]) * pocket * np.clip(1 - (d / 0.55) ** 4, 0, None)
    t = np.maximum(t, spoke)
    if p["t_web"]:
        # A thin disc web between hub and rim with an oval window between each pair of spokes.
        dwin = np.mod(th - p["spoke_phase"], 2 * np.pi / n) - np.pi / n
        r_win = (p["r_hub"] + p["r_rim_in"]) / 2
        a_win = p["win"] * (p["r_rim_in"] - p["r_hub"]) / 2
        b_win = p["win"] * r_win * np.sin(np.pi / n)
        window = ((r - r_win) / a_win) ** 2 + (r * np.sin(dwin) / b_win) ** 2 < 1
        web = np.float32(p["t_web"]) * ((r > p["r_hub"] * 0.9) & (r < p["r_rim_in"] + 2) & ~window)
        t = np.maximum(t, web)
    # Through holes: the centre bore and the bolt circle (evaluated only near the hub: most views miss it).
    near = np.flatnonzero(r < p["r_bolt_circle"] + p["r_bolt"] + 2)
    if near.size:
        un, vn, rn = u.ravel()[near], v.ravel()[near], r.ravel()[near]
        holes = _soft_disc(rn, p["r_bore"], 1.0)
        c = p["r_bolt_circle"]
        for k in range(p["n_bolts"]):
            a = p["bolt_phase"] + 2 * np.pi * k / p["n_bolts"]
            dist = np.hypot(un - c * math.cos(a), vn - c * math.sin(a))
            holes = np.maximum(holes, _soft_disc(dist, p["r_bolt"], 1.0))
        flat = t.reshape(-1)  # a view: t is contiguous
        flat[near] *= 1 - holes
    return t


def _plate_thickness(u: np.ndarray, v: np.ndarray, p: dict[str, Any]) -> np.ndarray:
    hx, hy = p["half"]
    rc = min(p["corner"], hx, hy)
    dx, dy = np.abs(u) - (hx - rc), np.abs(v) - (hy - rc)
    sdf = np.hypot(np.maximum(dx, 0), np.maximum(dy, 0)) + np.minimum(np.maximum(dx, dy), 0) - rc
    inside = np.clip(-sdf / p["bevel"], 0, 1)  # cast draft: thickness ramps up from the edge
    t = p["t_base"] * inside
    for px, py, ang, w, tr in p["ribs"]:
        dist = np.abs((u - px) * np.sin(ang) - (v - py) * np.cos(ang))
        t = t + tr * np.clip(1 - (dist / w) ** 2, 0, None) ** 0.5 * (inside > 0.5)
    holes = np.zeros_like(t)
    for bx, by, rb, tb, fb in p["bosses"]:
        dist = np.hypot(u - bx, v - by)
        t = t + tb * _soft_disc(dist, rb, 2.5) * (inside > 0)
        holes = np.maximum(holes, _soft_disc(dist, fb * rb, 1.0))
    for hx_, hy_, rh in p["holes"]:
        holes = np.maximum(holes, _soft_disc(np.hypot(u - hx_, v - hy_), rh, 1.5))
    return t * (1 - holes)


def _view_thickness(rng: np.random.Generator, cfg: SynthConfig, p: dict[str, Any]) -> np.ndarray:
    """Path-length map (mm) of one random view of a part; redrawn until enough of the part is in view."""
    h, w = cfg.size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    yy -= (h - 1) / 2
    xx -= (w - 1) / 2
    extent = p["extent"]
    for _ in range(50):
        mm_per_px = rng.uniform(0.35, 1.2) * 2 * extent / max(h, w)
        ang = rng.uniform(0, 2 * np.pi)
        if p["kind"] == "wheel":
            rad, phi = extent * math.sqrt(rng.uniform(0, 0.8)), rng.uniform(0, 2 * np.pi)
            cx, cy = rad * math.cos(phi), rad * math.sin(phi)
        else:
            cx, cy = (rng.uniform(-0.7, 0.7) * s for s in p["half"])
        cos, sin = math.cos(ang), math.sin(ang)  # Python floats keep the float32 grid float32
        u = cx + mm_per_px * (cos * xx - sin * yy)
        v = cy + mm_per_px * (sin * xx + cos * yy)
        t = (_wheel_thickness if p["kind"] == "wheel" else _plate_thickness)(u, v, p)
        if (t > 3.0).mean() > 0.25:
            break  # enough material in view; else a degenerate part keeps its last view
    return t.astype(np.float32)


# --------------------------------------------------------------------------------------------------------
# Flaws: each returns (rows, cols, attenuation change in μ·t units) of the pixels it touches.


def _contrast(rng: np.random.Generator, cfg: SynthConfig, size: float) -> float:
    """Peak attenuation change μ·Δt of one flaw: set by difficulty, a bit larger for bigger flaws.

    difficulty 0 draws from [0.15, 0.8] (a 15-120 % brighter pore centre), 1 from [0.02, 0.08] (a few %,
    near the noise of dark regions); log-uniform in between.
    """
    d = cfg.difficulty
    lo = 0.15 * (1 - d) + 0.02 * d
    hi = 0.8 * (1 - d) + 0.08 * d
    lo_s, hi_s = cfg.flaw_size
    scale = 0.6 + 0.4 * (size - lo_s) / max(hi_s - lo_s, 1e-6)
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))) * scale)


def _flaw_size(rng: np.random.Generator, cfg: SynthConfig) -> float:
    # Log-uniform: most flaws are small, as in GDXray.
    lo, hi = cfg.flaw_size
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def _ellipsoid(cy: float, cx: float, a: float, b: float, ang: float, shape: tuple[int, int]):
    """Pixel rows/cols of an ellipse footprint and its chord profile sqrt(1 - q) in (0, 1]."""
    r = max(a, b) + 1
    y0, y1 = max(int(cy - r), 0), min(int(cy + r) + 2, shape[0])
    x0, x1 = max(int(cx - r), 0), min(int(cx + r) + 2, shape[1])
    yy, xx = np.mgrid[y0:y1, x0:x1]
    dy, dx = yy - cy, xx - cx
    c, s = np.cos(ang), np.sin(ang)
    q = ((c * dx + s * dy) / a) ** 2 + ((-s * dx + c * dy) / b) ** 2
    inside = q < 1
    return yy[inside], xx[inside], np.sqrt(1 - q[inside])


def _pore(rng: np.random.Generator, cfg: SynthConfig, cy: float, cx: float, shape: tuple[int, int]):
    size = _flaw_size(rng, cfg)
    peak = _contrast(rng, cfg, size)
    kind = rng.choice(["gas", "blowhole", "shrinkage"], p=[0.5, 0.25, 0.25])
    parts = []
    if kind == "gas":  # round gas pore
        r = size / 2
        parts.append((cy, cx, r, r * rng.uniform(0.8, 1.0), rng.uniform(0, np.pi), 1.0))
    elif kind == "blowhole":  # elongated, lobed: two or three overlapping ellipsoids
        ang = rng.uniform(0, np.pi)
        for k in range(int(rng.integers(2, 4))):
            off = (k - 0.5) * size * 0.3
            parts.append((cy + off * np.sin(ang), cx + off * np.cos(ang), size / 2 * rng.uniform(0.6, 1.0),
                          size / 2 * rng.uniform(0.35, 0.6), ang + rng.normal(0, 0.3), rng.uniform(0.7, 1.0)))
    else:  # shrinkage: a cluster of small, touching cavities
        n = int(rng.integers(4, 12))
        spread = max(size / 2, 2.0)
        for _ in range(n):
            rr = spread * np.sqrt(rng.uniform(0, 1))
            a = rng.uniform(0, 2 * np.pi)
            small = rng.uniform(1.0, max(1.2, min(size / 3, 3.0)))
            parts.append((cy + rr * np.sin(a), cx + rr * np.cos(a), small, small * rng.uniform(0.5, 1.0),
                          rng.uniform(0, np.pi), rng.uniform(0.5, 1.0)))
    return _union(parts, shape, -peak)


def _inclusion(rng: np.random.Generator, cfg: SynthConfig, cy: float, cx: float, shape: tuple[int, int]):
    size = _flaw_size(rng, cfg)
    # Denser matter (oxides, iron-rich intermetallics) adds attenuation; slightly less contrast than voids.
    peak = 0.8 * _contrast(rng, cfg, size)
    ang = rng.uniform(0, np.pi)
    parts = [(cy, cx, size / 2, size / 2 * rng.uniform(0.5, 1.0), ang, 1.0)]
    if rng.random() < 0.4:
        parts.append((cy + size * 0.2 * np.sin(ang), cx + size * 0.2 * np.cos(ang), size * 0.3, size * 0.2,
                      rng.uniform(0, np.pi), 0.8))
    return _union(parts, shape, +peak)


def _union(parts: list[tuple], shape: tuple[int, int], peak: float):
    """Sum of ellipsoid chords (overlapping cavities merge; the deepest chord wins)."""
    rows, cols, vals = [], [], []
    for cy, cx, a, b, ang, depth in parts:
        y, x, prof = _ellipsoid(cy, cx, max(a, 0.75), max(b, 0.75), ang, shape)
        rows.append(y)
        cols.append(x)
        vals.append(prof * depth)
    y, x, val = np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)
    flat = np.full(shape, 0.0, np.float32)
    np.maximum.at(flat, (y, x), val)
    nz = np.nonzero(flat)
    return nz[0], nz[1], flat[nz] * peak


def _crack(rng: np.random.Generator, cfg: SynthConfig, cy: float, cx: float, shape: tuple[int, int]):
    """A thin tortuous void: a smoothed random walk with a tapering width and depth."""
    from scipy.ndimage import gaussian_filter1d
    from scipy.spatial import cKDTree

    length = _flaw_size(rng, cfg) * rng.uniform(2.0, 4.0)
    n = max(int(length * 2), 8)  # half-pixel steps
    heading = rng.uniform(0, 2 * np.pi) + gaussian_filter1d(np.cumsum(rng.normal(0, 0.25, n)), 2.0)
    py = cy + np.cumsum(0.5 * np.sin(heading))
    px = cx + np.cumsum(0.5 * np.cos(heading))
    py -= py[n // 2] - cy
    px -= px[n // 2] - cx
    s = np.linspace(0, 1, n)
    taper = np.sin(np.pi * np.clip(s, 0.02, 0.98)) ** 0.5
    half_w = np.maximum(rng.uniform(0.6, 1.4) * taper, 0.75)  # >= 0.75 px keeps the mask 8-connected
    peak = 1.2 * _contrast(rng, cfg, cfg.flaw_size[0])
    pad = 3
    y0, y1 = max(int(py.min()) - pad, 0), min(int(py.max()) + pad + 1, shape[0])
    x0, x1 = max(int(px.min()) - pad, 0), min(int(px.max()) + pad + 1, shape[1])
    if y1 <= y0 or x1 <= x0:
        return np.empty(0, int), np.empty(0, int), np.empty(0, np.float32)
    yy, xx = np.mgrid[y0:y1, x0:x1]
    dist, idx = cKDTree(np.column_stack([py, px])).query(np.column_stack([yy.ravel(), xx.ravel()]))
    prof = np.sqrt(np.clip(1 - (dist / half_w[idx]) ** 2, 0, None)) * taper[idx]
    keep = prof > 0
    return yy.ravel()[keep], xx.ravel()[keep], (-peak * prof[keep]).astype(np.float32)


_FLAW_FUNCS = {"pore": _pore, "crack": _crack, "inclusion": _inclusion}


def _add_flaws(
    rng: np.random.Generator, cfg: SynthConfig, att: np.ndarray, min_att: float
) -> tuple[np.ndarray, np.ndarray]:
    """Draw 1..max_flaws flaws on material (att = μ·t >= min_att).

    Returns the attenuation change map (negative for voids) and a type map (0 = none, k+1 = FLAW_TYPES[k]).
    A void never removes more than 90 % of the material on its ray; a flaw pixel is one whose change is at
    least 10 % of that flaw's peak change.
    """
    shape = att.shape
    delta = np.zeros(shape, np.float32)
    types = np.zeros(shape, np.uint8)
    # Flaws sit in the bulk of the casting, not on the steep flanks of a rib or bore where nobody (and no
    # model) could tell them from the part's own edges.
    # (att is smooth here: filleted in render_radiograph, low-passed in superimpose_flaws.)
    steep = np.hypot(*np.gradient(att)) > 0.02
    # Nor in near-black regions (< 4 % transmission) where the photon noise swamps any flaw.
    # And not on the image border, where a flaw would be cut to a sliver.
    margin = int(math.ceil(cfg.flaw_size[1] / 2))
    inner = np.zeros(shape, bool)
    inner[margin:shape[0] - margin, margin:shape[1] - margin] = True
    candidates = np.flatnonzero((att >= min_att) & (att <= 3.2) & ~steep & inner)
    if candidates.size < 50:
        candidates = np.flatnonzero((att >= min_att) & inner)
    if candidates.size == 0:
        candidates = np.flatnonzero(att >= np.quantile(att, 0.5))
    n_flaws = int(rng.integers(1, cfg.max_flaws + 1))
    placed = 0
    for _ in range(n_flaws * 10):
        if placed == n_flaws:
            break
        flat = int(rng.choice(candidates))
        cy, cx = flat // shape[1] + rng.uniform(-0.5, 0.5), flat % shape[1] + rng.uniform(-0.5, 0.5)
        kind = cfg.flaw_types[int(rng.integers(len(cfg.flaw_types)))]
        y, x, d = _FLAW_FUNCS[kind](rng, cfg, cy, cx, shape)
        if d.size == 0:
            continue
        if kind != "inclusion":
            d = np.maximum(d, -0.9 * att[y, x])
        strong = np.abs(d) >= 0.1 * np.abs(d).max()
        if not strong.any() or np.abs(d).max() < 1e-3:
            continue
        delta[y, x] += d
        types[y[strong], x[strong]] = FLAW_TYPES.index(kind) + 1
        placed += 1
    return delta, types


def _ground_truth(types: np.ndarray) -> tuple[np.ndarray, list[Box], tuple[str, ...]]:
    """Mask, one box per connected flaw (pixels within _BOX_JOIN_PX join) and the flaw types present."""
    from scipy import ndimage

    mask = types > 0
    if not mask.any():
        return mask, [], ()
    joined = ndimage.binary_dilation(mask, np.ones((3, 3), bool), iterations=_BOX_JOIN_PX)
    labels, _ = ndimage.label(joined, np.ones((3, 3), int))
    labels = labels * mask  # boxes hug the flaw pixels, not the joining margin
    boxes = []
    for k, sl in enumerate(ndimage.find_objects(labels), start=1):
        if sl is None:
            continue
        region = types[sl][labels[sl] == k]
        label = FLAW_TYPES[int(np.bincount(region).argmax()) - 1]
        boxes.append(Box(float(sl[1].start), float(sl[0].start), float(sl[1].stop), float(sl[0].stop), label))
    present = tuple(t for i, t in enumerate(FLAW_TYPES, start=1) if (types == i).any())
    return mask, boxes, present


# --------------------------------------------------------------------------------------------------------
# Rendering


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], scale: float) -> np.ndarray:
    """Zero-mean smooth random field with features ~`scale` px: Gaussian bumps on a coarse grid (K_y G K_x^T).

    Two small matrix products instead of zooming a full image: ~50x cheaper for 256x256.
    """
    h, w = shape
    gy, gx = int(h / scale) + 3, int(w / scale) + 3
    ky = np.exp(-0.5 * ((np.arange(h)[:, None] - (np.arange(gy) - 1) * scale) / (0.6 * scale)) ** 2)
    kx = np.exp(-0.5 * ((np.arange(w)[:, None] - (np.arange(gx) - 1) * scale) / (0.6 * scale)) ** 2)
    # einsum, not BLAS: BLAS threads fight for the 2 shared cores and make this 10x slower.
    field_ = np.einsum("ij,kj->ik", ky @ rng.standard_normal((gy, gx)), kx).astype(np.float32)
    return field_ / max(float(field_.std()), 1e-6)


def render_radiograph(
    rng: np.random.Generator, cfg: SynthConfig, defective: bool | None = None
) -> SynthImage:
    """Render one synthetic radiograph of a cast part.

    Args:
        rng: the image's generator; `generate_dataset` uses `np.random.default_rng(cfg.seed + i)`.
        cfg: generator settings.
        defective: force flaws on/off; None draws it with probability `cfg.defect_fraction`. The part, view
            and noise come from separate streams, so the same rng seed with defective True/False gives the
            same radiograph with and without its flaws.

    Returns:
        The image (uint16 for bit_depth 16, else uint8) with its mask, boxes, flaw types and part id.
    """
    from scipy.ndimage import gaussian_filter

    r_decide, r_geom, r_flaw, r_noise = rng.spawn(4)
    if defective is None:
        defective = bool(r_decide.random() < cfg.defect_fraction)
    h, w = cfg.size
    part_id = int(r_geom.integers(cfg.n_parts))
    params = _part_params(cfg, part_id)
    mu = MATERIALS[cfg.material]
    # Fillets (smoothed edges) and casting mottle (a faint low-frequency variation of the path length).
    t = gaussian_filter(_view_thickness(r_geom, cfg, params), 1.0)
    att = mu * t * (1 + 0.01 * _smooth_noise(r_geom, (h, w), 24.0))
    if defective:
        delta, types = _add_flaws(r_flaw, cfg, att, min_att=mu * 4.0)
        att = att + delta
    else:
        types = np.zeros((h, w), np.uint8)
    mask, boxes, present = _ground_truth(types)

    # Heel effect (a linear gradient along the tube axis) and vignetting of the detector.
    yn = np.linspace(-0.5, 0.5, h, dtype=np.float32)[:, None]
    xn = np.linspace(-0.5, 0.5, w, dtype=np.float32)[None, :]
    heel_dir = r_geom.uniform(0, 2 * np.pi)
    flat = (1 + cfg.heel * (np.cos(heel_dir) * xn + np.sin(heel_dir) * yn)) * (1 - cfg.heel * (xn**2 + yn**2))
    signal = flat * np.exp(-att)
    if cfg.blur_sigma > 0:
        signal = gaussian_filter(signal, cfg.blur_sigma)
    # Auto-exposure: the brightest part of the view lands near the top of the range (as an operator sets it).
    full = float(2**cfg.bit_depth - 1)
    white = full * r_noise.uniform(0.85, 0.95)
    dark = full * r_noise.uniform(0.01, 0.03)
    k = int(0.995 * (signal.size - 1))
    gain = (white - dark) / max(float(np.partition(signal.ravel(), k)[k]), 0.05)
    if cfg.noise > 0:
        # Photon noise: Poisson statistics via their Gaussian limit (variance = mean; exact to <1 % above
        # ~50 photons, which every pixel gets here) because rng.poisson costs 5x more on 2 shared cores.
        photons = 2.0e4 / cfg.noise**2  # photons per pixel at full exposure: ~0.7 % noise in air
        # Plus electronic (read-out) noise, independent of the dose; independent Gaussians add variances.
        read_noise = 0.002 * full * cfg.noise / gain
        std = np.sqrt(np.maximum(signal, 0) / photons + read_noise**2)
        signal = signal + std * r_noise.standard_normal(signal.shape, dtype=np.float32)
    image = dark + gain * signal
    dtype = np.uint16 if cfg.bit_depth == 16 else np.uint8
    image = np.clip(np.rint(image), 0, full).astype(dtype)
    return SynthImage(image, mask, boxes, present, part_id)


def superimpose_flaws(
    image: np.ndarray, rng: np.random.Generator, cfg: SynthConfig
) -> tuple[np.ndarray, np.ndarray, list[Box], tuple[str, ...]]:
    """Add simulated flaws to a real defect-free radiograph in the attenuation domain (GDXray practice).

    Grey values above the dark level are taken as proportional to dose: the relative path length is
    L = -log((g - dark) / (white - dark)), with dark/white the image's 0.1/99.9th percentiles. Flaws change L
    where the image shows material that is neither near-white nor near-black; the change is blurred by the
    detector PSF (`cfg.blur_sigma`) and turned back into grey values. Pixels beyond the PSF's reach from the
    flaws keep their exact value.

    Args:
        image: (H, W) grey image, integer or float.
        rng: generator for the flaws.
        cfg: flaw settings (flaw_types, max_flaws, flaw_size, difficulty, blur_sigma).

    Returns:
        (image of the same dtype and shape, mask, boxes, flaw types present).
    """
    from scipy.ndimage import gaussian_filter

    if image.ndim != 2:
        raise ConfigError(f"superimpose_flaws needs one grey channel (H, W), got shape {image.shape}")
    if min(image.shape) < 2 * cfg.flaw_size[1]:
        raise ConfigError(
            f"image of {image.shape[0]}x{image.shape[1]} px is too small for flaw_size {cfg.flaw_size}; "
            "lower flaw_size"
        )
    g = image.astype(np.float64)
    # Dose is proportional to grey value above the detector's dark level (GDXray's 8-bit floor is ~15).
    dark, white = (float(v) for v in np.quantile(g, [0.001, 0.999]))
    dark = dark if dark < 0.5 * white else 0.0
    if white - dark <= 0:
        raise ConfigError("image is flat (one grey value); superimpose needs a radiograph of a part")
    # Smooth first so noise does not decide where material is or how much may be removed.
    dose = np.clip(gaussian_filter(g, 2.0) - dark, (white - dark) * 1e-3, None) / (white - dark)
    att = -np.log(dose)
    # Place flaws on material: at least 10 % attenuated, and above 5 % of the range, where flaws can be seen.
    usable = (att > 0.1) & (att < -np.log(0.05))
    delta, types = _add_flaws(rng, cfg, np.where(usable, att, 0.0), min_att=0.1)
    mask, boxes, present = _ground_truth(types)
    factor = np.exp(-delta.astype(np.float64)) - 1.0
    if cfg.blur_sigma > 0:
        factor = gaussian_filter(factor, cfg.blur_sigma)
    out = image.copy()
    touched = factor != 0
    new = g[touched] + (g[touched] - dark) * factor[touched]
    if np.issubdtype(image.dtype, np.integer):
        info = np.iinfo(image.dtype)
        new = np.clip(np.rint(new), info.min, info.max)
    out[touched] = new.astype(image.dtype)
    return out, mask, boxes, present


# --------------------------------------------------------------------------------------------------------
# Datasets on disk


def _is_defective(i: int, cfg: SynthConfig) -> bool:
    """Golden-ratio sequence: hits defect_fraction closely for any n, and depends only on (seed, i)."""
    return ((i + 1) * _GOLDEN + cfg.seed * math.sqrt(2.0)) % 1.0 < cfg.defect_fraction


def _prepare_out_dir(out_dir: Path, overwrite: bool) -> None:
    """Refuse non-empty folders unless asked; with overwrite, remove only files a previous synth run wrote."""
    if out_dir.exists() and not out_dir.is_dir():
        raise DatasetError(f"output {out_dir} is a file; give a folder path")
    if not out_dir.exists() or not any(out_dir.iterdir()):
        out_dir.mkdir(parents=True, exist_ok=True)
        return
    previous = (out_dir / CONFIG_FILE).is_file()
    if not overwrite:
        what = "holds a previous synth dataset" if previous else "is not empty and is not a synth dataset"
        raise DatasetError(f"output folder {out_dir} {what}; choose an empty folder or pass --overwrite "
                           "(only files a synth run wrote are replaced)")
    if not previous:
        clash = [p for p in (out_dir / MANIFEST_FILE, out_dir / "images", out_dir / "masks") if p.exists()]
        if clash:
            raise DatasetError(f"output folder {out_dir} is not a synth dataset but has {clash[0].name}; "
                               "refusing to mix with or replace it, choose another folder")
        return
    for sub in ("images", "masks"):
        for old in (out_dir / sub).glob("synth_*.png") if (out_dir / sub).is_dir() else ():
            old.unlink()
    for name in (MANIFEST_FILE, CONFIG_FILE):
        (out_dir / name).unlink(missing_ok=True)


def _boxes_text(boxes: Iterable[Box]) -> str:
    # The fifth token (the box's flaw type) is optional for the manifest reader; it keeps per-box types.
    return ";".join(f"{b.x1:g} {b.y1:g} {b.x2:g} {b.y2:g} {b.label}" for b in boxes)


def _write_outputs(
    out_dir: Path, cfg: SynthConfig, rows: list[dict[str, str]], extra: dict[str, Any]
) -> None:
    import yaml

    with open(out_dir / MANIFEST_FILE, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=MANIFEST_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    from flawscope import __version__

    doc = {"generator": "flawscope.data.synth", "flawscope_version": __version__, **extra,
           "config": cfg.to_dict()}
    (out_dir / CONFIG_FILE).write_text(yaml.safe_dump(doc, sort_keys=False))


@dataclass
class SynthSummary:
    """What a synth dataset folder holds (read back from its manifest)."""

    out_dir: Path
    n_images: int
    n_defective: int
    flaws: Counter = field(default_factory=Counter)

    def line(self, seconds: float | None = None) -> str:
        """One-line summary; with `seconds`, the throughput too."""
        by_type = ", ".join(f"{t} {self.flaws.get(t, 0)}" for t in FLAW_TYPES)
        text = f"{self.n_images} images, {self.n_defective} defective (flaw boxes: {by_type})"
        if seconds is not None:
            text += f" in {seconds:.1f} s ({self.n_images / max(seconds, 1e-9) * 60:.0f} images/min)"
        return f"{text} -> {self.out_dir}"


def summarize_dataset(out_dir: str | Path) -> SynthSummary:
    """Count images, defective images and flaw boxes by type in a synth dataset's manifest."""
    out = Path(out_dir)
    manifest = out / MANIFEST_FILE
    if not manifest.is_file():
        raise DatasetError(f"{out} has no {MANIFEST_FILE}; is it a folder written by `flawscope synth`?")
    with open(manifest, newline="") as fh:
        rows = list(csv.DictReader(fh))
    flaws = Counter(box.split()[-1] for r in rows for box in filter(None, r["boxes"].split(";")))
    return SynthSummary(out, len(rows), sum(r["defective"] == "1" for r in rows), flaws)


def _row(name: str, result: SynthImage | tuple, group: str) -> dict[str, str]:
    mask, boxes, types = (result.mask, result.boxes, result.flaw_types) if isinstance(result, SynthImage) \
        else result[1:4]
    return {
        "path": f"images/{name}", "label": "defect" if mask.any() else "ok", "mask": f"masks/{name}",
        "group": group, "flaw_types": ";".join(types), "boxes": _boxes_text(boxes),
        "defective": "1" if mask.any() else "0",
    }


def _progress(total: int, enabled: bool, description: str):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(TextColumn(description), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    disable=not enabled, transient=True)


def _render_and_write(out: Path, cfg: SynthConfig, indices: Sequence[int]) -> list[dict[str, str]]:
    """Render and write images `indices`; returns their manifest rows (also the process-pool task)."""
    from flawscope.data.io import write_image, write_mask

    rows = []
    for i in indices:
        result = render_radiograph(np.random.default_rng(cfg.seed + i), cfg, _is_defective(i, cfg))
        name = f"synth_{i:05d}.png"
        write_image(out / "images" / name, result.image, bit_depth=cfg.bit_depth)
        write_mask(out / "masks" / name, result.mask)
        rows.append(_row(name, result, f"part_{result.part_id:03d}"))
    return rows


def generate_dataset(
    out_dir: str | Path, cfg: SynthConfig, progress: bool = False, overwrite: bool = False, workers: int = 1
) -> Path:
    """Render `cfg.n_images` radiographs and write them as a dataset folder.

    Layout: `images/synth_00000.png` (16-bit PNG, or 8-bit), `masks/synth_00000.png` (0/255; empty for
    defect-free images), `manifest.csv` (path,label,mask,group,flaw_types,boxes,defective; paths relative to
    out_dir, group = part id; boxes "x1 y1 x2 y2 type") and `synth_config.yaml` (the resolved config).

    Args:
        out_dir: folder to create; must be empty unless `overwrite` (then only a previous synth run's files
            are replaced, never other files).
        cfg: generator settings.
        progress: show a rich progress bar.
        overwrite: allow a non-empty folder.
        workers: processes to render with; the files are identical for any count.

    Returns:
        out_dir as a Path; `summarize_dataset(out_dir)` counts what it holds.
    """
    if workers < 1:
        raise ConfigError(f"workers={workers} is invalid; use 1 or more processes")
    out = Path(out_dir)
    _prepare_out_dir(out, overwrite)
    (out / "images").mkdir(exist_ok=True)
    (out / "masks").mkdir(exist_ok=True)
    chunks = [range(k, min(k + 32, cfg.n_images)) for k in range(0, cfg.n_images, 32)]
    rows: list[dict[str, str]] = []
    with _progress(cfg.n_images, progress, "synth") as bar:
        task = bar.add_task("render", total=cfg.n_images)
        if workers == 1 or len(chunks) < 2:
            for chunk in chunks:
                rows += _render_and_write(out, cfg, chunk)
                bar.advance(task, len(chunk))
        else:
            from concurrent.futures import ProcessPoolExecutor

            with ProcessPoolExecutor(min(workers, len(chunks))) as pool:
                # map keeps chunk order, so the manifest is the same whatever the worker count.
                n = len(chunks)
                for chunk_rows in pool.map(_render_and_write, [out] * n, [cfg] * n, chunks):
                    rows += chunk_rows
                    bar.advance(task, len(chunk_rows))
    _write_outputs(out, cfg, rows, {"kind": "generate"})
    return out


def _source_images(src: str | Path | Sequence[Sample | str | Path]) -> list[Path]:
    if isinstance(src, str | Path):
        root = Path(src)
        if not root.is_dir():
            raise DatasetError(f"source {root} is not a folder; give a folder of defect-free radiographs")
        paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not paths:
            raise DatasetError(f"source folder {root} holds no images ({', '.join(IMAGE_SUFFIXES)})")
        return paths
    paths = []
    for item in src:
        if isinstance(item, Sample):
            if item.defective:
                raise DatasetError(f"sample {item.image} is defective; superimpose needs defect-free images")
            paths.append(item.image)
        else:
            paths.append(Path(item))
    if not paths:
        raise DatasetError("no source images given; superimpose needs defect-free radiographs")
    return paths


def superimpose_dataset(
    src_samples_or_dir: str | Path | Sequence[Sample | str | Path],
    out_dir: str | Path,
    cfg: SynthConfig,
    n_images: int | None = None,
    progress: bool = False,
    overwrite: bool = False,
) -> Path:
    """Write real defect-free radiographs with simulated flaws (same layout as `generate_dataset`).

    Output i uses source image i % len(sources) and `np.random.default_rng(cfg.seed + i)`; a
    `cfg.defect_fraction` share get flaws, the rest are copied unchanged with an empty mask. Images keep
    their source bit depth (8 or 16; float files become 16-bit); colour images are averaged to grey.
    group = the source image's stem, so every output made from one radiograph stays on one side of a split.

    Args:
        src_samples_or_dir: a folder of defect-free images, or samples/paths of them.
        out_dir: folder to create (see `generate_dataset` for the overwrite rules).
        cfg: flaw settings; cfg.size, part, noise and material are not used.
        n_images: number of outputs; None = one per source image.
        progress: show a rich progress bar.
        overwrite: allow a non-empty folder.
    """
    from flawscope.data.io import read_raw, write_image, write_mask

    sources = _source_images(src_samples_or_dir)
    out = Path(out_dir)
    _prepare_out_dir(out, overwrite)
    (out / "images").mkdir(exist_ok=True)
    (out / "masks").mkdir(exist_ok=True)
    total = len(sources) if n_images is None else n_images
    rows: list[dict[str, str]] = []
    with _progress(total, progress, "superimpose") as bar:
        task = bar.add_task("superimpose", total=total)
        for i in range(total):
            path = sources[i % len(sources)]
            raw = read_raw(path)
            pixels = raw.pixels
            if pixels.ndim == 3:
                pixels = pixels.mean(axis=2).astype(pixels.dtype)
            if np.issubdtype(pixels.dtype, np.floating):
                # Float files (32-bit TIFF) are written back as 16-bit, scaled by their maximum.
                top = float(np.nanmax(pixels)) if pixels.size else 0.0
                scaled = np.clip(np.nan_to_num(pixels) / max(top, 1e-12), 0, 1)
                pixels = np.rint(scaled * 65535).astype(np.uint16)
            rng = np.random.default_rng(cfg.seed + i)
            if _is_defective(i, cfg):
                result = superimpose_flaws(pixels, rng, cfg)
            else:
                result = (pixels, np.zeros(pixels.shape, bool), [], ())
            name = f"synth_{i:05d}.png"
            write_image(out / "images" / name, result[0], bit_depth=16 if result[0].dtype == np.uint16 else 8)
            write_mask(out / "masks" / name, result[1])
            rows.append(_row(name, result, path.stem))
            bar.advance(task)
    _write_outputs(out, cfg, rows, {"kind": "superimpose", "sources": [str(p) for p in sources]})
    return out


def generator_fingerprint() -> dict[str, str]:
    """What, besides its SynthConfig, decides the synthetic images: this generator's code and numpy/scipy.

    A folder generated by another version of any of them is regenerated rather than reused, so a rerun sees
    the images a fresh clone would generate.
    """
    import hashlib

    import scipy

    from flawscope import __version__

    code = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()
    return {"flawscope": __version__, "synth_sha256": code, "numpy": np.__version__,
            "scipy": scipy.__version__}
