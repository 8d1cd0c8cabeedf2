"""Intuitive physics: a tiny 2-D simulator, a numpy renderer, and a suite of possible/impossible video pairs.

Sources: the violation-of-expectation protocol of IntPhys (Riochet et al. 2018, "IntPhys: A Framework and
Benchmark for Visual Intuitive Physics Reasoning") as used by Garrido et al. 2025, "Intuitive physics
understanding emerges from self-supervised pretraining on natural videos" (arXiv:2502.11831). There, a V-JEPA
model's prediction error ("surprise") is compared within matched pairs: the impossible video should surprise
more than its possible twin.

World: the unit square with y growing downwards (as in images), side walls `WALL` thick, a floor whose top is
at `FLOOR`, a ceiling at the top edge that only a body falling upward reaches, gravity, bouncy collisions with
floor, walls and ceiling, and 1-3 circles or squares. A scene has either a static screen (occluder) standing on
the floor, or a solid barrier (a low interior wall the bodies bounce off, side or top), or neither. Objects do
not collide with each other: they sit at different depths and are drawn in a fixed order, the screen in front of
all. Time runs over one unit per video whatever the frame count, so a seed shows the same events at any `size`
and (up to the integration step) any `frames`.

A scene is drawn from `np.random.default_rng(seed)`, so a seed gives the same video bit for bit. Permanence,
continuity, shape and colour are tested with IntPhys's quadruplets (`make_quad`): a second possible video B of
the scene (one body absent, elsewhere, reshaped or recoloured from the start) and two impossible videos spliced
from A and B at one frame, so that the impossible pair shows the same images as the possible pair. Gravity and
solidity have no possible counterpart; their impossible twin replays the scene and applies one event at an
onset frame (`make_pair`): the body floats or falls upward (a coin per scene picks which, so that the twin
moves less in about half the scenes and more in the rest), or it passes through the barrier instead of
bouncing off it. Solidity uses the interior barrier, not the floor or the side walls, so the body stays in view
after the violation and the impossible twin has as much to predict as its possible partner. The choices come
from a second generator seeded by (seed, property), so the scene itself never changes. `t_div` is measured on
the pixels, not assumed: the first frame where a pair differs (for an object vanishing behind the screen, the
frame where it should have come back out).

`noise` adds camera noise to a suite: Gaussian noise that no model can predict, the detail a pixel-space
predictor spends its loss on and a joint-embedding one may learn to ignore (the claim of LeCun 2022, "A Path
Towards Autonomous Machine Intelligence", that motivates JEPA). By default it depends only on the scene seed and
the frame index, so all videos of a scene carry the same noise at a frame and every invariant above still holds;
shared by the twins, it largely cancels within a pair. `noise_per_twin` gives each twin its own noise from t_div
on, as two recordings would have, yet keeps every invariant (`noise_takes`). `noise_grain` draws one value per
grain x grain block of pixels: blocky flicker, fewer and larger unpredictable values than sensor noise, so a
score that follows pixels fluctuates more from window to window.
"""

from __future__ import annotations

import colorsys
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from jepaworld.data.video import write_video

PROPERTIES: tuple[str, ...] = ("permanence", "continuity", "shape", "color", "gravity", "solidity")
# Tested with content-balanced quadruplets (`make_quad`); the others with one matched pair per scene.
QUAD_PROPERTIES: tuple[str, ...] = ("permanence", "continuity", "shape", "color")
# A colour change breaks no law of physics a model could learn from motion; report it apart, as a control.
CONTROL_PROPERTIES: tuple[str, ...] = ("color",)

WALL = 0.04  # wall thickness, world units
FLOOR = 0.86  # y of the floor's top surface
GRAVITY = 8.0  # world units per (video duration)^2: a drop from mid-height lands in about a third of the video
RESTITUTION_FLOOR = 0.7
RESTITUTION_WALL = 0.9
REST_SPEED = 0.25  # a bounce slower than this comes to rest, so objects settle instead of jittering forever
FRICTION = 1.5  # horizontal slow-down per unit time while touching the floor
SUBSTEPS = 128  # integration steps per video, split evenly over frames

BACKGROUND = (214, 220, 228)
FLOOR_COLOR = (92, 84, 76)
WALL_COLOR = (128, 120, 112)
OCCLUDER_COLOR = (70, 78, 96)
BARRIER_WIDTH = 0.06  # the interior barrier: as solid as the side walls, thicker so it shows at 32 px
# The noise stream of a scene, apart from the scene's and the properties' (1..6). Not 0: numpy's SeedSequence
# pads entropy with zeros, so [seed, 0] would replay the scene's own stream.
_NOISE_STREAM = 1000


class ViolationUnavailable(ValueError):
    """The scene of this seed cannot host a visible violation of the requested property (try another seed)."""


@dataclass(frozen=True)
class Scene:
    """Initial conditions of one scene; K objects."""

    seed: int
    pos: np.ndarray  # (K, 2) centres (x, y), world units
    vel: np.ndarray  # (K, 2) world units per video duration
    radius: np.ndarray  # (K,) circle radius or square half-side
    square: np.ndarray  # (K,) bool, False is a circle
    hsv: np.ndarray  # (K, 3) colour, each channel in [0, 1]
    occluder: tuple[float, float, float] | None  # (x0, x1, top) of a screen standing on the floor
    barrier: tuple[float, float, float] | None = None  # (x0, x1, top) of a solid wall standing on the floor


@dataclass(frozen=True)
class PhysicsPair:
    """A possible video and its impossible twin: identical frames [0, t_div), different from t_div on."""

    seed: int
    prop: str
    possible: np.ndarray  # (T, S, S, 3) uint8
    impossible: np.ndarray  # (T, S, S, 3) uint8
    t_div: int
    detail: str  # which variant of the violation, e.g. "vanish_behind_occluder", "float"


def _random_hsv(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, 3) saturated, bright colours, far from the greys of the background, floor and screen."""
    return np.stack([rng.random(n), rng.uniform(0.65, 1.0, n), rng.uniform(0.7, 1.0, n)], axis=1)


def _random_velocity(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, 2): a sideways drift either way and a vertical kick, mostly upwards (y points down)."""
    vx = rng.choice([-1.0, 1.0], n) * rng.uniform(0.25, 1.0, n)
    vy = rng.uniform(-1.5, 0.5, n)
    return np.stack([vx, vy], axis=1)


def make_scene(seed: int) -> Scene:
    """Draw the objects and the screen of scene `seed`; independent of frame count and resolution."""
    rng = np.random.default_rng(seed)
    k = int(rng.integers(1, 4))
    occluder = None
    if rng.random() < 0.6:
        width = rng.uniform(0.22, 0.3)  # wide enough to hide the largest object (diameter 0.2)
        x0 = rng.uniform(WALL + 0.1, 1.0 - WALL - 0.1 - width)
        occluder = (float(x0), float(x0 + width), float(rng.uniform(0.3, 0.5)))
    radius = rng.uniform(0.06, 0.1, k)
    square = rng.random(k) < 0.5
    x = rng.uniform(WALL + radius, 1.0 - WALL - radius)
    y = rng.uniform(0.15 + radius, 0.6)
    vel, hsv = _random_velocity(rng, k), _random_hsv(rng, k)
    barrier = None
    # Drawn after everything else, so adding the barrier left every other draw of a seed as it was.
    if occluder is None and rng.random() < 0.75:
        x0 = rng.uniform(0.35, 0.65 - BARRIER_WIDTH)
        barrier = (float(x0), float(x0 + BARRIER_WIDTH), float(rng.uniform(0.35, 0.6)))
    pos = np.stack([x, y], axis=1)
    return Scene(seed=seed, pos=pos, vel=vel, radius=radius, square=square, hsv=hsv, occluder=occluder,
                 barrier=barrier)  # fmt: skip


def _clear_of_barrier(pos: np.ndarray, radius: np.ndarray, barrier: tuple[float, float, float] | None) -> np.ndarray:
    """(K, 2) start positions with any body that overlaps the barrier moved sideways out of it (to the nearer
    side; the barrier stands in the middle third, so there is always room before the side wall)."""
    if barrier is None:
        return pos
    x0, x1, top = barrier
    x, y = pos[:, 0], pos[:, 1]
    inside = (x + radius > x0) & (x - radius < x1) & (y + radius > top)
    left = x < (x0 + x1) / 2
    return np.stack([np.where(inside, np.where(left, x0 - radius, x1 + radius), x), y], axis=1)


@dataclass
class _Bodies:
    """Mutable state of K bodies; violations flip the switches gscale and solid."""

    pos: np.ndarray  # (K, 2)
    vel: np.ndarray  # (K, 2)
    radius: np.ndarray  # (K,)
    square: np.ndarray  # (K,) bool
    hsv: np.ndarray  # (K, 3)
    gscale: np.ndarray  # (K,) gravity multiplier: 1 normal, 0 floats, -1 falls upwards
    solid: np.ndarray  # (K,) bool, collides with the barrier (floor and walls always hold)

    @classmethod
    def from_scene(cls, scene: Scene) -> _Bodies:
        k = len(scene.radius)
        return cls(
            pos=_clear_of_barrier(scene.pos.copy(), scene.radius, scene.barrier),
            vel=scene.vel.copy(),
            radius=scene.radius.copy(),
            square=scene.square.copy(),
            hsv=scene.hsv.copy(),
            gscale=np.ones(k),
            solid=np.ones(k, dtype=bool),
        )


@dataclass(frozen=True)
class _Event:
    """One violation, applied to the state just before the simulation steps into frame `onset`."""

    onset: int
    kind: str  # float | fall_upward | intangible (passes through the barrier)
    body: int
    detail: str


@dataclass(frozen=True)
class _Trace:
    """Per-frame record of the original K bodies, read when planning where a violation will show."""

    pos: np.ndarray  # (T, K, 2)
    vel: np.ndarray  # (T, K, 2)
    side_hit: np.ndarray  # (T, K) speed into a side of the barrier while stepping into frame t, 0 if none
    top_hit: np.ndarray  # (T, K) same, onto the top of the barrier


def _apply_event(b: _Bodies, ev: _Event) -> None:
    k = ev.body
    if ev.kind == "float":
        b.gscale[k], b.vel[k, 1] = 0.0, 0.0
    elif ev.kind == "fall_upward":
        b.gscale[k] = -1.0
    elif ev.kind == "intangible":
        b.solid[k] = False
    else:
        raise ValueError(f"unknown event kind {ev.kind!r}")


def _land(b: _Bodies, on: np.ndarray, surface: float, dt: float, *, down: bool = True) -> np.ndarray:
    """Bodies `on` (K,) bool pushed into a surface at height `surface`, from above (`down`) or from below: clamp
    them onto it, reflect the speed into it, let slow bounces come to rest, apply friction. Returns the (K,)
    impact speeds."""
    s = 1.0 if down else -1.0
    into = on & (s * b.vel[:, 1] > 0)
    hit = np.where(into, s * b.vel[:, 1], 0.0)
    b.pos[on, 1] = surface - s * b.radius[on]
    b.vel[into, 1] *= -RESTITUTION_FLOOR
    b.vel[on & (np.abs(b.vel[:, 1]) < REST_SPEED), 1] = 0.0
    b.vel[on, 0] *= 1.0 - FRICTION * dt
    return hit


def _advance(
    b: _Bodies, barrier: tuple[float, float, float] | None, *, substeps: int, dt: float
) -> tuple[np.ndarray, np.ndarray]:
    """Semi-implicit Euler over `substeps` steps, in place; returns the peak impact speeds (K,) into the sides
    and onto the top of the barrier. Bodies collide as their bounding boxes (a circle's box is its square)."""
    side_hit, top_hit = np.zeros(len(b.radius)), np.zeros(len(b.radius))
    r = b.radius
    for _ in range(substeps):
        b.vel[:, 1] += GRAVITY * b.gscale * dt
        b.pos += b.vel * dt
        _land(b, b.pos[:, 1] + r > FLOOR, FLOOR, dt)
        # The top edge of the frame is a ceiling. No possible video reaches it (a body starts at least 0.15 + r
        # down and is kicked up at most 1.5, which rises 0.14); it keeps a body that falls upward in view.
        _land(b, b.pos[:, 1] - r < 0.0, 0.0, dt, down=False)
        # Side walls: clamp inside, reflect the speed heading into the wall.
        left = b.pos[:, 0] - r < WALL
        right = b.pos[:, 0] + r > 1.0 - WALL
        into = (left & (b.vel[:, 0] < 0)) | (right & (b.vel[:, 0] > 0))
        b.pos[left, 0] = WALL + r[left]
        b.pos[right, 0] = 1.0 - WALL - r[right]
        b.vel[into, 0] *= -RESTITUTION_WALL
        if barrier is None:
            continue
        # Barrier: push an overlapping body out the way it went in least deep (top, left or right side).
        x0, x1, top = barrier
        x, y = b.pos[:, 0], b.pos[:, 1]
        inside = b.solid & (x + r > x0) & (x - r < x1) & (y + r > top)
        if not inside.any():
            continue
        from_left, from_right, from_top = x + r - x0, x1 - (x - r), y + r - top  # (K,) penetration depths
        on_top = inside & (from_top < np.minimum(from_left, from_right))
        to_left = inside & ~on_top & (from_left <= from_right)
        to_right = inside & ~on_top & ~to_left
        top_hit = np.maximum(top_hit, _land(b, on_top, top, dt))
        into = (to_left & (b.vel[:, 0] > 0)) | (to_right & (b.vel[:, 0] < 0))
        side_hit = np.maximum(side_hit, np.where(into, np.abs(b.vel[:, 0]), 0.0))
        b.pos[to_left, 0] = x0 - r[to_left]
        b.pos[to_right, 0] = x1 + r[to_right]
        b.vel[into, 0] *= -RESTITUTION_WALL
    return side_hit, top_hit


def _backdrop(scene: Scene, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Static layers: backdrop (S, S, 3) uint8, screen mask (S, S) bool, pixel centres (S,) twice."""
    centres = (np.arange(size) + 0.5) / size  # (S,)
    xs, ys = centres[None, :], centres[:, None]  # broadcast to (S, S): columns are x, rows are y
    image = np.empty((size, size, 3), dtype=np.uint8)
    image[:] = BACKGROUND
    image[((xs < WALL) | (xs > 1.0 - WALL)) & (ys < FLOOR)] = WALL_COLOR
    image[np.broadcast_to(ys >= FLOOR, (size, size))] = FLOOR_COLOR
    if scene.barrier is not None:  # part of the backdrop: a body passing through it is drawn in front
        x0, x1, top = scene.barrier
        image[(xs >= x0) & (xs <= x1) & (ys >= top) & (ys < FLOOR)] = WALL_COLOR
    screen = np.zeros((size, size), dtype=bool)
    if scene.occluder is not None:
        x0, x1, top = scene.occluder
        screen = (xs >= x0) & (xs <= x1) & (ys >= top) & (ys < FLOOR)
    return image, screen, centres, centres


def _hsv_to_rgb(hsv: np.ndarray) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(*(float(c) for c in hsv))
    return round(r * 255), round(g * 255), round(b * 255)


def _render(b: _Bodies, backdrop: np.ndarray, screen: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """One frame (S, S, 3) uint8: backdrop, bodies in index order (later ones in front), then the screen."""
    image = backdrop.copy()
    for k in range(len(b.radius)):
        dx = np.abs(xs[None, :] - b.pos[k, 0])  # (1, S)
        dy = np.abs(ys[:, None] - b.pos[k, 1])  # (S, 1)
        r = b.radius[k]
        mask = (dx <= r) & (dy <= r) if b.square[k] else dx * dx + dy * dy <= r * r  # (S, S)
        image[mask] = _hsv_to_rgb(b.hsv[k])
    image[screen] = OCCLUDER_COLOR
    return image


def _simulate(scene: Scene, *, frames: int, size: int, event: _Event | None = None) -> tuple[np.ndarray, _Trace]:
    """Run and render the scene: (T, S, S, 3) uint8 frames and the trace of the original bodies."""
    substeps = max(1, round(SUBSTEPS / frames))
    dt = 1.0 / (frames * substeps)
    backdrop, screen, xs, ys = _backdrop(scene, size)
    b = _Bodies.from_scene(scene)
    k = len(scene.radius)
    video = np.empty((frames, size, size, 3), dtype=np.uint8)
    pos, vel = np.zeros((frames, k, 2)), np.zeros((frames, k, 2))
    hits = np.zeros((2, frames, k))  # into the barrier's sides, onto its top
    for t in range(frames):
        if event is not None and t == event.onset:
            _apply_event(b, event)
        if t > 0:
            hits[:, t] = _advance(b, scene.barrier, substeps=substeps, dt=dt)
        pos[t], vel[t] = b.pos[:k], b.vel[:k]
        video[t] = _render(b, backdrop, screen, xs, ys)
    return video, _Trace(pos=pos, vel=vel, side_hit=hits[0], top_hit=hits[1])


# ---- planning: candidate events per property, preferred variants first, each list in random order ----


def _onset_window(frames: int) -> range:
    """Onsets late enough to leave context before, early enough to leave a visible aftermath."""
    return range(max(2, frames // 4), frames - _tail(frames))


def _tail(frames: int) -> int:
    return max(3, frames // 8)


def _shuffled(rng: np.random.Generator, items: list[tuple[int, int]]) -> list[tuple[int, int]]:
    return [items[i] for i in rng.permutation(len(items))]


def _hidden(scene: Scene, trace: _Trace) -> np.ndarray:
    """(T, K) bool: the body lies entirely behind the screen."""
    if scene.occluder is None:
        return np.zeros(trace.pos.shape[:2], dtype=bool)
    x0, x1, top = scene.occluder
    x, y, r = trace.pos[..., 0], trace.pos[..., 1], scene.radius[None, :]
    return (x - r >= x0) & (x + r <= x1) & (y - r >= top)


def _resting(scene: Scene, trace: _Trace) -> np.ndarray:
    """(T, K) bool: the body sits still on the floor."""
    return (trace.pos[..., 1] + scene.radius[None, :] >= FLOOR - 1e-9) & (trace.vel[..., 1] == 0.0)


def _falling(scene: Scene, trace: _Trace) -> np.ndarray:
    """(T, K) bool: the body is moving down and well above the floor, so stopping it there reads as floating
    rather than as a damped bounce."""
    return (trace.pos[..., 1] + scene.radius[None, :] < FLOOR - 0.15) & (trace.vel[..., 1] > 0.0)


# Each planner maps (scene, trace of the possible video A, rng, candidate (onset, body) pairs) to candidates,
# preferred variants first and each variant in random order: `_Splice`s for the quadruplet properties (`sim`
# renders an altered scene), `_Event`s for the pair properties.
_Candidates = list[tuple[int, int]]
_Sim = Callable[[Scene], tuple[np.ndarray, _Trace]]


# ---- quadruplets: two possible videos of one scene, spliced into two impossible ones ----


@dataclass(frozen=True)
class _Splice:
    """A candidate quadruplet: the altered possible video B and the frame t where A and B are spliced."""

    video: np.ndarray  # (T, S, S, 3) video B
    onset: int  # t: the impossible videos are A[:t] + B[t:] and B[:t] + A[t:]
    detail: tuple[str, str]  # what each impossible video shows


def _altered(scene: Scene, i: int, **rows: object) -> Scene:
    """Scene with body i's rows of the given fields replaced (pos=..., radius=...), or body i removed when
    rows is empty."""
    fields = ("pos", "vel", "radius", "square", "hsv")
    if not rows:
        keep = np.arange(len(scene.radius)) != i
        return replace(scene, **{f: getattr(scene, f)[keep] for f in fields})
    changed = {}
    for f, value in rows.items():
        arr = getattr(scene, f).copy()
        arr[i] = value
        changed[f] = arr
    return replace(scene, **changed)


def _visible(hidden: np.ndarray, t: int, i: int) -> bool:
    """Body i is at least partly in view on both sides of the splice, frames t - 1 and t."""
    return not hidden[t - 1, i] and not hidden[t, i]


def _plan_permanence(scene: Scene, trace: _Trace, rng: np.random.Generator, every: _Candidates, sim: _Sim) -> list:
    # B: the scene without body i. Preferred, as in IntPhys: splice while the body is fully behind the screen
    # (there A and B look the same), so one impossible video never brings the body back out and the other
    # brings out a body that never went in. It must have been seen first (2+ frames), or never reappearing
    # would be the plausible outcome. Otherwise splice in plain view: it vanishes, or pops into existence.
    hidden = _hidden(scene, trace)
    seen = np.cumsum(~hidden, axis=0)  # (T, K) frames so far with the body at least partly in view
    behind = _shuffled(rng, [(t, i) for t, i in every if hidden[t, i] and seen[t - 1, i] >= 2])
    plain = _shuffled(rng, [(t, i) for t, i in every if _visible(hidden, t, i)])
    candidates = [(c, ("vanish_behind_occluder", "appear_behind_occluder")) for c in behind]
    candidates += [(c, ("vanish", "appear")) for c in plain]
    videos: dict[int, np.ndarray] = {}  # body -> the video without it, rendered once
    out = []
    for (t, i), detail in candidates:
        if i not in videos:
            videos[i] = sim(_altered(scene, i))[0]
        out.append(_Splice(video=videos[i], onset=t, detail=detail))
    return out


def _plan_continuity(scene: Scene, trace: _Trace, rng: np.random.Generator, every: _Candidates, sim: _Sim) -> list:
    # B: body i starts somewhere else, with another velocity. Splice where each video's body is in view and
    # B's body is far (a third of the scene) from where A's was a frame before, and the other way round.
    out = []
    onsets = sorted({t for t, _ in every})
    hid_a = _hidden(scene, trace)
    for _ in range(4):
        i = int(rng.integers(len(scene.radius)))
        r = scene.radius[i]
        pos = (rng.uniform(WALL + r, 1.0 - WALL - r), rng.uniform(0.15 + r, 0.6))
        video, trace_b = sim(_altered(scene, i, pos=pos, vel=_random_velocity(rng, 1)[0]))
        hid_b = _hidden(scene, trace_b)
        a, b = trace.pos[:, i], trace_b.pos[:, i]  # (T, 2)
        for t in rng.permutation(onsets):
            far = min(np.linalg.norm(b[t] - a[t - 1]), np.linalg.norm(a[t] - b[t - 1])) >= 0.3
            if far and _visible(hid_a, t, i) and _visible(hid_b, t, i):
                out.append(_Splice(video=video, onset=t, detail=("teleport", "teleport")))
    return out


def _plan_shape(scene: Scene, trace: _Trace, rng: np.random.Generator, every: _Candidates, sim: _Sim) -> list:
    # B: body i is the other shape (same size, so the same path), or 1.5x / 0.6x its size from the start. A
    # resized body's path drifts after its first contact; splice only while the two stay within the size
    # difference of each other, so the impossible videos show a change of shape and not a jump.
    out = []
    hid_a = _hidden(scene, trace)
    for i in rng.permutation(len(scene.radius)):
        r, square = float(scene.radius[i]), bool(scene.square[i])
        if rng.random() < 0.5:
            new_r, new_square = r, not square
            detail = ("circle_to_square", "square_to_circle")
            detail = detail if new_square else detail[::-1]
        else:
            new_r, new_square = r * (1.5 if rng.random() < 0.5 else 0.6), square
            detail = ("grow", "shrink") if new_r > r else ("shrink", "grow")
        x, y = scene.pos[i]
        pos = (float(np.clip(x, WALL + new_r, 1.0 - WALL - new_r)), float(min(y, FLOOR - new_r)))
        scene_b = _altered(scene, i, pos=pos, radius=new_r, square=new_square)
        video, trace_b = sim(scene_b)
        hid_b = _hidden(scene_b, trace_b)  # with B's radius: a shrunk body hides behind the screen sooner
        gap = np.linalg.norm(trace.pos[:, i] - trace_b.pos[:, i], axis=-1)  # (T,)
        ok = [t for t, j in every if j == i and gap[t - 1 : t + 1].max() <= abs(new_r - r) + 0.01]
        out += [
            _Splice(video=video, onset=t, detail=detail)
            for t in rng.permutation(ok)
            if _visible(hid_a, t, i) and _visible(hid_b, t, i)
        ]
    return out


def _plan_color(scene: Scene, trace: _Trace, rng: np.random.Generator, every: _Candidates, sim: _Sim) -> list:
    # B: body i in another colour, at least a third of the colour wheel away; same path.
    out = []
    hidden = _hidden(scene, trace)
    for i in rng.permutation(len(scene.radius)):
        h, s, v = (float(c) for c in scene.hsv[i])
        hsv = ((h + rng.uniform(1 / 3, 2 / 3)) % 1.0, s, v)
        video, _ = sim(_altered(scene, i, hsv=hsv))
        ok = [t for t, j in every if j == i and _visible(hidden, t, i)]
        out += [_Splice(video=video, onset=t, detail=("recolor", "recolor")) for t in rng.permutation(ok)]
    return out


def _plan_gravity(scene: Scene, trace: _Trace, rng: np.random.Generator, every: _Candidates) -> list[_Event]:
    # A coin per scene picks the variant tried first. "float" stops a falling body in mid-air, so the impossible
    # twin moves less than its partner; "fall_upward" reverses a body's gravity and it falls to the ceiling, so
    # the twin moves more (a resting body lifts off) or about as much (a body in flight turns round). Balanced,
    # a score that follows only how much moves cannot win the property either way.
    lift_first = rng.random() < 0.5
    falling, resting, hidden = _falling(scene, trace), _resting(scene, trace), _hidden(scene, trace)
    floats = _shuffled(rng, [(t, i) for t, i in every if falling[t - 1, i]])
    grounded = _shuffled(rng, [(t, i) for t, i in every if resting[t - 1, i]])
    flying = _shuffled(rng, [(t, i) for t, i in every if not resting[t - 1, i] and not hidden[t - 1, i]])
    stop = [_Event(onset=t, kind="float", body=i, detail="float") for t, i in floats]
    lift = [_Event(onset=t, kind="fall_upward", body=i, detail="fall_upward") for t, i in grounded + flying]
    return lift + stop if lift_first else stop + lift


def _plan_solidity(scene: Scene, trace: _Trace, rng: np.random.Generator, every: _Candidates) -> list[_Event]:
    # Switch the barrier off for the body on the frame of a real bounce off it, so it goes through instead and
    # stays in view. (Through the floor or a side wall it would leave the frame, and the impossible twin would
    # have less to predict: a content difference, not a violation, would decide the pair.)
    side = [(t, i) for t, i in every if trace.side_hit[t, i] > 0.2]
    top = [(t, i) for t, i in every if trace.top_hit[t, i] > 0.5 and trace.side_hit[t, i] <= 0.2]
    return [_Event(onset=t, kind="intangible", body=i, detail="through_barrier") for t, i in _shuffled(rng, side)] + [
        _Event(onset=t, kind="intangible", body=i, detail="into_barrier_top") for t, i in _shuffled(rng, top)
    ]


_QUAD_PLANNERS = {
    "permanence": _plan_permanence,
    "continuity": _plan_continuity,
    "shape": _plan_shape,
    "color": _plan_color,
}
_PAIR_PLANNERS = {"gravity": _plan_gravity, "solidity": _plan_solidity}
assert tuple(_QUAD_PLANNERS) == QUAD_PROPERTIES and set(_QUAD_PLANNERS) | set(_PAIR_PLANNERS) == set(PROPERTIES)


@dataclass(frozen=True)
class PhysicsQuad:
    """IntPhys-style quadruplet of one scene: two possible videos, A (the scene as drawn) and B (one body absent,
    elsewhere, reshaped or recoloured from the start), and two impossible ones spliced from them at frame t,
    A[:t] + B[t:] and B[:t] + A[t:]. At every frame the impossible pair shows exactly the images of the possible
    pair, so a score that follows only the content (how much is in view or moving) cannot tell them apart: only
    the transition at t is impossible. Each impossible video equals its possible partner before `t_div`."""

    seed: int
    prop: str
    possible: tuple[np.ndarray, np.ndarray]  # A, B; each (T, S, S, 3) uint8
    impossible: tuple[np.ndarray, np.ndarray]  # A[:t] + B[t:], B[:t] + A[t:]
    t_div: int  # the first frame from t on where A and B differ: the same for both pairs
    detail: tuple[str, str]  # what each impossible video shows, e.g. ("vanish", "appear")

    def pairs(self) -> tuple[PhysicsPair, PhysicsPair]:
        """(A, A[:t] + B[t:]) and (B, B[:t] + A[t:]) as matched pairs."""
        return tuple(  # type: ignore[return-value]
            PhysicsPair(seed=self.seed, prop=self.prop, possible=p, impossible=i, t_div=self.t_div, detail=d)
            for p, i, d in zip(self.possible, self.impossible, self.detail, strict=True)
        )


def _check_args(size: int, frames: int) -> None:
    if size < 16:
        raise ValueError(f"size={size} is too small to show the objects; use size >= 16")
    if frames < 8:
        raise ValueError(f"frames={frames} leaves no room before and after a violation; use frames >= 8")


def _start(seed: int, prop: str, size: int, frames: int) -> tuple:
    """Scene, possible video and trace, the property's own generator and the candidate (onset, body) pairs."""
    _check_args(size, frames)
    if prop not in PROPERTIES:
        raise ValueError(f"unknown property {prop!r}; choose one of {', '.join(PROPERTIES)}")
    scene = make_scene(seed)
    possible, trace = _simulate(scene, frames=frames, size=size)
    rng = np.random.default_rng([seed, PROPERTIES.index(prop) + 1])  # separate stream: the scene stays unchanged
    every = [(t, i) for t in _onset_window(frames) for i in range(len(scene.radius))]
    return scene, possible, trace, rng, every


def _divergence(possible: np.ndarray, impossible: np.ndarray) -> int | None:
    """t_div if the twins differ visibly, else None: they first differ at a frame t_div with context before it
    and room after it, and from t_div on at least 3 frames have at least `max(4, S*S/200)` changed pixels (about
    half the area of the smallest object)."""
    frames, size = possible.shape[:2]
    changed = (possible != impossible).any(axis=-1).sum(axis=(1, 2))  # (T,) pixels that differ
    differ = np.flatnonzero(changed)
    if len(differ) == 0 or differ[0] >= frames - _tail(frames):
        return None
    return int(differ[0]) if (changed >= max(4, size * size // 200)).sum() >= 3 else None


def make_quad(seed: int, prop: str, *, size: int = 64, frames: int = 32, max_tries: int = 12) -> PhysicsQuad:
    """The content-balanced quadruplet of scene `seed` for a property in `QUAD_PROPERTIES`.

    Tries up to `max_tries` candidate splices and keeps the first whose violation is visible (`_divergence`).
    Raises ViolationUnavailable when none qualifies.
    """
    if prop in _PAIR_PLANNERS:
        raise ValueError(f"{prop} has no possible alternative to splice with; use make_pair")
    scene, a, trace, rng, every = _start(seed, prop, size, frames)

    def sim(s: Scene) -> tuple[np.ndarray, _Trace]:
        return _simulate(s, frames=frames, size=size)

    for c in _QUAD_PLANNERS[prop](scene, trace, rng, every, sim)[:max_tries]:
        b, t = c.video, c.onset
        ab, ba = np.concatenate([a[:t], b[t:]]), np.concatenate([b[:t], a[t:]])
        t_div = _divergence(a, ab)  # B vs B[:t] + A[t:] differ on the same frames
        if t_div is not None:
            return PhysicsQuad(seed=seed, prop=prop, possible=(a, b), impossible=(ab, ba), t_div=t_div, detail=c.detail)
    raise ViolationUnavailable(f"scene seed {seed} has no visible {prop} violation; try another seed")


def make_pair(seed: int, prop: str, *, size: int = 64, frames: int = 32, max_tries: int = 12) -> PhysicsPair:
    """The possible video of scene `seed` and its twin violating `prop`: for the quadruplet properties, the
    quadruplet's first pair; for the others, the first of up to `max_tries` candidate events whose violation is
    visible (`_divergence`). Raises ViolationUnavailable when no candidate qualifies."""
    if prop in _QUAD_PLANNERS:
        return make_quad(seed, prop, size=size, frames=frames, max_tries=max_tries).pairs()[0]
    scene, possible, trace, rng, every = _start(seed, prop, size, frames)
    for event in _PAIR_PLANNERS[prop](scene, trace, rng, every)[:max_tries]:
        impossible, _ = _simulate(scene, frames=frames, size=size, event=event)
        t_div = _divergence(possible, impossible)
        if t_div is not None:
            return PhysicsPair(seed=seed, prop=prop, possible=possible, impossible=impossible, t_div=t_div,
                               detail=event.detail)  # fmt: skip
    raise ViolationUnavailable(f"scene seed {seed} has no visible {prop} violation; try another seed")


def render_scene(
    seed: int, *, size: int = 64, frames: int = 32, violation: str | None = None
) -> tuple[np.ndarray, int | None]:
    """Frames (T, S, S, 3) uint8 of scene `seed`, and t_div: None for the possible video, else the first frame
    where the `violation` twin differs from it. Raises ViolationUnavailable if the scene cannot host it."""
    _check_args(size, frames)
    if violation is None:
        video, _ = _simulate(make_scene(seed), frames=frames, size=size)
        return video, None
    pair = make_pair(seed, violation, size=size, frames=frames)
    return pair.impossible, pair.t_div


def _check_noise(sigma: float, grain: int = 1) -> None:
    if not 0.0 <= sigma <= 255.0:  # also refuses NaN
        raise ValueError(f"noise={sigma} is not a pixel std in [0, 255]; pass e.g. 16")
    if grain < 1:
        raise ValueError(f"noise_grain={grain} is not a block side in pixels; pass 1 (per pixel) or more")


def add_noise(
    video: np.ndarray, seed: int, sigma: float, *, grain: int = 1, takes: np.ndarray | None = None
) -> np.ndarray:
    """`video` (T, S, S, 3) uint8 plus Gaussian noise of std `sigma` (0-255 scale), rounded and clipped to 0-255.
    Clipping trims large noise on the light background: at sigma 32 the measured std is about 29 and the mean
    falls by about 1.5 levels, at sigma 64 about 52 and 6-8. `grain`: one draw per grain x grain block (the last
    row and column of blocks cropped to the frame).

    The noise is drawn from the scene seed and a take: `takes` (T,) names the take of each frame (all 0 when
    None). Every video of scene `seed` with the same takes gets the same noise at each frame, so twins stay
    identical before t_div and a quadruplet's impossible pair still shows exactly its possible pair's images
    (`noise_takes` keeps both true with two takes). sigma=0 returns `video`."""
    _check_noise(sigma, grain)
    if sigma == 0.0:
        return video
    T, H, W, C = video.shape
    takes = np.zeros(T, dtype=int) if takes is None else np.asarray(takes)
    if takes.shape != (T,) or not np.issubdtype(takes.dtype, np.integer) or (takes < 0).any():
        raise ValueError(f"takes must be {T} non-negative integers, one per frame; got {takes.dtype} {takes.shape}")
    noise = np.empty(video.shape)
    for take in np.unique(takes):
        # Take 0 is the key of suites written before takes existed, so their videos stay byte for byte.
        rng = np.random.default_rng([seed, _NOISE_STREAM] + ([int(take)] if take else []))
        cells = rng.normal(0.0, sigma, (T, -(-H // grain), -(-W // grain), C))  # (T, H/g, W/g, 3) rounded up
        field = cells.repeat(grain, axis=1).repeat(grain, axis=2)[:, :H, :W]  # (T, H, W, 3)
        noise[takes == take] = field[takes == take]
    return np.clip(np.rint(video + noise), 0, 255).astype(np.uint8)


def noise_takes(frames: int, t_div: int, *, pair: int, impossible: bool, per_twin: bool) -> np.ndarray:
    """(frames,) noise take of each frame of a test video: all 0 unless `per_twin`.

    With `per_twin` each possible video has a take of its own (`pair`: 0 for a single pair or a quadruplet's A,
    1 for its B) and an impossible video switches at t_div to the other take: it shares its twin's noise up to
    t_div and then has its own. In a quadruplet A[:t] + B[t:] thus shows A's noise, then B's, and every frame
    of the impossible pair still equals one of the possible pair's (A and B show the same images between the
    splice frame and t_div)."""
    takes = np.full(frames, pair if per_twin else 0)
    if per_twin and impossible:
        takes[t_div:] = 1 - pair
    return takes


def noise_label(noise: float, grain: int = 1, per_twin: bool = False) -> str:
    """How a suite's camera noise reads in a summary line: "" when clean, else e.g. "camera noise 64 in 8x8-pixel
    blocks, each twin its own from the divergence"."""
    if not noise:
        return ""
    return (f"camera noise {noise:g}" + (f" in {grain}x{grain}-pixel blocks" if grain > 1 else "")
            + (", each twin its own from the divergence" if per_twin else ""))  # fmt: skip


# A suite's scene seeds: train takes even, test odd offsets from suite_seed * 2**24, so they never overlap.
_SEEDS_PER_SUITE = 1 << 24
_MAX_SKIPS = 200  # about 1 scene in 10 fails a property; 200 in a row means the settings are broken


def scene_seed(suite_seed: int, split: str, i: int) -> int:
    """Scene seed of the i-th train video, or of the i-th test candidate, of suite `suite_seed`. Candidates
    that cannot host a visible violation are skipped, so test pair k may use a later i."""
    if split not in ("train", "test"):
        raise ValueError(f"split={split!r}; choose 'train' or 'test'")
    return suite_seed * _SEEDS_PER_SUITE + 2 * i + (split == "test")


def _write_json(path: Path, payload: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(payload, indent=1) + "\n")
    os.replace(tmp, path)


def _write_entry(out: Path, name: str, video: np.ndarray, *, fps: int, **fields: object) -> dict:
    """Write one suite video and return its index entry (a training video unless `fields` say otherwise)."""
    write_video(out / name, video, fps=fps)
    entry = {"file": name, "split": None, "property": None, "scene": None, "pair": None, "kind": "possible",
             "seed": None, "t_div": None, "detail": None}  # fmt: skip
    unknown = set(fields) - set(entry)
    assert not unknown, unknown
    return entry | fields


def generate_suite(
    out_dir: str | Path,
    *,
    n_train: int = 400,
    n_scenes_per_property: int = 12,
    size: int = 64,
    frames: int = 32,
    seed: int = 0,
    fps: int = 10,
    noise: float = 0.0,
    noise_grain: int = 1,
    noise_per_twin: bool = False,
) -> dict:
    """Write an intuitive-physics suite and return its index (also saved as `index.json`).

    Layout, all lossless: `train/NNNNN.mp4`, possible videos only; per property, `n_scenes_per_property` test
    scenes, each a quadruplet of two matched pairs for `QUAD_PROPERTIES` (`test/<property>_<k>{a,b}_{possible,
    impossible}.mp4`) or one matched pair for the others (`test/<property>_<k>_{possible,impossible}.mp4`). Each
    index entry holds file (relative to out_dir), split, property, scene, pair, kind, seed (the scene seed),
    t_div (None for training videos) and detail. `noise` adds camera noise of that pixel std to every video
    (`add_noise`, with `noise_grain`); `noise_per_twin` gives each twin its own noise from t_div on
    (`noise_takes`). Same arguments give identical files.
    """
    _check_args(size, frames)
    _check_noise(noise, noise_grain)
    if noise == 0.0 and (noise_grain != 1 or noise_per_twin):
        raise ValueError("noise_grain and noise_per_twin shape the camera noise; pass noise > 0 too")
    if seed < 0 or n_train < 0 or n_scenes_per_property < 0:
        raise ValueError(f"seed={seed}, n_train={n_train}, n_scenes_per_property={n_scenes_per_property} must be >= 0")
    if n_train > _SEEDS_PER_SUITE // 2:
        raise ValueError(f"n_train={n_train} exceeds the {_SEEDS_PER_SUITE // 2} scene seeds a suite holds")
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"{out} exists and is not an empty folder; remove it or pass another --out")
    if out.resolve() == Path.cwd().resolve():
        # The finished suite is renamed into place, and the folder a shell stands in cannot be replaced.
        raise ValueError(f"{out} is the current folder; pass a folder to create, e.g. --out {Path(out_dir) / 'suite'}")
    # Written to a hidden sibling and renamed into place when complete: an interrupted run (Ctrl-C, a full disk)
    # leaves no partial suite behind that training would later read without a word.
    out.parent.mkdir(parents=True, exist_ok=True)
    resolved = out.resolve()  # a name even for "dir/.."
    tmp = resolved.with_name(f".{resolved.name}.partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        index = _write_suite(tmp, n_train=n_train, n_scenes_per_property=n_scenes_per_property, size=size,
                             frames=frames, seed=seed, fps=fps, noise=noise, grain=noise_grain,
                             per_twin=noise_per_twin)  # fmt: skip
        os.replace(tmp, out)  # onto an empty folder or a missing path
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return index


def _write_suite(out: Path, *, n_train: int, n_scenes_per_property: int, size: int, frames: int, seed: int,
                 fps: int, noise: float, grain: int, per_twin: bool) -> dict:  # fmt: skip
    videos: list[dict] = []
    for i in range(n_train):
        sid = scene_seed(seed, "train", i)
        video = add_noise(render_scene(sid, size=size, frames=frames)[0], sid, noise, grain=grain)
        videos.append(_write_entry(out, f"train/{i:05d}.mp4", video, fps=fps, split="train", seed=sid))
    j = 0  # one candidate counter for all properties, so every test scene is distinct
    for prop in PROPERTIES:
        make = make_quad if prop in QUAD_PROPERTIES else make_pair
        for k in range(n_scenes_per_property):
            for _ in range(_MAX_SKIPS):
                sid = scene_seed(seed, "test", j)
                j += 1
                try:
                    made = make(sid, prop, size=size, frames=frames)
                    break
                except ViolationUnavailable:
                    continue
            else:
                raise RuntimeError(
                    f"{_MAX_SKIPS} scenes in a row could not host a visible {prop} violation at size={size}, "
                    f"frames={frames}; use a larger size or more frames"
                )
            pairs = made.pairs() if isinstance(made, PhysicsQuad) else (made,)
            for q, (suffix, pair) in enumerate(zip("ab" if len(pairs) == 2 else [""], pairs, strict=True)):
                for kind, video in (("possible", pair.possible), ("impossible", pair.impossible)):
                    takes = noise_takes(frames, pair.t_div, pair=q, impossible=kind == "impossible", per_twin=per_twin)
                    name = f"test/{prop}_{k}{suffix}_{kind}.mp4"
                    video = add_noise(video, sid, noise, grain=grain, takes=takes)
                    videos.append(_write_entry(
                        out, name, video, fps=fps, split="test", seed=sid, property=prop, scene=f"{prop}_{k}",
                        pair=f"{prop}_{k}{suffix}", kind=kind, t_div=pair.t_div, detail=pair.detail,
                    ))  # fmt: skip
    index = {
        "source": "jepaworld.physics.generate_suite",
        "args": {
            "n_train": n_train,
            "n_scenes_per_property": n_scenes_per_property,
            "size": size,
            "frames": frames,
            "seed": seed,
            "fps": fps,
            "noise": noise,
            # Only when set, so that the index of a suite without them stays byte for byte as before they existed.
            **({"noise_grain": grain} if grain != 1 else {}),
            **({"noise_per_twin": True} if per_twin else {}),
        },
        "properties": list(PROPERTIES),
        "control_properties": list(CONTROL_PROPERTIES),
        "videos": videos,
    }
    _write_json(out / "index.json", index)
    return index
