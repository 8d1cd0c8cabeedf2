"""How often PushT's exploration policies and goal samplers move the block (the figures quoted in the PushT section
of BENCHMARKS.md, the `wm-pusht` preset and the README).

For each exploration policy (`random` held actions, the `scripted` pusher): the share of steps in which the block
moves, over episodes seeded as `collect` seeds them. For each goal sampler (`goal_policy` scripted or random): the
share of goals, seeded as `plan eval` seeds them, whose block lies more than 5 px from the episode's start.

    python benchmarks/pusht_data.py --episodes 40 --goals 20
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform

import numpy as np

from jepaworld.data.episodes import _episode_seeds, random_policy
from jepaworld.envs import make_env


def block_motion_share(policy: str, episodes: int, steps: int) -> float:
    """Share of steps whose block pose (x, y, angle) changes by more than 0.5 (px or rad)."""
    env = make_env("pusht")
    moved = 0
    try:
        for episode in range(episodes):
            env_seed, rng = _episode_seeds(0, episode)
            obs = env.reset(seed=env_seed)
            act = env.scripted_policy(rng) if policy == "scripted" else None
            planned = None if act else random_policy(rng, steps, env.action_dim)
            for t in range(steps):
                before = obs["state"][2:5].copy()
                obs, _ = env.step(act(obs) if act else planned[t])
                moved += int(np.abs(obs["state"][2:5] - before).max() > 0.5)
    finally:
        env.close()
    return moved / (episodes * steps)


def goals_with_block_moved(goal_policy: str, goals: int, seed: int = 1000) -> int:
    env = make_env("pusht", goal_policy=goal_policy)
    count = 0
    try:
        for i in range(goals):
            start = env.reset(seed=seed + i)["state"]
            _, goal = env.sample_goal(np.random.default_rng(seed + i))
            count += int(np.linalg.norm(goal[2:4] - start[2:4]) > 5.0)
    finally:
        env.close()
    return count


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--episodes", type=int, default=40)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--goals", type=int, default=20)
    args = p.parse_args()
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    print(f"{dt.date.today()}, {platform.machine()}; {args.episodes} episodes x {args.steps} steps (collect's seeds "
          f"from 0); goals seeded 1000..{1000 + args.goals - 1}")  # fmt: skip
    print("| policy | steps that move the block |\n|---|---|")
    for policy in ("random", "scripted"):
        print(f"| {policy} | {block_motion_share(policy, args.episodes, args.steps):.0%} |")
    print("\n| goal sampler | goals whose block moved > 5 px |\n|---|---|")
    for goal_policy in ("random", "scripted"):
        print(f"| {goal_policy} | {goals_with_block_moved(goal_policy, args.goals)} / {args.goals} |")


if __name__ == "__main__":
    main()
