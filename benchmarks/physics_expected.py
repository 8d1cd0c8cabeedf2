"""Surprise against the error a model expects: does it remove the content bias of pairwise accuracy?

    python benchmarks/physics_expected.py RUN [RUN ...] --suite data/physics-val

Within a pair the twin that shows more after the splice scores higher (BENCHMARKS.md, "Quadruplets: content
decides a single pair"): a moving body costs prediction error whether or not it obeys physics, so a body that
vanishes lowers the impossible twin's surprise. Here each checkpoint gets a small head that reads the predictor's
last hidden state at a hidden token (which depends on the context alone, never on the frames it predicts) and
says how large the error there should be: the scale b of a Laplace distribution of the token's error, fitted
by its negative log-likelihood e / b + log b on the checkpoint's own errors over the training clips. The model
and its errors stay as they are. A token's surprise is then e / b, its error in units of the expected one: a
moving body the model cannot place exactly is expected to cost more, and a body that vanishes or appears where
the context said otherwise is not. `--nll` also scores e / b + log b, the token's surprisal.

Prints `jepaworld physics eval`'s tables for each checkpoint (a V-JEPA or VideoMAE run folder), its normalised
score, and the first checkpoint's architecture at random init (so list the V-JEPA first), with a head of its own.
`--threads` sets the threads of the head fits; scoring runs on one thread, as `physics eval` does. Choose on a
suite other than the one reported (`jepaworld physics generate --out data/physics-val --n-train 0 --seed 2`).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from torch import nn

from jepaworld.data import build_dataset
from jepaworld.physics_eval import evaluate, format_table, format_variants, to_json
from jepaworld.surprise import JEPAScorer, Scorer, context_slots, cpu_threads, load_scorer, random_scorer


def _predictor(scorer: Scorer) -> nn.Module:
    return scorer.method.predictor if isinstance(scorer, JEPAScorer) else scorer.method.decoder


def errors_and_hidden(scorer: Scorer, clips: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """clips (B, 3, T, S, S), k context slots -> token errors (B, t - k, hw) and the predictor's normed last
    hidden state at each hidden token (B, t - k, hw, d)."""
    got: list[torch.Tensor] = []
    hook = _predictor(scorer).norm.register_forward_hook(lambda mod, inp, out: got.append(out))
    try:
        err = scorer.token_errors(clips.to(scorer.device), k)  # (B, t - k, hw)
    finally:
        hook.remove()
    B, tk, hw = err.shape
    return err, got[0][:, -tk * hw :].reshape(B, tk, hw, -1)  # the queries of the hidden tokens come last


class ScaleHead(nn.Module):
    """Hidden state (..., d) -> log of the expected error (...)."""

    def __init__(self, *, dim: int, hidden: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, 1))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(h).squeeze(-1)


def fit_head(scorer: Scorer, *, k: int, steps: int, seed: int, batch: int = 64) -> tuple[ScaleHead, dict]:
    """Fit a ScaleHead to the scorer's token errors on its own training clips. A random 10% of the clips is held
    out to check that the head beats the best constant scale; clips of one video overlap, so it is a check, not
    a test on unseen videos."""
    ds = build_dataset(scorer.cfg.data, "train")
    errs, hids = [], []
    for i in range(0, len(ds), batch):
        e, h = errors_and_hidden(scorer, ds.load(torch.arange(i, min(i + batch, len(ds))))["x"], k)
        errs.append(e.float().clone().flatten(1))
        hids.append(h.float().clone().flatten(1, 2))
    err, hid = torch.cat(errs), torch.cat(hids)  # (N, K), (N, K, d): K hidden tokens per clip
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(err), generator=g)
    n_val = len(err) // 10
    val, tr = perm[:n_val], perm[n_val:]
    e_tr, h_tr = err[tr].flatten(), hid[tr].flatten(0, 1)  # (M,), (M, d)
    torch.manual_seed(seed)
    head = ScaleHead(dim=hid.shape[-1])
    with torch.no_grad():  # start from a constant scale: the mean error, the best constant b
        head.net[-1].weight.zero_()
        head.net[-1].bias.fill_(float(e_tr.mean().log()))
    opt = torch.optim.AdamW(head.parameters(), lr=1e-3, weight_decay=1e-4)

    def nll(log_b: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        return (e / log_b.exp() + log_b).mean()

    for _ in range(steps):
        ix = torch.randint(len(e_tr), (4096,), generator=g)
        loss = nll(head(h_tr[ix]), e_tr[ix])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    with torch.no_grad():
        e_val, h_val = err[val].flatten(), hid[val].flatten(0, 1)
        const = e_tr.mean().log().expand_as(e_val)
        report = {"clips": len(err), "held_out_nll": float(nll(head(h_val), e_val)),
                  "held_out_nll_constant": float(nll(const, e_val))}  # fmt: skip
    return head.eval(), report


class ExpectedScorer(Scorer):
    """A scorer whose token error is divided by the error its head expects there (`nll`: plus log b)."""

    def __init__(self, base: Scorer, head: ScaleHead, *, nll: bool = False) -> None:
        what = "e / b + log b" if nll else "e / b"
        super().__init__(base.method, base.cfg, base.spec, name=f"{base.name}, {what}", device=base.device)
        self.base, self.head, self.nll = base, head.to(base.device), nll

    @torch.inference_mode()
    def token_errors(self, clips: torch.Tensor, k: int) -> torch.Tensor:
        err, hid = errors_and_hidden(self.base, clips, k)
        log_b = self.head(hid.float())  # (B, t - k, hw)
        return err / log_b.exp() + (log_b if self.nll else 0.0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", help="V-JEPA or VideoMAE run folders (or .pt checkpoints)")
    p.add_argument("--suite", default="data/physics-val", help="test suite (`jepaworld physics generate`)")
    p.add_argument("--steps", type=int, default=2000, help="head training steps (4096 tokens each)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--stride", type=int, default=2)
    p.add_argument("--top", type=float, default=1.0)
    p.add_argument("--nll", action="store_true", help="also score e / b + log b")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", default="", help="write the results here")
    args = p.parse_args()
    scorers: dict[str, Scorer] = {}
    fits: dict[str, dict] = {}
    with cpu_threads(args.threads):
        bases = {r: load_scorer(r, device="cpu") for r in args.runs}
        first = next(iter(bases.values()))
        bases["random init"] = random_scorer(first, seed=0)
        for name, base in bases.items():
            t0 = time.perf_counter()
            head, fits[name] = fit_head(base, k=context_slots(base, None), steps=args.steps, seed=args.seed)
            fits[name]["seconds"] = round(time.perf_counter() - t0)
            print(f"{name}: head fitted {fits[name]}", flush=True)
            scorers[name] = base
            scorers[f"{name}, e / b"] = ExpectedScorer(base, head)
            if args.nll:
                scorers[f"{name}, e / b + log b"] = ExpectedScorer(base, head, nll=True)
    results = evaluate(scorers, args.suite, stride=args.stride, top=args.top, progress=True)
    print(format_table(results) + "\n\n" + format_variants(results))
    if args.json:
        out = {"args": vars(args), "fits": fits, "results": to_json(results)}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
