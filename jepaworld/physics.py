"""Intuitive physics: a tiny 2-D simulator, a numpy renderer, and a suite of possible/impossible video pairs.

Sources: the violation-of-expectation protocol of IntPhys (Riochet et al. 2018, "IntPhys: A Framework and
Benchmark for Visual Intuitive Physics Reasoning") as used by Garrido et al. 2025, "Intuitive physics
understanding emerges from self-supervised pretraining on natural videos" (arXiv:2502.11831). There, a V-JEPA
model's prediction error ("surprise") is compared within matched pairs: the impossible video should surprise
more than its possible twin.

World: the unit square with y growing downwards (as in images), side walls `WALL` thick, a floor whose top is
at `FLOOR`, gravity, bouncy collisions with floor and walls, an optional static screen (occluder) standing on
the floor, and 1-3 circles or squares. Objects do not collide with each other: they sit at different depths
and are drawn in a fixed order, the screen in front of all. Time runs over one unit per video whatever the
frame count, so a seed shows the same events at any `size` and (up to the integration step) any `frames`.

A scene is drawn from `np.random.default_rng(seed)`, so a seed gives the same video bit for bit. An impossible
twin replays the same scene and applies one event (a vanishing, a teleport...) at an onset frame; its
parameters come from a second generator seeded by (seed, property), so the scene itself never changes. `t_div`
is measured on the pixels, not assumed: the first frame where the twins differ (for an object vanishing behind
the screen, the frame where it should have come back out).
"""

from __future__ import annotations

import colorsys
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from jepaworld.data.video import write_video

PROPERTIES: tuple[str, ...] = ("permanence", "continuity", "shape", "color", "gravity", "solidity")
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
    return Scene(
        seed=seed,
        pos=np.stack([x, y], axis=1),
        vel=_random_velocity(rng, k),
        radius=radius,
        square=square,
        hsv=_random_hsv(rng, k),
        occluder=occluder,
    )


@dataclass
class _Bodies:
    """Mutable state of K bodies; violations flip the switches gscale, solid and alive, or edit the rest."""

    pos: np.ndarray  # (K, 2)
    vel: np.ndarray  # (K, 2)
    radius: np.ndarray  # (K,)
    square: np.ndarray  # (K,) bool
    hsv: np.ndarray  # (K, 3)
    gscale: np.ndarray  # (K,) gravity multiplier: 1 normal, 0 floats, -1 falls upwards
    solid: np.ndarray  # (K,) bool, collides with floor and walls
    alive: np.ndarray  # (K,) bool, drawn and simulated

    @classmethod
    def from_scene(cls, scene: Scene) -> _Bodies:
        k = len(scene.radius)
        return cls(
            pos=scene.pos.copy(),
            vel=scene.vel.copy(),
            radius=scene.radius.copy(),
            square=scene.square.copy(),
            hsv=scene.hsv.copy(),
            gscale=np.ones(k),
            solid=np.ones(k, dtype=bool),
            alive=np.ones(k, dtype=bool),
        )


@dataclass(frozen=True)
class _Event:
    """One violation, applied to the state just before the simulation steps into frame `onset`."""

    onset: int
    kind: str  # vanish | appear | teleport | reshape | recolor | float | fall_upward | intangible
    body: int
    detail: str
    pos: tuple[float, float] | None = None
    vel: tuple[float, float] | None = None
    radius: float | None = None
    square: bool | None = None
    hsv: tuple[float, float, float] | None = None


@dataclass(frozen=True)
class _Trace:
    """Per-frame record of the original K bodies, read when planning where a violation will show."""

    pos: np.ndarray  # (T, K, 2)
    vel: np.ndarray  # (T, K, 2)
    floor_hit: np.ndarray  # (T, K) impact speed on the floor while stepping into frame t, 0 if none
    wall_hit: np.ndarray  # (T, K) same for the side walls


def _apply_event(b: _Bodies, ev: _Event) -> _Bodies:
    k = ev.body
    if ev.kind == "vanish":
        b.alive[k] = False
    elif ev.kind == "appear":
        assert ev.pos is not None and ev.vel is not None and ev.radius is not None and ev.hsv is not None
        b = _Bodies(
            pos=np.concatenate([b.pos, [ev.pos]]),
            vel=np.concatenate([b.vel, [ev.vel]]),
            radius=np.append(b.radius, ev.radius),
            square=np.append(b.square, bool(ev.square)),
            hsv=np.concatenate([b.hsv, [ev.hsv]]),
            gscale=np.append(b.gscale, 1.0),
            solid=np.append(b.solid, True),
            alive=np.append(b.alive, True),
        )
    elif ev.kind == "teleport":
        assert ev.pos is not None
        b.pos[k] = ev.pos
    elif ev.kind == "reshape":
        assert ev.pos is not None and ev.radius is not None
        b.pos[k], b.radius[k], b.square[k] = ev.pos, ev.radius, bool(ev.square)
    elif ev.kind == "recolor":
        assert ev.hsv is not None
        b.hsv[k] = ev.hsv
    elif ev.kind == "float":
        b.gscale[k], b.vel[k, 1] = 0.0, 0.0
    elif ev.kind == "fall_upward":
        b.gscale[k] = -1.0
    elif ev.kind == "intangible":
        b.solid[k] = False
    else:
        raise ValueError(f"unknown event kind {ev.kind!r}")
    return b


def _advance(b: _Bodies, *, substeps: int, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """Semi-implicit Euler over `substeps` steps, in place; returns peak floor and wall impact speeds (K,)."""
    floor_hit = np.zeros(len(b.radius))
    wall_hit = np.zeros(len(b.radius))
    r = b.radius
    for _ in range(substeps):
        b.vel[:, 1] += GRAVITY * b.gscale * dt
        b.pos += b.vel * dt
        solid = b.solid & b.alive
        # Floor: clamp, reflect the downward speed, and let slow bounces come to rest.
        on_floor = solid & (b.pos[:, 1] + r > FLOOR)
        falling = on_floor & (b.vel[:, 1] > 0)
        floor_hit = np.maximum(floor_hit, np.where(falling, b.vel[:, 1], 0.0))
        b.pos[on_floor, 1] = FLOOR - r[on_floor]
        b.vel[falling, 1] *= -RESTITUTION_FLOOR
        b.vel[on_floor & (np.abs(b.vel[:, 1]) < REST_SPEED), 1] = 0.0
        b.vel[on_floor, 0] *= 1.0 - FRICTION * dt
        # Side walls: clamp inside, reflect the speed heading into the wall.
        left = solid & (b.pos[:, 0] - r < WALL)
        right = solid & (b.pos[:, 0] + r > 1.0 - WALL)
        into = (left & (b.vel[:, 0] < 0)) | (right & (b.vel[:, 0] > 0))
        wall_hit = np.maximum(wall_hit, np.where(into, np.abs(b.vel[:, 0]), 0.0))
        b.pos[left, 0] = WALL + r[left]
        b.pos[right, 0] = 1.0 - WALL - r[right]
        b.vel[into, 0] *= -RESTITUTION_WALL
    return floor_hit, wall_hit


def _backdrop(scene: Scene, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Static layers: backdrop (S, S, 3) uint8, screen mask (S, S) bool, pixel centres (S,) twice."""
    centres = (np.arange(size) + 0.5) / size  # (S,)
    xs, ys = centres[None, :], centres[:, None]  # broadcast to (S, S): columns are x, rows are y
    image = np.empty((size, size, 3), dtype=np.uint8)
    image[:] = BACKGROUND
    image[((xs < WALL) | (xs > 1.0 - WALL)) & (ys < FLOOR)] = WALL_COLOR
    image[np.broadcast_to(ys >= FLOOR, (size, size))] = FLOOR_COLOR
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
    for k in np.flatnonzero(b.alive):
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
    floor_hit, wall_hit = np.zeros((frames, k)), np.zeros((frames, k))
    for t in range(frames):
        if event is not None and t == event.onset:
            b = _apply_event(b, event)
        if t > 0:
            fh, wh = _advance(b, substeps=substeps, dt=dt)
            floor_hit[t], wall_hit[t] = fh[:k], wh[:k]
        pos[t], vel[t] = b.pos[:k], b.vel[:k]
        video[t] = _render(b, backdrop, screen, xs, ys)
    return video, _Trace(pos=pos, vel=vel, floor_hit=floor_hit, wall_hit=wall_hit)


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


def _new_body(rng: np.random.Generator, scene: Scene, onset: int) -> _Event:
    """An extra body popping into view, away from the screen so that it is seen to appear."""
    radius = float(rng.uniform(0.06, 0.1))
    lo, hi = WALL + radius, 1.0 - WALL - radius
    x = float(rng.uniform(lo, hi))
    if scene.occluder is not None:
        x0, x1, _ = scene.occluder
        # Put it on the wider free side of the screen.
        x = float(rng.uniform(lo, max(lo, x0 - radius))) if x0 - lo > hi - x1 else float(rng.uniform(x1 + radius, hi))
    y = float(rng.uniform(0.15 + radius, 0.5))
    vx, vy = _random_velocity(rng, 1)[0]
    hsv = _random_hsv(rng, 1)[0]
    return _Event(
        onset=onset,
        kind="appear",
        body=len(scene.radius),
        detail="appear",
        pos=(x, y),
        vel=(float(vx), float(vy)),
        radius=radius,
        square=bool(rng.random() < 0.5),
        hsv=(float(hsv[0]), float(hsv[1]), float(hsv[2])),
    )


# Each planner maps (scene, trace of the possible video, rng, candidate (onset, body) pairs) to candidate
# events, preferred variants first and each variant in random order.
_Candidates = list[tuple[int, int]]


def _plan_permanence(scene: Scene, trace: _Trace, rng: np.random.Generator, every: _Candidates) -> list[_Event]:
    # Preferred, as in IntPhys: vanish while fully behind the screen, so the surprise is not coming back out.
    # The body must have been seen first (2+ frames), or never reappearing would be the plausible outcome.
    hidden = _hidden(scene, trace)
    seen = np.cumsum(~hidden, axis=0)  # (T, K) frames so far with the body at least partly in view
    behind = _shuffled(rng, [(t, i) for t, i in every if hidden[t - 1, i] and seen[t - 1, i] >= 2])
    events = [_Event(onset=t, kind="vanish", body=i, detail="vanish_behind_occluder") for t, i in behind]
    for t, i in _shuffled(rng, [(t, i) for t, i in every if not hidden[t - 1, i]]):
        # In plain view: vanish or pop into existence, half and half.
        if rng.random() < 0.5:
            events.append(_Event(onset=t, kind="vanish", body=i, detail="vanish"))
        else:
            events.append(_new_body(rng, scene, t))
    return events


def _plan_continuity(scene: Scene, trace: _Trace, rng: np.random.Generator, every: _Candidates) -> list[_Event]:
    events = []
    for t, i in _shuffled(rng, every):
        r, old = scene.radius[i], trace.pos[t - 1, i]
        for _ in range(20):
            new = np.array([rng.uniform(WALL + r, 1.0 - WALL - r), rng.uniform(0.15 + r, FLOOR - r)])
            if np.linalg.norm(new - old) >= 0.3:  # a jump of about a third of the scene, not a jitter
                pos = (float(new[0]), float(new[1]))
                events.append(_Event(onset=t, kind="teleport", body=i, detail="teleport", pos=pos))
                break
    return events


def _plan_shape(scene: Scene, trace: _Trace, rng: np.random.Generator, every: _Candidates) -> list[_Event]:
    events = []
    for t, i in _shuffled(rng, every):
        r, square = float(scene.radius[i]), bool(scene.square[i])
        if rng.random() < 0.5:
            new_r, new_square = r, not square
            detail = "circle_to_square" if new_square else "square_to_circle"
        else:
            grow = bool(rng.random() < 0.5)
            new_r, new_square = r * (1.5 if grow else 0.6), square
            detail = "grow" if grow else "shrink"
        x, y = trace.pos[t - 1, i]
        x = float(np.clip(x, WALL + new_r, 1.0 - WALL - new_r))
        # A body on the floor keeps its bottom on the floor; one in the air keeps its centre.
        y = FLOOR - new_r if y + r >= FLOOR - 1e-9 else float(min(y, FLOOR - new_r))
        events.append(
            _Event(onset=t, kind="reshape", body=i, detail=detail, pos=(x, y), radius=new_r, square=new_square)
        )
    return events


def _plan_color(scene: Scene, trace: _Trace, rng: np.random.Generator, every: _Candidates) -> list[_Event]:
    events = []
    for t, i in _shuffled(rng, every):
        h, s, v = (float(c) for c in scene.hsv[i])
        hue = (h + rng.uniform(1 / 3, 2 / 3)) % 1.0  # at least a third of the colour wheel away
        events.append(_Event(onset=t, kind="recolor", body=i, detail="recolor", hsv=(float(hue), s, v)))
    return events


def _plan_gravity(scene: Scene, trace: _Trace, rng: np.random.Generator, every: _Candidates) -> list[_Event]:
    falling, resting = _falling(scene, trace), _resting(scene, trace)
    floating = _shuffled(rng, [(t, i) for t, i in every if falling[t - 1, i]])
    grounded = _shuffled(rng, [(t, i) for t, i in every if resting[t - 1, i]])
    return [_Event(onset=t, kind="float", body=i, detail="float") for t, i in floating] + [
        _Event(onset=t, kind="fall_upward", body=i, detail="fall_upward") for t, i in grounded
    ]


def _plan_solidity(scene: Scene, trace: _Trace, rng: np.random.Generator, every: _Candidates) -> list[_Event]:
    # Preferred: switch collisions off on the frame of a real bounce, so the body goes through instead.
    bounces = [(t, i) for t, i in every if trace.floor_hit[t, i] > 0.5 or trace.wall_hit[t, i] > 0.2]
    events = []
    for t, i in _shuffled(rng, bounces):
        detail = "through_floor" if trace.floor_hit[t, i] >= trace.wall_hit[t, i] else "through_wall"
        events.append(_Event(onset=t, kind="intangible", body=i, detail=detail))
    resting = _resting(scene, trace)
    grounded = _shuffled(rng, [(t, i) for t, i in every if resting[t - 1, i]])
    return events + [_Event(onset=t, kind="intangible", body=i, detail="sink_into_floor") for t, i in grounded]


_PLANNERS = {
    "permanence": _plan_permanence,
    "continuity": _plan_continuity,
    "shape": _plan_shape,
    "color": _plan_color,
    "gravity": _plan_gravity,
    "solidity": _plan_solidity,
}
assert tuple(_PLANNERS) == PROPERTIES


def _check_args(size: int, frames: int) -> None:
    if size < 16:
        raise ValueError(f"size={size} is too small to show the objects; use size >= 16")
    if frames < 8:
        raise ValueError(f"frames={frames} leaves no room before and after a violation; use frames >= 8")


def make_pair(seed: int, prop: str, *, size: int = 64, frames: int = 32, max_tries: int = 12) -> PhysicsPair:
    """The possible video of scene `seed` and its twin violating `prop`.

    Tries up to `max_tries` candidate events and keeps the first whose violation is visible: the twins first
    differ at a frame t_div with context before it, and from t_div on at least 3 frames have at least
    `max(4, S*S/200)` changed pixels. Raises ViolationUnavailable when no candidate qualifies.
    """
    _check_args(size, frames)
    if prop not in PROPERTIES:
        raise ValueError(f"unknown property {prop!r}; choose one of {', '.join(PROPERTIES)}")
    scene = make_scene(seed)
    possible, trace = _simulate(scene, frames=frames, size=size)
    rng = np.random.default_rng([seed, PROPERTIES.index(prop) + 1])  # separate stream: the scene stays unchanged
    every = [(t, i) for t in _onset_window(frames) for i in range(len(scene.radius))]  # (onset, body) pairs
    min_pixels = max(4, size * size // 200)  # about half the area of the smallest object
    last = frames - _tail(frames)  # t_div must come before this
    for event in _PLANNERS[prop](scene, trace, rng, every)[:max_tries]:
        impossible, _ = _simulate(scene, frames=frames, size=size, event=event)
        changed = (possible != impossible).any(axis=-1).sum(axis=(1, 2))  # (T,) pixels that differ
        differ = np.flatnonzero(changed)
        if len(differ) == 0 or differ[0] >= last or (changed >= min_pixels).sum() < 3:
            continue
        return PhysicsPair(
            seed=seed,
            prop=prop,
            possible=possible,
            impossible=impossible,
            t_div=int(differ[0]),
            detail=event.detail,
        )
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


def generate_suite(
    out_dir: str | Path,
    *,
    n_train: int = 400,
    n_pairs_per_property: int = 20,
    size: int = 64,
    frames: int = 32,
    seed: int = 0,
    fps: int = 10,
) -> dict:
    """Write an intuitive-physics suite and return its index (also saved as `index.json`).

    Layout: `train/NNNNN.mp4` (possible videos only) and `test/<property>_<k>_{possible,impossible}.mp4`, all
    lossless. Each index entry holds file (relative to out_dir), split, property, pair, kind, seed (the scene
    seed), t_div (None for training videos) and detail. Same arguments give identical files.
    """
    _check_args(size, frames)
    if seed < 0 or n_train < 0 or n_pairs_per_property < 0:
        raise ValueError(f"seed={seed}, n_train={n_train}, n_pairs_per_property={n_pairs_per_property} must be >= 0")
    if n_train > _SEEDS_PER_SUITE // 2:
        raise ValueError(f"n_train={n_train} exceeds the {_SEEDS_PER_SUITE // 2} scene seeds a suite holds")
    out = Path(out_dir)
    videos: list[dict] = []
    for i in range(n_train):
        sid = scene_seed(seed, "train", i)
        video, _ = render_scene(sid, size=size, frames=frames)
        name = f"train/{i:05d}.mp4"
        write_video(out / name, video, fps=fps)
        videos.append(
            {
                "file": name,
                "split": "train",
                "property": None,
                "pair": None,
                "kind": "possible",
                "seed": sid,
                "t_div": None,
                "detail": None,
            }
        )
    j = 0  # one candidate counter for all properties, so every test scene is distinct
    for prop in PROPERTIES:
        for k in range(n_pairs_per_property):
            for _ in range(_MAX_SKIPS):
                sid = scene_seed(seed, "test", j)
                j += 1
                try:
                    pair = make_pair(sid, prop, size=size, frames=frames)
                    break
                except ViolationUnavailable:
                    continue
            else:
                raise RuntimeError(
                    f"{_MAX_SKIPS} scenes in a row could not host a visible {prop} violation at size={size}, "
                    f"frames={frames}; use a larger size or more frames"
                )
            for kind, video in (("possible", pair.possible), ("impossible", pair.impossible)):
                name = f"test/{prop}_{k}_{kind}.mp4"
                write_video(out / name, video, fps=fps)
                videos.append(
                    {
                        "file": name,
                        "split": "test",
                        "property": prop,
                        "pair": f"{prop}_{k}",
                        "kind": kind,
                        "seed": sid,
                        "t_div": pair.t_div,
                        "detail": pair.detail,
                    }
                )
    index = {
        "source": "jepaworld.physics.generate_suite",
        "args": {
            "n_train": n_train,
            "n_pairs_per_property": n_pairs_per_property,
            "size": size,
            "frames": frames,
            "seed": seed,
            "fps": fps,
        },
        "properties": list(PROPERTIES),
        "control_properties": list(CONTROL_PROPERTIES),
        "videos": videos,
    }
    _write_json(out / "index.json", index)
    return index
