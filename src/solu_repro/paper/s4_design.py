"""Paper §3-4 (the design of SoLU), chapter 2: the identities and worked examples of §4, and the sparsity of trained models' SoLU activations (§4.1-4.2).

Measurements only: pure functions from runs, scores and harvests to results and to
scored claims. No plotting, widgets or HTML here (``solu_repro.book`` presents them).
"""

from __future__ import annotations

from .claim import EMPIRICAL, IDENTITY, SEED_RULE, ClaimSpec

# --- the claims this section decides ---------------------------------------------------
WORKED_EXAMPLES = ClaimSpec("worked_examples", "§4.2", "SoLU(4,1,4,1) ≈ (2,0,2,0), SoLU(4,0,0,0) ≈ (4,0,0,0), "
      "SoLU(1,1,1,1) ≈ (1/4,1/4,1/4,1/4)", "≈ the stated vectors", IDENTITY,
      "02-solu-design", "every example within the stated tolerance of the stated value "
      "(the paper writes ≈)")

GELU_SIGMOID = ClaimSpec("gelu_sigmoid", "§4.2", "GELU is approximated closely by sigmoid(1.7x)·x",
      "closely", IDENTITY, "02-solu-design",
      "max deviation over [-10, 10] below the stated closeness")

LN_IDENTITIES = ClaimSpec("ln_identities", "§4.3", "LN is scale invariant; LN(SoLU(x)) = LN(x·exp(x))",
      "exact identities", IDENTITY, "02-solu-design", "both below 1e-9 in float64")

TRAINED_SPARSITY = ClaimSpec("trained_sparsity", "§4.1-4.2", "SoLU's activations are sparse and superlinear "
      "in trained models: a neuron's output is concentrated in its few largest "
      "activations, more than GELU's", "qualitative (the design's purpose)", EMPIRICAL,
      "02-solu-design", "median over positions of the share of each position's positive "
      "pre-LN activation (hook_mid) held by its top neuron, per 1-layer model; SoLU-LN "
      "minus GELU over matched seeds (paired t); " + SEED_RULE + "; reproduced if the "
      "seed interval is above 0, direction only if the seed mean is; the same models "
      "untrained (same init) are reported as the control")

CLAIMS: tuple[ClaimSpec, ...] = (WORKED_EXAMPLES, GELU_SIGMOID, LN_IDENTITIES, TRAINED_SPARSITY,)
