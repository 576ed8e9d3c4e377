"""Paper §6.4 (the extra LayerNorm), chapter 7: are low-activation examples less consistent with a neuron's feature after the LN than before it?

Measurements only: pure functions from runs, scores and harvests to results and to
scored claims. No plotting, widgets or HTML here (``solu_repro.book`` presents them).
"""

from __future__ import annotations

from .claim import EMPIRICAL, IDENTITY, SEED_RULE, ClaimSpec

# --- the claims this section decides ---------------------------------------------------
LN_LOW_ACTIVATION = ClaimSpec("ln_low_activation", "§6.4 / Figure 9", "After the extra LN, low-activation "
      "examples are more often inconsistent with the neuron's feature", "much more "
      "(one neuron, ~1000 examples, not blinded)", EMPIRICAL, "07-layernorm",
      "neurons whose explanation holds up on held-out rows (the scorer's interpretable "
      "neurons: chosen on the even rows' top firings, covering at least 80% of the odd "
      "rows' top firings at 3x or more their base rate); every token of the odd rows; "
      "equal-count quantile bands of each hook's positive activations; per neuron, the "
      "inconsistent fraction of the low bands (the weaker half of the firings) after "
      "the LN minus before it; mean over neurons pooled over the 1-layer seeds, 95% BCa "
      "bootstrap over neurons; the same for GELU-LN is the control: reproduced if "
      "SoLU-LN's difference and SoLU-LN minus GELU-LN both have intervals above 0; "
      "direction only if both point estimates are above 0 but an interval includes 0, "
      "or there is no control; not reproduced if SoLU-LN's difference is not above 0 "
      "or not above GELU-LN's and its interval does not reach above 0 (inconclusive "
      "if it does); not testable without a SoLU-LN neuron to compare")

CLAIMS: tuple[ClaimSpec, ...] = (LN_LOW_ACTIVATION,)
