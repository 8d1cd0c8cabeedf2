"""Action-conditioned JEPA world model: encode frames, predict the next frame's embedding from actions, plan there.

The recipe of DINO-WM (Zhou et al. 2024), PLDM (Sobal et al. 2025), V-JEPA 2-AC (Assran et al. 2025) and LeWM
(LeJEPA world model): an encoder maps each frame to an embedding, and a predictor maps (past embeddings, action) to
the next embedding. Nothing is ever decoded back to pixels; planning compares predicted embeddings with the
embedding of a goal frame (`jepaworld.planning`).

Design, chosen for training and planning on 2 CPU cores:

- Encoder: a small ViT (`jepaworld.vit`, e.g. micro with 16-pixel patches: 16 tokens for a 64×64 frame), trained
  jointly or initialised (and optionally frozen) from another checkpoint's encoder. Its tokens are pooled into
  **one latent vector per frame** (`frame_dim`, e.g. 32) by `KeypointHead` (spatial soft-argmax keypoints plus
  mean-pooled features, ``frame_pool="keypoints"``) or `FrameHead` (flatten + linear, ``"flat"``). Keypoints move
  continuously with the objects they track, so nearby states get nearby embeddings from the start of training,
  which matters with a few CPU minutes of training. A single vector per frame makes a predictor step 16-64×
  cheaper than a token-level predictor over every patch: what makes < 1 s planning per action possible with
  batched rollouts of 300 candidates × 5 steps × 10 iterations on one CPU core.
- Predictor (`FramePredictor`): a frame-causal transformer over the per-frame vectors, one token per frame.
  Actions enter through AdaLN (Peebles & Xie 2023, DiT): each block's layer norms are scaled and shifted by an
  embedding of the action taken at that frame (and of the latent variable z). Attention is causal and limited to
  the last `history` frames, with a learned bias per head and per lag instead of absolute positions, so that
  teacher forcing over a long window and a rollout from a short context compute the same function. ``history=1``
  makes it Markov (enough when one frame shows the whole state); more frames let it infer velocities. The output
  is a residual update of the current embedding.
- Losses: teacher forcing (predict every next embedding from the true past) plus a multi-step rollout loss
  (`rollout_steps` steps fed back on the model's own predictions, which is what planning does).
- Collapse prevention (selectable): an EMA target encoder behind a stop-gradient, or the online encoder behind a
  stop-gradient with VICReg (Bardes et al. 2022; here on the embeddings themselves, `EmbeddingVICReg`) or SIGReg
  (Balestriero & LeCun 2025, `losses.Regularizer`), plus an optional inverse-dynamics term (predict the mean
  action between consecutive embeddings, as PLDM).
- Proprioception (``proprio_dim > 0``, DINO-WM's recipe): the env's own low-dimensional readings (a ball's position
  and velocity, joint angles), standardised with the training set's statistics and mapped by a linear layer
  (`ProprioEncoder`) to `proprio_dim` features appended to the pixel embedding. The predictor rolls out, and the
  goal cost compares, the whole vector. Velocities, which no single frame shows, then enter exactly.
- Latent variable z (``latent_dim > 0``) for outcomes the action does not determine. During training it is
  inferred from the true next embedding through a power-limited Gaussian channel (`LatentBottleneck`):
  ``z = mu + eps`` with ``||mu||² <= P`` and ``eps ~ N(0, I)``, so z carries at most ``(L/2) log(1 + P/L)`` nats per
  step (Shannon's capacity of that channel), whatever the networks learn: it cannot smuggle the future in. A
  planner samples z from the prior, or takes the worst case over several samples.

Shapes: frames (B, T, C, H, W) in [0, 1]; proprio (B, T, P); actions (B, T - 1, A); embeddings (B, T, D), of which
the last `proprio_dim` features come from the proprioception.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from jepaworld.losses import Regularizer, covariance_loss, gather_batch, variance_loss
from jepaworld.methods.base import Method
from jepaworld.vit import MLP, VisionTransformer, _init_weights

# --------------------------------------------------------------------------------------------------------------------
# Predictor blocks
# --------------------------------------------------------------------------------------------------------------------


def _init(m: nn.Module) -> None:
    # The ViT's initialisation, minus the affine-free layer norms of the AdaLN blocks (they have no weights).
    if not (isinstance(m, nn.LayerNorm) and m.weight is None):
        _init_weights(m)


class LagAttention(nn.Module):
    """Causal self-attention over frames with a learned bias per head and lag (0 .. history - 1), no positions."""

    def __init__(self, *, dim: int, num_heads: int, history: int) -> None:
        super().__init__()
        assert dim % num_heads == 0, f"width {dim} is not divisible by {num_heads} heads"
        self.num_heads, self.history = num_heads, history
        # With one frame of history each frame attends only to itself: attention returns the frame's own value,
        # so only the value projection exists and there is no lag to bias nor softmax to compute.
        self.qkv = nn.Linear(dim, 3 * dim if history > 1 else dim)
        self.proj = nn.Linear(dim, dim)
        self.lag_bias = nn.Parameter(torch.zeros(num_heads, history)) if history > 1 else None

    def bias(self, T: int, device: torch.device) -> torch.Tensor:
        """(nh, T, T) additive attention bias: lag_bias[h, t - s] for 0 <= t - s < history, -inf elsewhere."""
        t = torch.arange(T, device=device)
        lag = t[:, None] - t[None, :]  # (T, T)
        allowed = (lag >= 0) & (lag < self.history)
        assert self.lag_bias is not None
        bias = self.lag_bias[:, lag.clamp(0, self.history - 1)]  # (nh, T, T)
        return bias.masked_fill(~allowed, float("-inf"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, D = x.shape
        if self.lag_bias is None:
            return self.proj(self.qkv(x))  # (B, T, D): the value of each frame
        qkv = self.qkv(x).view(B, T, 3, self.num_heads, D // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # 3 x (B, nh, T, hd)
        x = F.scaled_dot_product_attention(q, k, v, attn_mask=self.bias(T, x.device).to(q.dtype))  # (B, nh, T, hd)
        return self.proj(x.transpose(1, 2).reshape(B, T, D))


class AdaLNBlock(nn.Module):
    """Pre-norm transformer block whose norms are modulated by a per-token condition (DiT's AdaLN)."""

    def __init__(self, *, dim: int, num_heads: int, history: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6, elementwise_affine=False)
        self.attn = LagAttention(dim=dim, num_heads=num_heads, history=history)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6, elementwise_affine=False)
        self.mlp = MLP(dim=dim, hidden=int(dim * mlp_ratio))
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """x (B, T, d), cond (B, T, d) -> (B, T, d)."""
        shift1, scale1, gate1, shift2, scale2, gate2 = self.ada(cond).chunk(6, dim=-1)  # 6 x (B, T, d)
        x = x + gate1 * self.attn(self.norm1(x) * (1 + scale1) + shift1)
        return x + gate2 * self.mlp(self.norm2(x) * (1 + scale2) + shift2)


class FramePredictor(nn.Module):
    """Frame-causal AdaLN transformer: (embeddings z_0..z_{T-1}, actions a_0..a_{T-1}) -> predictions of z_1..z_T.

    Token t is frame t's embedding; its condition is the action taken at frame t (and the latent variable z_t).
    Output t = z_t + head(token t), the prediction of z_{t+1}.
    """

    def __init__(
        self,
        *,
        frame_dim: int,
        action_dim: int,
        latent_dim: int = 0,
        dim: int = 64,
        depth: int = 2,
        num_heads: int = 4,
        history: int = 1,
    ) -> None:
        super().__init__()
        if history < 1:
            raise ValueError(f"history must be >= 1, got {history}")
        self.frame_dim, self.action_dim, self.latent_dim, self.history = frame_dim, action_dim, latent_dim, history
        self.embed = nn.Linear(frame_dim, dim)
        self.cond = nn.Sequential(nn.Linear(action_dim + latent_dim, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.blocks = nn.ModuleList(
            AdaLNBlock(dim=dim, num_heads=num_heads, history=history) for _ in range(depth)
        )  # fmt: skip
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, frame_dim)
        self.apply(_init)

    def forward(self, z: torch.Tensor, actions: torch.Tensor, latent: torch.Tensor | None = None) -> torch.Tensor:
        """z (B, T, D), actions (B, T, A), latent (B, T, L) or None -> next embeddings (B, T, D)."""
        B, T, _ = z.shape
        if actions.shape != (B, T, self.action_dim):
            raise ValueError(f"actions of shape {tuple(actions.shape)} do not fit ({B}, {T}, {self.action_dim})")
        if self.latent_dim:
            if latent is None:
                latent = z.new_zeros(B, T, self.latent_dim)  # the prior mean
            actions = torch.cat([actions, latent], dim=-1)  # (B, T, A + L)
        cond = self.cond(actions)  # (B, T, d)
        x = self.embed(z)  # (B, T, d)
        for blk in self.blocks:
            x = blk(x, cond)
        return z + self.head(self.norm(x))


class LatentBottleneck(nn.Module):
    """Infers z_t from (z_t, z_{t+1}) through a power-limited Gaussian channel with a hard information budget.

    ``z = mu + eps``, eps ~ N(0, I_L), with mu projected into the ball ``||mu||² <= P``; P is set so that the channel
    capacity ``(L/2) log(1 + P/L)`` equals `budget` nats per step. Its marginal is within N(0, (1 + P/L) I), which
    the planner samples from (`prior_std`).
    """

    def __init__(self, *, frame_dim: int, latent_dim: int, budget: float, hidden: int = 128) -> None:
        super().__init__()
        if budget <= 0:
            raise ValueError(f"latent information budget must be > 0 nats, got {budget}")
        self.latent_dim, self.budget = latent_dim, budget
        self.power = latent_dim * math.expm1(2.0 * budget / latent_dim)
        self.net = nn.Sequential(nn.Linear(2 * frame_dim, hidden), nn.GELU(), nn.Linear(hidden, latent_dim))

    @property
    def prior_std(self) -> float:
        return math.sqrt(1.0 + self.power / self.latent_dim)

    def mean(self, z: torch.Tensor, z_next: torch.Tensor) -> torch.Tensor:
        """(…, D), (…, D) -> mu (…, L) with ||mu||² <= P."""
        mu = self.net(torch.cat([z, z_next], dim=-1))
        norm = mu.norm(dim=-1, keepdim=True).clamp_min(1e-6)
        return mu * (math.sqrt(self.power) / norm).clamp(max=1.0)

    def forward(self, z: torch.Tensor, z_next: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return self.mean(z, z_next) + noise


# --------------------------------------------------------------------------------------------------------------------
# The method
# --------------------------------------------------------------------------------------------------------------------


class EmbeddingVICReg(nn.Module):
    """VICReg's variance and covariance terms on the embeddings themselves (N, D), without an expander.

    `losses.Regularizer` puts VICReg behind a BatchNorm expander, as the image methods do. For a world model that is
    not enough: the BatchNorm restores unit variance whatever the embedding's scale, so the embeddings can shrink
    until consecutive frames are all but equal and prediction is trivially easy (observed on TwoRooms: the
    inverse-dynamics loss stayed at chance). PLDM regularises the embeddings directly, as here.
    """

    def __init__(self, *, weight: float = 1.0, std_weight: float = 25.0, cov_weight: float = 1.0) -> None:
        super().__init__()
        self.weight, self.std_weight, self.cov_weight = weight, std_weight, cov_weight

    def forward(self, z: torch.Tensor, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        z = gather_batch(z.float())  # (N, D) over every DDP rank's samples
        var, cov = variance_loss(z), covariance_loss(z)
        loss = self.std_weight * var + self.cov_weight * cov
        return self.weight * loss, {"reg/var": var.item(), "reg/cov": cov.item()}


class FrameHead(nn.Module):
    """ViT tokens (B, N, d) -> one embedding per frame (B, D): layer norm, flatten, linear."""

    def __init__(self, *, num_tokens: int, token_dim: int, frame_dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(token_dim, eps=1e-6)
        self.proj = nn.Linear(num_tokens * token_dim, frame_dim)
        self.apply(_init_weights)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.proj(self.norm(tokens).flatten(1))  # (B, N·d) -> (B, D)


class KeypointHead(nn.Module):
    """ViT tokens (B, N, d) on an h×w grid -> (B, D) through K soft-argmax keypoints plus mean-pooled features.

    The spatial softmax of Levine et al. 2016 ("End-to-End Training of Deep Visuomotor Policies"): each keypoint is
    the softmax-weighted mean of the token positions, refined by a learned, bounded sub-patch offset read from each
    token. Keypoints move continuously with what they track, so embeddings of nearby states are nearby from the
    first step of training: far fewer CPU steps are needed than for a flat projection, whose code for a moving
    object is close to random until it is learnt. The mean-pooled token features keep what positions do not
    (e.g. an orientation); a linear layer maps both to D.
    """

    def __init__(self, *, grid: tuple[int, int], token_dim: int, frame_dim: int, keypoints: int = 16) -> None:
        super().__init__()
        h, w = grid
        self.keypoints = keypoints
        rows, cols = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        centres = torch.stack([(cols.flatten() + 0.5) / w, 1 - (rows.flatten() + 0.5) / h], dim=1) * 2 - 1
        self.register_buffer("centres", centres, persistent=False)  # (N, 2) in [-1, 1], (x right, y up)
        self.register_buffer("half_cell", torch.tensor([1.0 / w, 1.0 / h]), persistent=False)
        self.norm = nn.LayerNorm(token_dim, eps=1e-6)
        self.score = nn.Linear(token_dim, keypoints)
        self.offset = nn.Linear(token_dim, 2 * keypoints)
        self.proj = nn.Linear(2 * keypoints + token_dim, frame_dim)
        self.apply(_init_weights)
        # The ViT's 0.02 init would give near-zero scores, i.e. uniform softmaxes whose keypoints sit still at the
        # centre, and a near-zero embedding: start with peaked keypoints and an embedding of about unit scale, so
        # that the very first steps already see embeddings that move with the scene.
        nn.init.normal_(self.score.weight, std=0.3)
        nn.init.normal_(self.proj.weight, std=1.5 / math.sqrt(self.proj.in_features))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        B, N, _ = tokens.shape
        x = self.norm(tokens)  # (B, N, d)
        weights = torch.softmax(self.score(x), dim=1)  # (B, N, K): a distribution over tokens per keypoint
        offset = torch.tanh(self.offset(x)).view(B, N, self.keypoints, 2) * self.half_cell  # within the cell
        points = torch.einsum("bnk,bnkc->bkc", weights, self.centres[None, :, None] + offset)  # (B, K, 2)
        return self.proj(torch.cat([points.flatten(1), x.mean(1)], dim=1))  # (B, 2K + d) -> (B, D)


class ProprioEncoder(nn.Module):
    """Proprioception (…, P) -> (…, E): standardised with the training set's per-dimension statistics, then linear.

    The statistics are buffers (saved with the model), so raw readings in any unit (PushT's pixels, radians) enter
    at unit scale. The initial map is roughly norm-preserving, so the features start at the scale of the pixel
    embedding's.
    """

    def __init__(self, *, mean: tuple[float, ...], std: tuple[float, ...], dim: int) -> None:
        super().__init__()
        if len(mean) != len(std) or not mean:
            raise ValueError(f"proprioception statistics need one mean and std per dimension, got {mean}, {std}")
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).clamp_min(1e-6))
        self.proj = nn.Linear(len(mean), dim)
        nn.init.normal_(self.proj.weight, std=1.0 / math.sqrt(len(mean)))
        nn.init.zeros_(self.proj.bias)

    @property
    def input_dim(self) -> int:
        return self.mean.numel()

    def forward(self, proprio: torch.Tensor) -> torch.Tensor:
        if proprio.shape[-1] != self.input_dim:
            raise ValueError(
                f"proprioception has {proprio.shape[-1]} dimensions, the world model was trained on {self.input_dim}"
            )
        return self.proj((proprio.float() - self.mean) / self.std)


class WorldModel(Method):
    """Encoder + `FrameHead` + action-conditioned `FramePredictor`, trained on (frames, actions) windows.

    Batches: {"frames": (B, W + 1, C, H, W), "actions": (B, W, A)}, plus {"proprio": (B, W + 1, P)} when the model
    takes proprioception; `prepare` adds the latent-variable noise {"noise": (B, W, L)} drawn from the step's
    generator. Planning uses `encode` and `rollout`.
    """

    def __init__(
        self,
        *,
        encoder: VisionTransformer,
        predictor: FramePredictor,
        rollout_steps: int = 2,
        target: str = "online",
        ema: tuple[float, float] = (0.996, 1.0),
        regularizer: Regularizer | EmbeddingVICReg | None = None,
        inverse_dynamics: float = 0.0,
        frame_step: int = 1,
        latent_budget: float = 1.0,
        freeze_encoder: bool = False,
        frame_pool: str = "keypoints",
        proprio: ProprioEncoder | None = None,
    ) -> None:
        super().__init__()
        if target not in ("ema", "online"):
            raise ValueError(f"unknown target '{target}'; choose ema or online")
        if rollout_steps < 1:
            raise ValueError(f"rollout_steps must be >= 1, got {rollout_steps}")
        D = predictor.frame_dim
        self.proprio_dim = 0 if proprio is None else proprio.proj.out_features
        V = D - self.proprio_dim  # the pixel embedding's share of the frame vector
        if V < 1:
            raise ValueError(f"the predictor's frame_dim {D} leaves no room beside {self.proprio_dim} proprio features")
        self.encoder = encoder.requires_grad_(not freeze_encoder)
        self.freeze_encoder = freeze_encoder
        if frame_pool == "keypoints":
            self.head: nn.Module = KeypointHead(grid=encoder.grid[1:], token_dim=encoder.dim, frame_dim=V)
        elif frame_pool == "flat":
            self.head = FrameHead(num_tokens=encoder.num_patches, token_dim=encoder.dim, frame_dim=V)
        else:
            raise ValueError(f"unknown frame_pool '{frame_pool}'; choose keypoints or flat")
        self.proprio = proprio
        self.predictor = predictor
        self.action_dim, self.latent_dim, self.frame_dim = predictor.action_dim, predictor.latent_dim, D
        self.rollout_steps, self.target, self.ema = rollout_steps, target, ema
        if target == "ema":
            self.target_encoder = copy.deepcopy(self.encoder).requires_grad_(False)
            self.target_head = copy.deepcopy(self.head).requires_grad_(False)
            if proprio is not None:
                self.target_proprio = copy.deepcopy(proprio).requires_grad_(False)
        self.reg = regularizer or Regularizer(kind="none", dim=D)
        if self.action_dim % frame_step:
            raise ValueError(f"action_dim {self.action_dim} is not a multiple of frame_step {frame_step}")
        self.inverse_dynamics, self.frame_step = inverse_dynamics, frame_step
        if inverse_dynamics > 0:
            # With frameskip the k raw actions between two frames cannot be told apart from the frames, only their
            # mean (the net push) can: that is what the inverse model predicts.
            self.idm = nn.Sequential(nn.Linear(2 * D, 128), nn.GELU(), nn.Linear(128, self.action_dim // frame_step))
        self.bottleneck = (
            LatentBottleneck(frame_dim=D, latent_dim=self.latent_dim, budget=latent_budget) if self.latent_dim else None
        )
        self.register_buffer("step", torch.zeros((), dtype=torch.long))

    # Encoding ---------------------------------------------------------------------------------------------------------

    @property
    def eval_encoder(self) -> VisionTransformer:
        return self.target_encoder if self.target == "ema" else self.encoder

    @property
    def img_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the frames the encoder takes."""
        return (self.encoder.in_chans, self.encoder.img_size, self.encoder.img_size)

    def _pixels(self, x: torch.Tensor, *, ema: bool) -> torch.Tensor:
        """(B, C, H, W) -> the pixel embedding (B, V), with the online or the EMA target encoder and head."""
        if ema:
            return self.target_head(self.target_encoder(x))
        if self.freeze_encoder:
            with torch.no_grad():
                tokens = self.encoder(x)
            return self.head(tokens)
        return self.head(self.encoder(x))

    def _embed(self, x: torch.Tensor, proprio: torch.Tensor | None, *, target: bool = False) -> torch.Tensor:
        """(B, C, H, W), proprio (B, P) or None -> (B, D) with the online or (EMA) target encoder."""
        ema = target and self.target == "ema"
        z = self._pixels(x, ema=ema)
        if self.proprio is None:
            return z
        if proprio is None:
            raise ValueError(
                f"this world model takes proprioception ({self.proprio.input_dim} values per frame) beside the pixels, "
                "and none was given"
            )
        return torch.cat([z, (self.target_proprio if ema else self.proprio)(proprio)], dim=-1)

    def encode(
        self, frames: torch.Tensor, proprio: torch.Tensor | None = None, *, target: bool = False
    ) -> torch.Tensor:
        """Frames (B, C, H, W) [+ proprio (B, P)] -> (B, D), or (B, T, C, H, W) [+ (B, T, P)] -> (B, T, D).

        Frames are float in [0, 1]. `proprio` is required exactly when the model was built with proprioception.
        """
        if frames.dim() == 4:
            return self._embed(frames, proprio, target=target)
        B, T = frames.shape[:2]
        flat = None if proprio is None else proprio.flatten(0, 1)
        return self._embed(frames.flatten(0, 1), flat, target=target).view(B, T, -1)

    @torch.no_grad()
    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pixel embeddings (B, V) of the first frame of (B, T, C, H, W) (or of images (B, C, H, W)) for diagnostics.

        Without the proprioception features: those are a linear map of the env's readings, and the trainer's
        collapse diagnostics watch what is learnt from pixels.
        """
        return self._pixels(x[:, 0] if x.dim() == 5 else x, ema=self.target == "ema")

    # Prediction ---------------------------------------------------------------------------------------------------

    def rollout(self, z0: torch.Tensor, actions: torch.Tensor, latent: torch.Tensor | None = None) -> torch.Tensor:
        """Autoregressive imagination: z0 (N, D), actions (N, H, A), latent (N, H, L) or None -> (N, H, D).

        Each step feeds the last `history` embeddings (true start, then the model's own predictions) back in.
        """
        H, A = actions.shape[1:]
        if self.action_dim != A:
            raise ValueError(f"actions have dimension {A}, the world model takes {self.action_dim}")
        k = self.predictor.history
        seq = [z0]
        for h in range(H):
            lo = max(0, h + 1 - k)
            ctx = torch.stack(seq[lo:], dim=1)  # (N, ≤k, D)
            lat = None if latent is None else latent[:, lo : h + 1]
            seq.append(self.predictor(ctx, actions[:, lo : h + 1], lat)[:, -1])
        return torch.stack(seq[1:], dim=1)  # (N, H, D)

    def prior_latent(self, shape: tuple[int, ...], generator: torch.Generator | None = None) -> torch.Tensor | None:
        """Samples of the latent variable from its prior, (*shape, L); None for a deterministic model."""
        if self.bottleneck is None:
            return None
        noise = torch.randn((*shape, self.latent_dim), generator=generator)
        return (noise * self.bottleneck.prior_std).to(self.step.device)

    # Training ----------------------------------------------------------------------------------------------------

    def prepare(self, batch: dict[str, torch.Tensor], generator: torch.Generator) -> dict[str, torch.Tensor]:
        if self.latent_dim:
            B, W = batch["actions"].shape[:2]
            batch = {**batch, "noise": torch.randn(B, W, self.latent_dim, generator=generator)}
        return batch

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        frames, actions = batch["frames"], batch["actions"]
        B, T = frames.shape[:2]  # T = W + 1
        if actions.shape[:2] != (B, T - 1) or actions.shape[2] != self.action_dim:
            raise ValueError(
                f"actions of shape {tuple(actions.shape)} do not fit {T} frames and action_dim {self.action_dim}"
            )
        proprio = batch.get("proprio") if self.proprio is not None else None
        z = self.encode(frames, proprio)  # (B, T, D)
        if self.target == "ema":
            with torch.no_grad():
                target = self.encode(frames, proprio, target=True)  # (B, T, D)
        else:
            target = z.detach()
        latent = None
        if self.bottleneck is not None:
            latent = self.bottleneck(z[:, :-1].detach(), target[:, 1:], batch["noise"])  # (B, W, L)

        pred = self.predictor(z[:, :-1], actions, latent)  # (B, W, D): teacher forcing
        tf_loss = F.mse_loss(pred, target[:, 1:])
        R = min(self.rollout_steps, T - 1)
        rolled = self.rollout(z[:, 0], actions[:, :R], None if latent is None else latent[:, :R])  # (B, R, D)
        ro_loss = F.mse_loss(rolled, target[:, 1 : R + 1])
        reg_loss, logs = self.reg(z.flatten(0, 1), int(self.step))
        loss = tf_loss + ro_loss + reg_loss
        logs = {"loss/teacher_forcing": tf_loss.item(), "loss/rollout": ro_loss.item(), **logs}
        if self.inverse_dynamics > 0:
            guess = self.idm(torch.cat([z[:, :-1], z[:, 1:]], dim=-1))  # (B, W, A / k)
            mean_push = actions.view(B, T - 1, self.frame_step, -1).mean(2)  # (B, W, k, A / k) -> (B, W, A / k)
            idm_loss = F.mse_loss(guess, mean_push)
            loss = loss + self.inverse_dynamics * idm_loss
            logs["loss/inverse_dynamics"] = idm_loss.item()
        return loss, logs

    @torch.no_grad()
    def after_step(self, progress: float) -> None:
        self.step += 1
        if self.target != "ema":
            return
        m = self.ema[0] + (self.ema[1] - self.ema[0]) * min(max(progress, 0.0), 1.0)
        pairs = [(self.encoder, self.target_encoder), (self.head, self.target_head)]
        if self.proprio is not None:
            pairs.append((self.proprio, self.target_proprio))
        for online, tgt in pairs:
            torch._foreach_lerp_(list(tgt.parameters()), list(online.parameters()), 1.0 - m)


# --------------------------------------------------------------------------------------------------------------------
# Builder (the registry entry)
# --------------------------------------------------------------------------------------------------------------------


def build_worldmodel(cfg, spec) -> WorldModel:  # (ExperimentConfig, DataSpec); untyped to avoid an import cycle
    from jepaworld.data.images import DataError
    from jepaworld.methods import build_encoder, build_regularizer, initial_encoder

    m, me = cfg.model, cfg.method
    if spec.action_dim and spec.action_dim != m.action_dim:
        raise DataError(
            f"the dataset's actions have dimension {spec.action_dim} (env action dim × data.frame_step) but "
            f"--model.action_dim is {m.action_dim}; set --model.action_dim {spec.action_dim}"
        )
    if spec.frames != 1:
        raise DataError(f"the world model encodes single frames (DataSpec.frames = 1), got frames={spec.frames}")
    encoder = build_encoder(cfg, spec)
    if m.encoder_init:
        encoder = initial_encoder(m.encoder_init, encoder)
    if me.regularizer == "vicreg":
        regularizer = EmbeddingVICReg(weight=me.reg_weight, std_weight=me.vicreg_std_weight,
                                      cov_weight=me.vicreg_cov_weight)  # fmt: skip
    else:
        regularizer = build_regularizer(cfg, m.frame_dim + m.proprio_dim)  # it sees the whole frame vector
    proprio = None
    if m.proprio_dim:
        if not spec.proprio_mean:
            raise DataError(
                f"--model.proprio_dim {m.proprio_dim} asks for proprioception, but the dataset has none "
                "(its environment records no proprio); set --model.proprio_dim 0"
            )
        proprio = ProprioEncoder(mean=tuple(spec.proprio_mean), std=tuple(spec.proprio_std), dim=m.proprio_dim)
    predictor = FramePredictor(
        frame_dim=m.frame_dim + m.proprio_dim, action_dim=m.action_dim, latent_dim=m.latent_dim, dim=m.pred_dim,
        depth=m.pred_depth, num_heads=m.pred_heads, history=m.history,
    )  # fmt: skip
    return WorldModel(
        encoder=encoder, predictor=predictor, rollout_steps=me.rollout_steps, target=me.target,
        ema=(me.ema_start, me.ema_end), regularizer=regularizer,
        inverse_dynamics=me.inverse_dynamics, frame_step=cfg.data.frame_step, latent_budget=me.latent_budget,
        freeze_encoder=m.freeze_encoder, frame_pool=m.frame_pool, proprio=proprio,
    )  # fmt: skip
