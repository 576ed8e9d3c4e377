"""Paper §5 (performance), chapter 3: losses, the baseline's scaling law and the effective size multiplier (Figure 1), loss parity, the §4.3 no-LN penalty, §4.4 blocked SoLU-LN, per-source loss (the Figure 2 proxy) and speed.

Measurements only: pure functions from runs, scores and harvests to results and to
scored claims. No plotting, widgets or HTML here (``solu_repro.book`` presents them).
"""

from __future__ import annotations

from .claim import EMPIRICAL, IDENTITY, SEED_RULE, ClaimSpec

# --- the claims this section decides ---------------------------------------------------
SIZE_MULTIPLIER = ClaimSpec("size_multiplier", "§5 / Figure 1", "SoLU-LN performs like a baseline of "
      "0.95x-1.05x its size", "0.95x-1.05x", EMPIRICAL, "03-performance",
      "every depth's multiplier within 0.95x-1.05x; not testable without a monotone "
      "baseline scaling law or when only bounds exist")

LOSS_PARITY = ClaimSpec("loss_parity", "§5", "SoLU-LN's loss is within about ±0.01 nats of the "
      "baseline's", "±0.01 nats", EMPIRICAL, "03-performance",
      "TOST equivalence test over matched 1-layer seed pairs with the paper's margin "
      "±0.01 nats: reproduced if equivalent at α = 0.05; direction only if only "
      "non-inferior (the 90% interval's upper end below +0.01: SoLU-LN not worse); "
      "not reproduced if the 90% interval lies wholly outside ±0.01; inconclusive "
      "otherwise (the interval straddles the margin)")

DOWNSTREAM = ClaimSpec("downstream", "§5 / Figure 2", "Similar downstream-task performance, no "
      "systematic trend", "similar on Lambada, ARC, OpenBookQA, HellaSwag, MMLU, "
      "TriviaQA, arithmetic", EMPIRICAL, "03-performance",
      "the tasks need models far larger than ours; per-source loss is shown as a "
      "proxy")

NO_LN_PENALTY = ClaimSpec("no_ln_penalty", "§4.3", "SoLU without LN performs like a model 30-50% smaller",
      "0.5x-0.7x", EMPIRICAL, "03-performance",
      "SoLU (no LN) minus GELU loss over matched seeds, and its size multiplier: "
      "reproduced if the seed interval of the loss gap is above 0 and the multiplier "
      "is within 0.5x-0.7x; direction only if the gap's seed mean is above 0 (or its "
      "interval is, with the size outside or not convertible); otherwise " 
      "inconclusive, or not reproduced if the whole interval is at or below 0")

SPEED = ClaimSpec("speed", "§5", "SoLU slows training by less than 1% (with proper GPU kernels)",
      "< 1%", EMPIRICAL, "03-performance",
      "on a CPU not testable by design (eager CPU timing cannot test fused GPU "
      "kernels). On a GPU the unfused step is timed: reproduced if even its 90% CI of "
      "the SoLU-LN/GELU step-time ratio lies below 1.01 (a fused kernel only does "
      "better); inconclusive otherwise (an unfused overhead above 1% says nothing "
      "about a fused kernel)")

BLOCKED_LOSS = ClaimSpec("blocked_loss", "§4.4", "Blocking SoLU's softmax and LN (for tensor "
      "parallelism) has no substantial effect on performance", "no substantial "
      "effect", EMPIRICAL, "03-performance",
      "blocked SoLU-LN (4 blocks) minus SoLU-LN loss over seeds: reproduced if the "
      "TOST with margin ±0.01 nats finds them equivalent; direction only if the "
      "blocked model is non-inferior; not reproduced if the 90% interval lies wholly "
      "outside ±0.01; inconclusive otherwise")

CLAIMS: tuple[ClaimSpec, ...] = (SIZE_MULTIPLIER, LOSS_PARITY, DOWNSTREAM, NO_LN_PENALTY, SPEED, BLOCKED_LOSS,)
