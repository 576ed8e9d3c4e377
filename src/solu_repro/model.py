"""A pre-LN decoder-only transformer with a choice of MLP activation (GELU, SoLU, SoLU+LN, ...).

One readable file: ``ModelConfig`` (validated, JSON-serializable), then one class per
component. Parameter shapes follow TransformerLens where that costs nothing (``W_in`` is
``(d_model, d_mlp)``, ``W_O`` is ``(n_heads, d_head, d_model)``, ``W_U`` is
``(d_model, d_vocab)``), so neuron weights read the same way in both libraries; Q, K and V
are fused into one matrix for speed. Activations are exposed under TransformerLens's hook
names through ``run_with_cache``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Any, Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .activations import ACT_FNS, LN_ACT_FNS, BlockedLayerNorm, MLPActivation
from . import hooks
from .hooks import act_name
from .unembed_loss import linear_cross_entropy

POS_EMBEDS = ("rotary", "learned")


class ConfigError(ValueError):
    """An invalid model or training configuration; the message says which field and why."""


@dataclass(frozen=True)
class ModelConfig:
    """Shape and architecture of a transformer.

    Attributes:
        n_layers: number of attention + MLP blocks.
        d_model: residual stream width.
        n_heads: attention heads per layer.
        d_head: width of each head.
        d_mlp: MLP hidden width (the neurons the paper interprets).
        d_vocab: vocabulary size.
        n_ctx: context length (tokens per row, BOS included).
        act_fn: "gelu" (baseline), "solu", "solu_ln" (paper's main model) or "gelu_ln"
            (LN-only ablation).
        solu_blocks: number of equal groups the softmax and the extra LN act over (§4.4).
        pos_embed: "rotary" or "learned" positional information.
        init_std: std of the normal init of weight matrices; W_pos uses half of it and the
            output projections (W_O, W_out) divide it by sqrt(n_layers).
        ln_eps: LayerNorm epsilon.
        rotary_base: base of the rotary frequencies.
        seed: seed of the parameter initialisation (matched GELU/SoLU pairs share it).
    """

    n_layers: int = 1
    d_model: int = 256
    n_heads: int = 4
    d_head: int = 64
    d_mlp: int = 1024
    d_vocab: int = 8192
    n_ctx: int = 256
    act_fn: str = "solu_ln"
    solu_blocks: int = 1
    pos_embed: str = "rotary"
    init_std: float = 0.02
    ln_eps: float = 1e-5
    rotary_base: float = 10000.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("n_layers", "d_model", "n_heads", "d_head", "d_mlp", "d_vocab", "n_ctx",
                     "solu_blocks"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"ModelConfig.{name} must be a positive integer, got {value!r}")
        if self.act_fn not in ACT_FNS:
            raise ConfigError(f"ModelConfig.act_fn={self.act_fn!r} is unknown: use one of {ACT_FNS}")
        if self.pos_embed not in POS_EMBEDS:
            raise ConfigError(
                f"ModelConfig.pos_embed={self.pos_embed!r} is unknown: use one of {POS_EMBEDS}")
        if self.d_mlp % self.solu_blocks:
            raise ConfigError(
                f"ModelConfig.d_mlp={self.d_mlp} is not divisible by solu_blocks="
                f"{self.solu_blocks}: choose a d_mlp that is a multiple of solu_blocks")
        if self.solu_blocks > 1 and self.act_fn == "gelu":
            raise ConfigError(
                "ModelConfig.solu_blocks > 1 has no effect with act_fn='gelu' (it blocks the "
                "softmax and the extra LayerNorm): use solu, solu_ln or gelu_ln, or solu_blocks=1")
        if self.pos_embed == "rotary" and self.d_head % 2:
            raise ConfigError(f"rotary positions need an even d_head, got d_head={self.d_head}")
        if not (isinstance(self.init_std, (int, float)) and self.init_std > 0):
            raise ConfigError(f"ModelConfig.init_std must be > 0, got {self.init_std!r}")
        for name in ("ln_eps", "rotary_base"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ConfigError(f"ModelConfig.{name} must be a number > 0, got {value!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"ModelConfig.seed must be a non-negative integer, got {self.seed!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelConfig":
        """Build from a dict, rejecting unknown keys (typos would otherwise be silently ignored)."""
        known = {f.name for f in dataclasses.fields(cls)}
        if not isinstance(d, dict):
            raise ConfigError(f"a ModelConfig must be a JSON object of fields, got {d!r}")
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(
                f"unknown ModelConfig field(s) {unknown}: valid fields are {sorted(known)}")
        try:
            return cls(**d)
        except TypeError as exc:  # e.g. a string where a number belongs
            raise ConfigError(f"invalid ModelConfig: {exc}") from exc

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "ModelConfig":
        return cls.from_dict(json.loads(text))

    def replace(self, **changes: Any) -> "ModelConfig":
        return dataclasses.replace(self, **changes)

    @property
    def has_mlp_ln(self) -> bool:
        return self.act_fn in LN_ACT_FNS


class ActivationCache(dict):
    """Activations recorded by ``run_with_cache``, keyed by TransformerLens hook name."""

    def __init__(self, names: Iterable[str] | None = None):
        super().__init__()
        self.wanted = None if names is None else frozenset(names)

    def record(self, name: str, value: Tensor) -> None:
        if self.wanted is None or name in self.wanted:
            self[name] = value


def _rotary_tables(d_head: int, n_ctx: int, base: float) -> tuple[Tensor, Tensor]:
    """sin and cos tables ``(n_ctx, d_head)`` for rotary embeddings, GPT-NeoX (half-split) layout."""
    half = d_head // 2
    freq = base ** (torch.arange(half, dtype=torch.float64) / half)
    angles = torch.arange(n_ctx, dtype=torch.float64)[:, None] / freq.repeat(2)[None, :]
    return torch.sin(angles).float(), torch.cos(angles).float()


def _rotate_half(x: Tensor) -> Tensor:
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], dim=-1)


class _Rotary(torch.autograd.Function):
    """``x * cos + _rotate_half(x) * sin`` with a backward of two products and two in-place
    half updates (autograd's took nine passes: the products, the concatenation's slices, the
    negation, and zeroed gradients for the slices of ``x``). The gradient is the same sum
    of the same products, so it is bit for bit autograd's."""

    @staticmethod
    def forward(ctx, x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        ctx.save_for_backward(cos, sin)
        return x * cos + _rotate_half(x) * sin

    @staticmethod
    def backward(ctx, grad: Tensor):
        cos, sin = ctx.saved_tensors
        half = grad.shape[-1] // 2
        by_sin = grad * sin
        out = grad * cos
        out[..., :half] += by_sin[..., half:]
        out[..., half:] -= by_sin[..., :half]
        return out, None, None


# --- causal attention of a bf16 training step on a CPU ----------------------------------------
# Scores held at once by one group of heads (2 MB in float32), so that a group's scores, pattern
# and their gradients stay in a core's L2 cache between the passes over them.
_GROUP_SCORES = 1 << 19
# The saved pattern (float32) of one layer may take at most this many numbers (64 MB); above
# it a training step uses the fused kernel, whose backward recomputes the pattern.
SAVED_PATTERN_MAX = 1 << 24


class _SavedPatternAttention(torch.autograd.Function):
    """Causal attention of bf16 ``q, k, v`` ``(B, H, T, Dh)`` that keeps its pattern for the
    backward pass: the CPU fused kernel's (``scaled_dot_product_attention``) backward
    recomputes the pattern block by block and, at the cpu zoo's shapes (T = 255, Dh = 64),
    takes more than twice as long as its forward (33 ms a step of 4,096 tokens, a fifth of
    the step); here the forward and backward together take about 20 ms.

    The arithmetic is the fused kernel's: scores in float32 (from the bf16 q and k), the
    softmax in float32, the weighted sum of values and the four gradient matmuls with bf16
    inputs and float32 accumulation; the pattern is rounded to bf16 for the value matmuls
    (where the fused kernel keeps it in float32 per block), so the output agrees with the
    kernel's to bf16 rounding rather than bit for bit. Only bf16 training steps on a CPU take
    this path (``_causal_attention``): fp32 and inference are unchanged.
    """

    @staticmethod
    def forward(ctx, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        B, H, T, Dh = q.shape
        dtype, n = q.dtype, B * H
        scale = 1 / math.sqrt(Dh)
        q3, k3, v3 = (t.contiguous().view(n, T, Dh) for t in (q, k, v))
        # The causal mask as a score bias (0 or -inf), added by the score matmul itself.
        future = torch.full((T, T), float("-inf"), device=q.device).triu_(1)
        pattern = torch.empty(n, T, T, dtype=torch.float32, device=q.device)
        out = torch.empty(n, T, Dh, dtype=dtype, device=q.device)
        group = max(1, _GROUP_SCORES // (T * T))
        with torch.autocast(q.device.type, enabled=False):
            for i in range(0, n, group):
                sl = slice(i, min(n, i + group))
                scores = torch.baddbmm(future, q3[sl].float(), k3[sl].float().transpose(1, 2),
                                       alpha=scale)
                torch.softmax(scores, dim=-1, out=pattern[sl])
                torch.bmm(pattern[sl].to(dtype), v3[sl], out=out[sl])
        ctx.save_for_backward(q3, k3, v3, out, pattern)
        return out.view(B, H, T, Dh)

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        q3, k3, v3, out, pattern = ctx.saved_tensors
        n, T, Dh = q3.shape
        dtype = q3.dtype
        scale = 1 / math.sqrt(Dh)
        g3 = grad_out.to(dtype).contiguous().view(n, T, Dh)
        # d(softmax) needs each row's sum of pattern * d(pattern) = d(out) . out
        row = (g3.float() * out.float()).sum(-1, keepdim=True)
        grads = [torch.empty_like(t) for t in (q3, k3, v3)]
        dq, dk, dv = grads
        group = max(1, _GROUP_SCORES // (T * T))
        for i in range(0, n, group):
            sl = slice(i, min(n, i + group))
            p, g = pattern[sl], g3[sl]
            torch.bmm(p.to(dtype).transpose(1, 2), g, out=dv[sl])
            dp = torch.bmm(g, v3[sl].transpose(1, 2))
            ds = dp.float().sub_(row[sl]).mul_(p).mul_(scale).to(dtype)
            torch.bmm(ds, k3[sl], out=dq[sl])
            torch.bmm(ds.transpose(1, 2), q3[sl], out=dk[sl])
        return tuple(t.view(grad_out.shape) for t in grads)


def _causal_attention(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """Causal softmax attention of ``(B, H, T, Dh)`` queries, keys and values.

    ``F.scaled_dot_product_attention``, except in a bf16 training step on a CPU (bf16
    autocast or bf16 tensors, a gradient wanted), where ``_SavedPatternAttention`` does the
    same arithmetic about 1.6x faster at the cpu zoo's shapes.
    """
    B, H, T, _ = q.shape
    dtype = (torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu")
             else q.dtype)
    if (q.device.type == "cpu" and dtype == torch.bfloat16 and torch.is_grad_enabled()
            and (q.requires_grad or k.requires_grad or v.requires_grad)
            and B * H * T * T <= SAVED_PATTERN_MAX and not torch.compiler.is_compiling()):
        q, k, v = (t.to(dtype, memory_format=torch.contiguous_format) for t in (q, k, v))
        return _SavedPatternAttention.apply(q, k, v)
    return F.scaled_dot_product_attention(q, k, v, is_causal=True)


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig, layer: int):
        super().__init__()
        self.cfg, self.layer = cfg, layer
        H, Dh, D = cfg.n_heads, cfg.d_head, cfg.d_model
        self.W_QKV = nn.Parameter(torch.empty(D, 3, H, Dh))
        self.b_QKV = nn.Parameter(torch.zeros(3, H, Dh))
        self.W_O = nn.Parameter(torch.empty(H, Dh, D))
        self.b_O = nn.Parameter(torch.zeros(D))
        if cfg.pos_embed == "rotary":
            sin, cos = _rotary_tables(Dh, cfg.n_ctx, cfg.rotary_base)
            self.register_buffer("rotary_sin", sin, persistent=False)
            self.register_buffer("rotary_cos", cos, persistent=False)

    def _rotate(self, x: Tensor) -> Tensor:  # x: (B, T, ..., Dh), e.g. (B, T, 2, H, Dh)
        T = x.shape[1]
        table = (None, slice(None, T)) + (None,) * (x.dim() - 3) + (slice(None),)
        sin = self.rotary_sin[table].to(x.dtype)
        cos = self.rotary_cos[table].to(x.dtype)
        return _Rotary.apply(x, cos, sin)

    def forward(self, x: Tensor, cache: ActivationCache | None = None) -> Tensor:
        B, T, D = x.shape
        H, Dh = self.cfg.n_heads, self.cfg.d_head
        qkv = x @ self.W_QKV.view(D, 3 * H * Dh) + self.b_QKV.view(-1)  # (B, T, 3*H*Dh)
        qkv = qkv.view(B, T, 3, H, Dh)
        if self.cfg.pos_embed == "rotary":  # q and k rotated together
            q, k = self._rotate(qkv[:, :, :2]).unbind(dim=2)  # each (B, T, H, Dh)
            v = qkv[:, :, 2]
        else:
            q, k, v = qkv.unbind(dim=2)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # (B, H, T, Dh)
        want_pattern = cache is not None and (
            cache.wanted is None or act_name("pattern", self.layer) in cache.wanted)
        if want_pattern:
            scores = q @ k.transpose(-1, -2) / math.sqrt(Dh)  # (B, H, T, T)
            causal = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
            pattern = scores.masked_fill(~causal, float("-inf")).softmax(dim=-1)
            cache.record(act_name("pattern", self.layer), pattern)
            z = pattern.to(v.dtype) @ v
        else:
            z = _causal_attention(q, k, v)  # (B, H, T, Dh)
        z = z.transpose(1, 2).reshape(B, T, H * Dh)
        return z @ self.W_O.view(H * Dh, D) + self.b_O


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig, layer: int):
        super().__init__()
        self.layer = layer
        self.W_in = nn.Parameter(torch.empty(cfg.d_model, cfg.d_mlp))
        self.b_in = nn.Parameter(torch.zeros(cfg.d_mlp))
        self.act = MLPActivation(cfg.act_fn, cfg.d_mlp, cfg.solu_blocks, cfg.ln_eps)
        self.W_out = nn.Parameter(torch.empty(cfg.d_mlp, cfg.d_model))
        self.b_out = nn.Parameter(torch.zeros(cfg.d_model))

    def forward(self, x: Tensor, cache: ActivationCache | None = None) -> Tensor:
        pre = x @ self.W_in + self.b_in  # (B, T, d_mlp)
        mid, post = self.act(pre)
        if cache is not None:
            # hook_mid is the activation the paper interprets (before the extra LN, §4.3).
            cache.record(act_name("pre", self.layer), pre)
            cache.record(act_name("mid", self.layer), mid)
            cache.record(act_name("post", self.layer), post)
        return post @ self.W_out + self.b_out


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig, layer: int):
        super().__init__()
        self.layer = layer
        self.ln1 = BlockedLayerNorm(cfg.d_model, eps=cfg.ln_eps)
        self.attn = Attention(cfg, layer)
        self.ln2 = BlockedLayerNorm(cfg.d_model, eps=cfg.ln_eps)
        self.mlp = MLP(cfg, layer)

    def forward(self, resid: Tensor, cache: ActivationCache | None = None) -> Tensor:
        if cache is not None:
            cache.record(act_name("resid_pre", self.layer), resid)
        resid = resid + self.attn(self.ln1(resid), cache)
        if cache is not None:
            cache.record(act_name("resid_mid", self.layer), resid)
        resid = resid + self.mlp(self.ln2(resid), cache)
        if cache is not None:
            cache.record(act_name("resid_post", self.layer), resid)
        return resid


class Transformer(nn.Module):
    """Pre-LN decoder-only transformer; ``model(tokens)`` returns logits ``(B, T, d_vocab)``."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.W_E = nn.Parameter(torch.empty(cfg.d_vocab, cfg.d_model))
        self.W_pos = (nn.Parameter(torch.empty(cfg.n_ctx, cfg.d_model))
                      if cfg.pos_embed == "learned" else None)
        self.blocks = nn.ModuleList(Block(cfg, layer) for layer in range(cfg.n_layers))
        self.ln_final = BlockedLayerNorm(cfg.d_model, eps=cfg.ln_eps)
        self.W_U = nn.Parameter(torch.empty(cfg.d_model, cfg.d_vocab))
        self.b_U = nn.Parameter(torch.zeros(cfg.d_vocab))
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Normal init with std ``init_std`` (W_pos: half; W_O, W_out: / sqrt(n_layers)).

        Uses a private generator seeded by ``cfg.seed`` and draws in a fixed order that skips
        LayerNorm parameters, so a GELU and a SoLU model of the same shape and seed start
        from identical weights.
        """
        gen = torch.Generator().manual_seed(self.cfg.seed)
        std = self.cfg.init_std
        out_std = std / math.sqrt(self.cfg.n_layers)
        for name, p in self.named_parameters():
            leaf = name.rsplit(".", 1)[-1]
            if leaf in ("W_E", "W_QKV", "W_in", "W_U"):
                p.copy_(torch.randn(p.shape, generator=gen) * std)
            elif leaf == "W_pos":
                p.copy_(torch.randn(p.shape, generator=gen) * (std / 2))
            elif leaf in ("W_O", "W_out"):
                p.copy_(torch.randn(p.shape, generator=gen) * out_std)
            elif leaf == "w":
                p.fill_(1.0)
            else:
                p.zero_()

    def hook_names(self) -> list[str]:
        """All activation names ``run_with_cache`` can record."""
        return hooks.hook_names(self.cfg.n_layers, learned_pos=self.W_pos is not None)

    def forward(self, tokens: Tensor, cache: ActivationCache | None = None,
                stop_after_blocks: bool = False, targets: Tensor | None = None,
                per_token: bool = False) -> Tensor:
        """Args:
            tokens: ``(B, T)`` int token ids, ``T <= n_ctx``.
            cache: if given, activations are recorded into it.
            stop_after_blocks: skip the final LN and unembedding (returns the residual).
            targets: ``(B, T)`` token ids to score: then the logits are never materialised
                and the float32 cross-entropy is returned instead (``unembed_loss``).
            per_token: with ``targets``, return ``(B, T)`` losses instead of their mean.

        Returns:
            logits ``(B, T, d_vocab)`` (or the final residual stream ``(B, T, d_model)``, or
            the loss of ``targets``).
        """
        if targets is not None and (cache is not None or stop_after_blocks):
            raise ValueError("forward(targets=...) returns a loss; record activations with "
                             "run_with_cache instead")
        T = tokens.shape[-1]
        if T > self.cfg.n_ctx:
            raise ValueError(f"sequence length {T} exceeds the model's n_ctx={self.cfg.n_ctx}")
        resid = self.W_E[tokens]  # (B, T, d_model)
        if cache is not None:
            cache.record(act_name("embed"), resid)
        if self.W_pos is not None:
            pos = self.W_pos[:T]
            if cache is not None:
                # (B, T, d_model) like TransformerLens's hook_pos_embed (a view, no copy).
                cache.record(act_name("pos_embed"), pos.expand(resid.shape))
            resid = resid + pos
        for block in self.blocks:
            resid = block(resid, cache)
        if stop_after_blocks:
            return resid
        normalized = self.ln_final(resid)
        if targets is not None:
            return linear_cross_entropy(normalized, self.W_U, self.b_U, targets,
                                        reduction="none" if per_token else "mean")
        if cache is not None and (cache.wanted is None
                                  or act_name("normalized") in cache.wanted):
            # As in TransformerLens, hook_normalized is the LayerNorm output *before* its
            # affine w, b (centred, unit variance), so TL analysis code reads it correctly.
            cache.record(act_name("normalized"),
                         F.layer_norm(resid, (self.cfg.d_model,), eps=self.cfg.ln_eps))
        return normalized @ self.W_U + self.b_U

    def run_with_cache(self, tokens: Tensor, names: Iterable[str] | None = None,
                       return_logits: bool = True) -> tuple[Tensor | None, ActivationCache]:
        """Run the model and record activations by TransformerLens hook name.

        Args:
            tokens: ``(B, T)`` token ids.
            names: hook names to record (default: all of ``hook_names()``).
            return_logits: if False, skip the unembedding (cheaper when only MLP activations
                are needed) and return ``None`` for the logits.

        Returns:
            ``(logits, cache)``; ``cache[name]`` is a tensor (not detached from autograd).
        """
        if names is not None:
            names = list(names)
            unknown = sorted(set(names) - set(self.hook_names()))
            if unknown:
                raise KeyError(f"unknown hook name(s) {unknown}; valid names: {self.hook_names()}")
        cache = ActivationCache(names)
        out = self.forward(tokens, cache, stop_after_blocks=not return_logits)
        return (out if return_logits else None), cache

    def n_params(self, non_embedding: bool = True) -> int:
        """Parameter count; by default without W_E, W_pos, W_U, b_U (the scaling-law N)."""
        embedding = {"W_E", "W_pos", "W_U", "b_U"}
        return sum(p.numel() for n, p in self.named_parameters()
                   if not (non_embedding and n in embedding))


def next_token_loss(logits: Tensor, tokens: Tensor, per_token: bool = False) -> Tensor:
    """Cross-entropy of predicting ``tokens[:, 1:]`` from ``logits[:, :-1]`` (in float32).

    The plain computation, for logits that exist anyway (e.g. a TransformerLens model's).
    Training and evaluation use ``model_loss``, which computes the same numbers without
    the logits of the last position or any full logits tensor.

    Returns the mean loss, or ``(B, T-1)`` per-token losses if ``per_token``.
    """
    logits = logits[:, :-1].float()
    targets = tokens[:, 1:]
    losses = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                             reduction="none").view(targets.shape)
    return losses if per_token else losses.mean()


def model_loss(model: nn.Module, tokens: Tensor, per_token: bool = False) -> Tensor:
    """``next_token_loss(model(tokens), tokens)``, computed the cheap way.

    The last position predicts nothing that is scored, and under a causal mask no other
    position depends on it, so the model runs on ``tokens[:, :-1]`` with targets
    ``tokens[:, 1:]``: the same losses (up to float rounding), one position fewer, and no
    logits tensor (``forward(targets=...)``). ``model`` may be a ``Transformer`` or a wrapper
    of one that passes keyword arguments on (DistributedDataParallel, torch.compile).
    """
    return model(tokens[:, :-1], targets=tokens[:, 1:], per_token=per_token)
