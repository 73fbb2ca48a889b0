"""Procedurally animated synthetic dancer, written in the lab's dataset layout.

The real data (see ``/work/shared/data/dance/README.md``) are 64x32 RGB frames of one dancer in a
studio seen by a static camera, and for every frame a pose-skeleton label image: OpenPose-style
coloured limbs on white.  This module fakes both so that the demo and the tests can run without the
real recordings:

* an articulated 3-D body with the 18 OpenPose/COCO-18 joints, animated by a few seeded sinusoids
  (arm waves, steps, squats, turns about the vertical axis, travel across the frame);
* a frame renderer that draws the body with volume (torso polygon, thick limbs, head, clothes)
  over a fixed textured studio background;
* a label renderer that draws the 17 standard limbs, each in its own OpenPose colour, on white.

Everything is a pure function of ``(seed, t)``: a frame at time ``t`` does not depend on which other
frames are generated, which makes ``start`` offsets exact and output byte-identical for a seed.
The per-frame geometry uses Python's ``math`` on scalars on purpose: vectorised numpy
transcendental functions may round the last bit differently depending on an element's position in
an array, which would break ``synth_sequence(10, start=5) == synth_sequence(15)[5:]``.
"""

from __future__ import annotations

import functools
import math
import os
import pathlib
from dataclasses import dataclass
from typing import Iterator

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from tqdm import tqdm

__all__ = [
    "JOINT_NAMES",
    "LIMBS",
    "LIMB_COLORS",
    "synth_keypoints",
    "synth_sequence",
    "write_synthetic_dataset",
]

# OpenPose / COCO-18 body model, in OpenPose's order.
JOINT_NAMES: tuple[str, ...] = (
    "nose", "neck",
    "r_shoulder", "r_elbow", "r_wrist",
    "l_shoulder", "l_elbow", "l_wrist",
    "r_hip", "r_knee", "r_ankle",
    "l_hip", "l_knee", "l_ankle",
    "r_eye", "l_eye", "r_ear", "l_ear",
)
_J = {name: i for i, name in enumerate(JOINT_NAMES)}

# The 17 standard limbs (OpenPose's limbSeq without the two ear-shoulder extras), in drawing order.
LIMBS: tuple[tuple[int, int], ...] = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10),
    (1, 11), (11, 12), (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17),
)
# OpenPose's colour wheel: limb i gets colour i, so every limb has its own colour.
LIMB_COLORS: tuple[tuple[int, int, int], ...] = (
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0),
    (0, 255, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255),
    (0, 0, 255), (85, 0, 255), (170, 0, 255), (255, 0, 255), (255, 0, 170),
)

SUPERSAMPLE = 4  # draw at 4x, then box-average down: cheap anti-aliasing
_LABEL_LINE_WIDTH = 3  # at 4x: a pale ~1 px line once averaged down, like the real labels
_GAP = 60  # frames skipped between dataset pieces so that they are distinct motion

# Body proportions in units of standing height (floor = 0, top of head = 1).
_ANKLE_H = 0.045
_THIGH = 0.245
_SHIN = 0.245
_PELVIS_H = 0.52
_HIP_HALF = 0.055
_UPPER_ARM = 0.17
_FOREARM = 0.155

Vec3 = tuple[float, float, float]
Point = tuple[float, float]


# --------------------------------------------------------------------------------------------
# Seeded appearance and motion parameters
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Wave:
    """One sinusoid ``amp * sin(omega * t + phase)``."""

    amp: float
    omega: float
    phase: float

    def __call__(self, t: float) -> float:
        return self.amp * math.sin(self.omega * t + self.phase)


def _wave(rng: np.random.Generator, amp: float, periods: tuple[float, float]) -> _Wave:
    """A sinusoid with a random period (in frames) in ``periods`` and a random phase."""
    period = float(rng.uniform(*periods))
    return _Wave(float(amp), 2.0 * math.pi / period, float(rng.uniform(0.0, 2.0 * math.pi)))


def _unit(w: _Wave, t: float) -> float:
    """Map a unit-amplitude wave to [0, 1]."""
    return 0.5 + 0.5 * math.sin(w.omega * t + w.phase)


@dataclass(frozen=True)
class _Motion:
    """Seeded sinusoids that drive every degree of freedom of the dancer."""

    travel: tuple[_Wave, ...]      # horizontal position, in units of the image width
    depth: _Wave                   # towards/away from the camera (scale change)
    yaw0: float
    yaw: tuple[_Wave, ...]         # turns about the vertical axis
    squat: _Wave
    squat_env: _Wave
    step: _Wave                    # step phase (amp unused)
    stride_env: _Wave
    stance: _Wave
    arm_abd: tuple[_Wave, _Wave]   # right, left
    arm_env: _Wave
    arm_flex: tuple[_Wave, _Wave]
    elbow: tuple[_Wave, _Wave]
    side_lean: _Wave
    bend: _Wave
    twist: _Wave
    head_tilt: _Wave


@dataclass(frozen=True)
class _Look:
    """Seeded clothing and studio colours (RGB in 0..255)."""

    shirt: tuple[int, int, int]
    trousers: tuple[int, int, int]
    skin: tuple[int, int, int]
    hair: tuple[int, int, int]
    shoes: tuple[int, int, int]
    long_sleeves: bool
    wall: tuple[float, float, float]
    floor: tuple[float, float, float]


_SHIRTS = ((70, 100, 140), (150, 40, 45), (60, 110, 70), (200, 200, 205), (40, 40, 45),
           (190, 140, 60), (110, 70, 130), (90, 130, 170), (170, 90, 60))
_TROUSERS = ((25, 25, 30), (35, 45, 80), (70, 90, 120), (150, 130, 100), (60, 60, 65))
_SKINS = ((235, 200, 170), (210, 165, 130), (170, 120, 85), (120, 80, 55), (90, 60, 40))
_HAIRS = ((20, 15, 10), (60, 40, 25), (110, 75, 40), (200, 170, 110), (80, 80, 80))


def _jitter(rng: np.random.Generator, colour: tuple[int, ...], amount: int) -> tuple[int, int, int]:
    """Perturb a palette colour so that seeds differ even when they pick the same entry."""
    c = np.asarray(colour) + rng.integers(-amount, amount + 1, size=3)
    return tuple(int(v) for v in np.clip(c, 0, 255))  # type: ignore[return-value]


def _make_look(rng: np.random.Generator) -> _Look:
    """Draw the dancer's clothes and the studio's colours."""
    pick = lambda pal: pal[int(rng.integers(len(pal)))]  # noqa: E731
    grey = float(rng.uniform(150, 190))
    tint = rng.uniform(-6, 6, size=3)
    return _Look(
        shirt=_jitter(rng, pick(_SHIRTS), 15),
        trousers=_jitter(rng, pick(_TROUSERS), 10),
        skin=_jitter(rng, pick(_SKINS), 8),
        hair=_jitter(rng, pick(_HAIRS), 8),
        shoes=_jitter(rng, (30, 28, 28), 8),
        long_sleeves=bool(rng.random() < 0.6),
        wall=tuple(float(grey + v) for v in tint),  # type: ignore[arg-type]
        floor=tuple(float(grey + 12 + v) for v in tint),  # type: ignore[arg-type]
    )


def _make_motion(rng: np.random.Generator) -> _Motion:
    """Draw the dance: periods are in frames of a 30 fps video, slow enough to be smooth."""
    arm_phase = float(rng.uniform(0.0, 2.0 * math.pi))
    abd_r = _wave(rng, 1.0, (50, 100))
    # The left arm shares the right arm's tempo with a seeded phase lag: symmetric or alternating.
    abd_l = _Wave(1.0, abd_r.omega * float(rng.uniform(0.85, 1.15)), abd_r.phase + arm_phase)
    return _Motion(
        travel=(_wave(rng, 0.18, (300, 600)), _wave(rng, 0.10, (110, 220))),
        depth=_wave(rng, 1.0, (400, 800)),
        yaw0=float(rng.uniform(-0.3, 0.3)),
        yaw=(_wave(rng, 1.25, (240, 480)), _wave(rng, 0.55, (90, 160))),
        squat=_wave(rng, 1.0, (70, 140)),
        squat_env=_wave(rng, 1.0, (200, 400)),
        step=_wave(rng, 1.0, (36, 60)),
        stride_env=_wave(rng, 1.0, (150, 300)),
        stance=_wave(rng, 1.0, (120, 260)),
        arm_abd=(abd_r, abd_l),
        arm_env=_wave(rng, 1.0, (160, 320)),
        arm_flex=(_wave(rng, 0.5, (60, 130)), _wave(rng, 0.5, (60, 130))),
        elbow=(_wave(rng, 1.0, (45, 90)), _wave(rng, 1.0, (45, 90))),
        side_lean=_wave(rng, 0.12, (60, 140)),
        bend=_wave(rng, 0.06, (80, 160)),
        twist=_wave(rng, 0.3, (70, 150)),
        head_tilt=_wave(rng, 0.12, (50, 110)),
    )


# --------------------------------------------------------------------------------------------
# 3-D pose at time t
# --------------------------------------------------------------------------------------------

def _add(a: Vec3, b: Vec3) -> Vec3:
    return (a[0] + b[0], a[1] + b[1], a[2] + b[2])


def _scale(a: Vec3, s: float) -> Vec3:
    return (a[0] * s, a[1] * s, a[2] * s)


def _rot_upper(v: Vec3, lean: float, bend: float, twist: float) -> Vec3:
    """Rotate an upper-body offset: twist about y, forward bend about x, side lean about z."""
    x, y, z = v
    c, s = math.cos(twist), math.sin(twist)
    x, z = x * c + z * s, -x * s + z * c
    c, s = math.cos(bend), math.sin(bend)
    y, z = y * c - z * s, y * s + z * c
    c, s = math.cos(lean), math.sin(lean)
    x, y = x * c + y * s, -x * s + y * c
    return (x, y, z)


def _arm_dir(abd: float, flex: float, side: float) -> Vec3:
    """Unit direction of an arm segment: hanging down, raised sideways by ``abd``, forward by ``flex``."""
    ca = math.cos(abd)
    return (side * math.sin(abd), -ca * math.cos(flex), ca * math.sin(flex))


def _leg_ik(hip: Vec3, ankle: Vec3) -> tuple[Vec3, Vec3]:
    """Two-link inverse kinematics with the knee bending forward (+z); returns (knee, ankle)."""
    v = (ankle[0] - hip[0], ankle[1] - hip[1], ankle[2] - hip[2])
    d = math.sqrt(v[0] ** 2 + v[1] ** 2 + v[2] ** 2)
    d_max = _THIGH + _SHIN - 1e-4
    u = _scale(v, 1.0 / d)
    if d > d_max:  # leg fully stretched: the foot leaves the floor a little
        d = d_max
        ankle = _add(hip, _scale(u, d))
    along = (_THIGH ** 2 - _SHIN ** 2 + d * d) / (2.0 * d)
    height = math.sqrt(max(_THIGH ** 2 - along * along, 0.0))
    dot = u[2]  # forward vector (0, 0, 1) projected out of the leg axis
    perp = (-dot * u[0], -dot * u[1], 1.0 - dot * u[2])
    n = math.sqrt(perp[0] ** 2 + perp[1] ** 2 + perp[2] ** 2) or 1.0
    knee = _add(_add(hip, _scale(u, along)), _scale(perp, height / n))
    return knee, ankle


@dataclass(frozen=True)
class _Pose:
    """Body-frame 3-D pose (x = person's left, y = up, z = forward) plus its placement."""

    joints: tuple[Vec3, ...]       # the 18 OpenPose joints
    torso: tuple[Vec3, ...]        # corners of the shirt box
    pelvis_box: tuple[Vec3, ...]   # corners of the trousers' waist box
    head: Vec3                     # head centre
    yaw: float
    cx: float                      # screen x of the body axis, final-resolution pixels
    ground: float                  # screen y of the floor under the dancer
    scale: float                   # pixels per unit of standing height


def _box(centre: Vec3, half_bottom: Vec3, half_top: Vec3,
         lean: tuple[float, float, float]) -> list[Vec3]:
    """Corners of a box tapering from ``half_bottom`` to ``half_top`` around ``centre``, leaned.

    ``centre`` is an offset from the pelvis; the taper makes the shoulders wider than the waist.
    """
    out = []
    for half, sy in ((half_bottom, -1.0), (half_top, 1.0)):
        for sx in (-1.0, 1.0):
            for sz in (-1.0, 1.0):
                v = (centre[0] + sx * half[0], centre[1] + sy * half[1], centre[2] + sz * half[2])
                out.append(_rot_upper(v, *lean))
    return out


def _upper_body(m: _Motion, t: float) -> dict[str, Vec3]:
    """Offsets from the pelvis centre of the un-leaned upper body, arms and head."""
    pts: dict[str, Vec3] = {"neck": (0.0, 0.31, 0.0)}
    env = 0.15 + 0.85 * _unit(m.arm_env, t)
    for k, (name, side) in enumerate((("r", -1.0), ("l", 1.0))):
        shoulder = (side * 0.105, 0.295, 0.0)
        abd = 0.2 + 2.2 * _unit(m.arm_abd[k], t) * env  # up to overhead when the envelope peaks
        flex = 0.25 + m.arm_flex[k](t)
        bend = 0.15 + 1.2 * _unit(m.elbow[k], t)
        elbow = _add(shoulder, _scale(_arm_dir(abd, flex, side), _UPPER_ARM))
        wrist = _add(elbow, _scale(_arm_dir(abd + 0.3 * bend, flex + bend, side), _FOREARM))
        pts[f"{name}_shoulder"], pts[f"{name}_elbow"], pts[f"{name}_wrist"] = shoulder, elbow, wrist
    tilt = m.head_tilt(t)
    head = (math.sin(tilt) * 0.1, 0.31 + math.cos(tilt) * 0.1, 0.01)
    pts["head"] = head
    face = {"nose": (0.0, -0.012, 0.062), "r_eye": (-0.025, 0.012, 0.052),
            "l_eye": (0.025, 0.012, 0.052), "r_ear": (-0.058, 0.0, -0.005),
            "l_ear": (0.058, 0.0, -0.005)}
    for name, off in face.items():
        pts[name] = _add(head, _rot_upper(off, -tilt, 0.0, 0.0))
    return pts


def _pose_at(m: _Motion, t: float, height: int, width: int) -> _Pose:
    """The dancer's pose and placement at frame time ``t`` (any real number)."""
    squat = (0.5 - 0.5 * math.cos(m.squat.omega * t + m.squat.phase)) ** 2  # lingers standing
    step = m.step.omega * t + m.step.phase
    bounce = 0.012 * (0.5 - 0.5 * math.cos(2.0 * step))
    drop = 0.11 * squat * _unit(m.squat_env, t) + bounce
    pelvis = (0.018 * math.sin(step), _PELVIS_H - drop, 0.0)
    lean = (m.side_lean(t), 0.5 * drop + m.bend(t) + 0.04, m.twist(t) * math.sin(step))

    upper = _upper_body(m, t)
    named = {k: _add(pelvis, _rot_upper(v, *lean)) for k, v in upper.items()}

    stance = 0.055 + 0.04 * _unit(m.stance, t)
    stride = 0.07 * _unit(m.stride_env, t)
    for k, (name, side) in enumerate((("r", -1.0), ("l", 1.0))):
        sgn = 1.0 if k == 0 else -1.0  # the feet alternate
        hip = (pelvis[0] + side * _HIP_HALF, pelvis[1], 0.0)
        lift = 0.05 * max(0.0, sgn * math.sin(step))
        ankle = (side * stance, _ANKLE_H + lift, sgn * stride * math.cos(step))
        named[f"{name}_hip"] = hip
        named[f"{name}_knee"], named[f"{name}_ankle"] = _leg_ik(hip, ankle)

    joints = tuple(named[n] for n in JOINT_NAMES)
    torso = [_add(pelvis, c) for c in
             _box((0.0, 0.15, 0.0), (0.09, 0.16, 0.05), (0.12, 0.16, 0.055), lean)]
    pelvis_box = [_add(pelvis, c) for c in
                  _box((0.0, -0.01, 0.0), (0.09, 0.05, 0.05), (0.09, 0.05, 0.05), (0.0, 0.0, 0.0))]

    depth = math.sin(m.depth.omega * t + m.depth.phase)
    scale = 0.8 * height * (1.0 + 0.04 * depth)  # closer = bigger and lower in the frame
    travel = sum(w(t) for w in m.travel) / 0.28  # in [-1, 1]
    reach = max(0.0, min(0.3 * width, 0.5 * width - 0.22 * height))
    return _Pose(
        joints=joints, torso=tuple(torso), pelvis_box=tuple(pelvis_box), head=named["head"],
        yaw=m.yaw0 + sum(w(t) for w in m.yaw), cx=0.5 * width + reach * travel,
        ground=height * (0.88 + 0.03 * depth), scale=scale,
    )


# --------------------------------------------------------------------------------------------
# Projection and drawing
# --------------------------------------------------------------------------------------------

def _project(p: _Pose, v: Vec3) -> tuple[float, float, float]:
    """Orthographic camera after turning the body by ``yaw``: (x_px, y_px, depth toward camera)."""
    c, s = math.cos(p.yaw), math.sin(p.yaw)
    x_cam = v[0] * c + v[2] * s
    depth = -v[0] * s + v[2] * c
    return (p.cx + p.scale * x_cam, p.ground - p.scale * v[1], depth)


def synth_keypoints(num_frames: int, *, seed: int = 0, height: int = 32, width: int = 64,
                    start: int = 0) -> np.ndarray:
    """2-D OpenPose keypoints of the synthetic dancer, float32 ``[num_frames, 18, 2]`` as (x, y) pixels.

    The same geometry as the label images of :func:`synth_sequence` for the same arguments.
    """
    _check_sequence_args(num_frames, seed, height, width, start)
    motion = _scene(seed, height, width).motion
    out = np.empty((num_frames, len(JOINT_NAMES), 2), np.float32)
    for i in range(num_frames):
        pose = _pose_at(motion, float(start + i), height, width)
        out[i] = [_project(pose, j)[:2] for j in pose.joints]
    return out


def _hull(points: list[Point]) -> list[Point]:
    """Convex hull (Andrew's monotone chain) of a few 2-D points, counter-clockwise."""
    pts = sorted(set(points))
    if len(pts) <= 2:
        return pts

    def cross(o: Point, a: Point, b: Point) -> float:
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower: list[Point] = []
    upper: list[Point] = []
    for q in pts:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], q) <= 0:
            lower.pop()
        lower.append(q)
    for q in reversed(pts):
        while len(upper) >= 2 and cross(upper[-2], upper[-1], q) <= 0:
            upper.pop()
        upper.append(q)
    return lower[:-1] + upper[:-1]


def _shade(colour: tuple[int, int, int], depth: float) -> tuple[int, int, int]:
    """Darken the far side of the body a little, so that turns read as turns."""
    f = 1.0 - 0.22 * min(max(-depth / 0.1, 0.0), 1.0)
    return (int(colour[0] * f), int(colour[1] * f), int(colour[2] * f))


def _segment(draw: ImageDraw.ImageDraw, a: Point, b: Point, width: float,
             colour: tuple[int, int, int]) -> None:
    """A thick line with round caps (Pillow's width-only lines have square, ragged ends)."""
    w = max(1, int(round(width)))
    draw.line([a, b], fill=colour, width=w)
    r = w / 2.0
    for x, y in (a, b):
        draw.ellipse([x - r, y - r, x + r, y + r], fill=colour)


def _draw_head(draw: ImageDraw.ImageDraw, centre: Point, r: float, yaw: float,
               look: _Look) -> None:
    """Hair-coloured head with a skin face ellipse on the side the dancer faces."""
    x, y = centre
    fwd_x, toward = math.sin(yaw), math.cos(yaw)
    back = -0.2 * r * fwd_x
    draw.ellipse([x - r + back, y - r, x + r + back, y + r], fill=look.hair)
    visible = min(max((toward + 0.3) / 1.3, 0.0), 1.0)  # 0 when seen from behind
    if visible <= 0.0:
        return
    rx = 0.78 * r * (0.35 + 0.65 * visible)
    ry = 0.72 * r
    fx, fy = x + 0.35 * r * fwd_x, y + 0.22 * r
    draw.ellipse([fx - rx, fy - ry, fx + rx, fy + ry], fill=look.skin)


@dataclass(frozen=True)
class _Scene:
    """Everything that depends only on (seed, height, width)."""

    motion: _Motion
    look: _Look
    background: Image.Image   # SUPERSAMPLE x resolution, RGB; never mutated
    shadow: Image.Image       # "L" mask of the soft floor shadow
    label_bg: Image.Image


def _background(look: _Look, rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Static studio: lit wall with a vignette and ceiling lights, brighter floor, fixed grain."""
    yy = (np.arange(height, dtype=np.float64)[:, None] + 0.5) / height
    xx = (np.arange(width, dtype=np.float64)[None, :] + 0.5) / width
    horizon = 0.8
    wall = 1.0 - 0.16 * np.clip(yy / horizon, 0, 1) ** 0.7
    lights = sum(np.exp(-(((xx - cx) * width / height) ** 2 + (yy * 2.2) ** 2) / 0.02)
                 for cx in rng.uniform(0.0, 1.0, size=3) * 0.9 + 0.05)
    wall = wall + 0.16 * lights - 0.08 * (2 * xx - 1) ** 2
    floor = 0.9 + 0.16 * np.clip((yy - horizon) / (1 - horizon), 0, 1) - 0.06 * (2 * xx - 1) ** 2
    blend = np.clip((yy - horizon) * height / 3.0 + 0.5, 0, 1)  # soft ~3 px wall/floor seam
    shade = (1 - blend) * wall + blend * floor
    base = (1 - blend)[..., None] * np.array(look.wall) + blend[..., None] * np.array(look.floor)
    img = base * (shade / shade.mean())[..., None]
    img = img + rng.normal(0.0, 1.5, size=(height, width, 1)) + rng.normal(0.0, 0.6, size=img.shape)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def _shadow_mask(height: int) -> Image.Image:
    """A blurred ellipse (drawn once) pasted under the feet of every frame."""
    ss = SUPERSAMPLE
    w, h = int(0.42 * height * ss), int(0.09 * height * ss)
    pad = max(2, int(0.04 * height * ss))
    mask = Image.new("L", (w + 2 * pad, h + 2 * pad), 0)
    ImageDraw.Draw(mask).ellipse([pad, pad, pad + w, pad + h], fill=110)
    return mask.filter(ImageFilter.GaussianBlur(pad / 2))


@functools.lru_cache(maxsize=8)
def _scene(seed: int, height: int, width: int) -> _Scene:
    """Seeded motion, look, background and shadow (cached: they are reused for every frame)."""
    # Separate streams so that changing the image size never changes the dance or the clothes.
    motion = _make_motion(np.random.default_rng([seed, 1]))
    look = _make_look(np.random.default_rng([seed, 2]))
    bg = _background(look, np.random.default_rng([seed, 3]), height, width)
    big = Image.fromarray(bg).resize((width * SUPERSAMPLE, height * SUPERSAMPLE), Image.NEAREST)
    label_bg = Image.new("RGB", (width * SUPERSAMPLE, height * SUPERSAMPLE), (255, 255, 255))
    return _Scene(motion, look, big, _shadow_mask(height), label_bg)


def _body_items(pose: _Pose, look: _Look) -> list[tuple[float, str, tuple]]:
    """Drawable parts as (depth, kind, data), in final-resolution pixel units."""
    ss = SUPERSAMPLE
    proj = [_project(pose, j) for j in pose.joints]
    px = [(x * ss, y * ss) for x, y, _ in proj]
    u = pose.scale * ss  # 4x pixels per unit of height
    arm_col = look.shirt if look.long_sleeves else look.skin
    items: list[tuple[float, str, tuple]] = []

    def seg(a: int, b: int, width: float, colour: tuple[int, int, int], bias: float = 0.0) -> None:
        d = 0.5 * (proj[a][2] + proj[b][2])
        items.append((d + bias, "seg", (px[a], px[b], width * u, _shade(colour, d))))

    for side in ("r", "l"):
        s, e, w = _J[f"{side}_shoulder"], _J[f"{side}_elbow"], _J[f"{side}_wrist"]
        h, k, a = _J[f"{side}_hip"], _J[f"{side}_knee"], _J[f"{side}_ankle"]
        seg(s, e, 0.06, look.shirt)
        seg(e, w, 0.05, arm_col)
        seg(h, k, 0.08, look.trousers, -0.03)  # legs tuck behind the shirt's hem when level
        seg(k, a, 0.065, look.trousers, -0.03)
        fwd = _project(pose, _add(pose.joints[a], (0.0, -0.01, 0.06)))
        d = proj[a][2]
        items.append((d - 0.02, "seg", (px[a], (fwd[0] * ss, fwd[1] * ss), 0.05 * u,
                                        _shade(look.shoes, d))))
        hand = proj[w]
        items.append((hand[2] + 0.001, "disc", ((hand[0] * ss, hand[1] * ss), 0.03 * u,
                                               _shade(look.skin, hand[2]))))

    centre = _project(pose, _add(pose.joints[_J["neck"]], (0.0, -0.15, 0.0)))[2]
    for box, colour, bias in ((pose.pelvis_box, look.trousers, -0.025), (pose.torso, look.shirt, -0.01)):
        pts = [_project(pose, c) for c in box]
        items.append((centre + bias, "poly", (_hull([(x * ss, y * ss) for x, y, _ in pts]), colour)))
    head = _project(pose, pose.head)
    neck = proj[_J["neck"]]
    items.append((neck[2] - 0.02, "seg", ((neck[0] * ss, neck[1] * ss), (head[0] * ss, head[1] * ss),
                                         0.05 * u, look.skin)))
    items.append((head[2] + 0.02, "head", ((head[0] * ss, head[1] * ss), 0.068 * u)))
    return items


def _render_frame(scene: _Scene, pose: _Pose) -> np.ndarray:
    """The RGB frame: studio background, floor shadow, then body parts far to near."""
    ss = SUPERSAMPLE
    img = scene.background.copy()
    feet = [_project(pose, pose.joints[_J[n]]) for n in ("r_ankle", "l_ankle")]
    sx = 0.5 * (feet[0][0] + feet[1][0]) * ss - scene.shadow.width / 2
    sy = pose.ground * ss - scene.shadow.height / 2
    img.paste((20, 20, 20), (int(round(sx)), int(round(sy))), scene.shadow)
    draw = ImageDraw.Draw(img)
    items = _body_items(pose, scene.look)
    for _, kind, data in sorted(items, key=lambda it: it[0]):
        if kind == "seg":
            _segment(draw, *data)
        elif kind == "poly":
            draw.polygon(data[0], fill=data[1])
        elif kind == "disc":
            (x, y), r, colour = data
            draw.ellipse([x - r, y - r, x + r, y + r], fill=colour)
        else:
            _draw_head(draw, data[0], data[1], pose.yaw, scene.look)
    return np.asarray(img.reduce(ss))


def _render_label(scene: _Scene, pose: _Pose) -> np.ndarray:
    """The pose label: the 17 limbs, OpenPose colours, ~1 px wide, on white."""
    ss = SUPERSAMPLE
    img = scene.label_bg.copy()
    draw = ImageDraw.Draw(img)
    pts = [_project(pose, j) for j in pose.joints]
    for (a, b), colour in zip(LIMBS, LIMB_COLORS):
        draw.line([(pts[a][0] * ss, pts[a][1] * ss), (pts[b][0] * ss, pts[b][1] * ss)],
                  fill=colour, width=_LABEL_LINE_WIDTH)
    return np.asarray(img.reduce(ss))


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------

def _check_int(name: str, value: object, minimum: int) -> None:
    """Raise ValueError naming ``name`` unless ``value`` is an int >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")


def _check_sequence_args(num_frames: int, seed: int, height: int, width: int, start: int) -> None:
    _check_int("num_frames", num_frames, 1)
    _check_int("seed", seed, 0)
    _check_int("height", height, 8)
    _check_int("width", width, 8)
    _check_int("start", start, 0)


def synth_sequence(num_frames: int, *, seed: int = 0, height: int = 32, width: int = 64,
                   start: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Render a piece of the synthetic recording.

    Returns ``(frames, labels)``, both uint8 ``[num_frames, height, width, 3]``. ``start`` is a time
    offset in frames, so ``synth_sequence(10, start=5)`` equals ``synth_sequence(15)[5:]`` (for
    both arrays). Appearance and motion depend only on ``seed``; the same arguments always give
    byte-identical output.
    """
    _check_sequence_args(num_frames, seed, height, width, start)
    scene = _scene(int(seed), int(height), int(width))
    frames = np.empty((num_frames, height, width, 3), np.uint8)
    labels = np.empty_like(frames)
    for i in range(num_frames):
        pose = _pose_at(scene.motion, float(start + i), height, width)
        frames[i] = _render_frame(scene, pose)
        labels[i] = _render_label(scene, pose)
    return frames, labels


def _save_png(arr: np.ndarray, path: pathlib.Path) -> None:
    # Low zlib effort: these files are tiny and writing speed matters more than bytes.
    Image.fromarray(arr).save(path, compress_level=1)


def _write_frames(folder: pathlib.Path, images: np.ndarray, first: int = 0) -> None:
    """``folder/frame{first + i}.png`` for every image ``i`` of ``images`` [N, H, W, 3]."""
    for i, image in enumerate(images):
        _save_png(image, folder / f"frame{first + i}.png")


def _pieces(lengths: list[int], seed: int, height: int, width: int,
            bar: tqdm) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Pieces of the one seeded recording, in the order and of the lengths of ``lengths``, ``_GAP``
    frames apart; a piece counts on ``bar`` once the caller has written it (asks for the next)."""
    t = 0
    for n in lengths:
        yield synth_sequence(n, seed=seed, height=height, width=width, start=t)
        bar.update(n)
        t += n + _GAP


def write_synthetic_dataset(out_dir: str | os.PathLike, *, seed: int = 0, height: int = 32,
                            width: int = 64, train_sequences: int = 3, train_len: int = 200,
                            val_len: int = 120, test_sequences: int = 1, test_len: int = 120,
                            progress: bool = False) -> pathlib.Path:
    """Write a synthetic dataset in the lab's folder layout and return ``out_dir`` as a Path.

    Layout (frame numbers not zero-padded), all pieces cut from one seeded recording, ``_GAP``
    frames apart so that no two pieces share frames:

    * ``train/train_img/frame{N}.png``, ``train/train_label/frame{N}.png``: the train sequences
      back to back, ``N < train_sequences * train_len``;
    * ``val/val_img/frame{N}.png``, ``val/val_label/frame{N}.png``, ``N < val_len``;
    * ``test/test_img/{K}/frame0.png`` (first frame only), ``test/test_label/{K}/frame{N}.png``,
      ``N < test_len``, and ``gt/{K}.npz`` with ``frames`` uint8 ``[test_len, height, width, 3]``.
    """
    for name, value, minimum in (("seed", seed, 0), ("height", height, 8), ("width", width, 8),
                                 ("train_sequences", train_sequences, 1), ("train_len", train_len, 1),
                                 ("val_len", val_len, 1), ("test_sequences", test_sequences, 1),
                                 ("test_len", test_len, 1)):
        _check_int(name, value, minimum)
    root = pathlib.Path(out_dir)
    dirs = {k: root / k for k in ("train/train_img", "train/train_label", "val/val_img",
                                  "val/val_label", "test/test_img", "test/test_label", "gt")}
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    lengths = [train_len] * train_sequences + [val_len] + [test_len] * test_sequences
    with tqdm(total=sum(lengths), desc="synthetic dataset", unit="frame", disable=not progress) as bar:
        pieces = _pieces(lengths, seed, height, width, bar)
        for k in range(train_sequences):
            frames, labels = next(pieces)
            _write_frames(dirs["train/train_img"], frames, k * train_len)
            _write_frames(dirs["train/train_label"], labels, k * train_len)
        frames, labels = next(pieces)
        _write_frames(dirs["val/val_img"], frames)
        _write_frames(dirs["val/val_label"], labels)
        for k, (frames, labels) in enumerate(pieces):  # the test sequences: what is left
            (dirs["test/test_img"] / str(k)).mkdir(exist_ok=True)
            (dirs["test/test_label"] / str(k)).mkdir(exist_ok=True)
            _save_png(frames[0], dirs["test/test_img"] / str(k) / "frame0.png")
            _write_frames(dirs["test/test_label"] / str(k), labels)
            np.savez_compressed(dirs["gt"] / f"{k}.npz", frames=frames)
    return root
