"""Paper §6.3 (what the neurons do), chapters 5 and 6: 1-layer neurons' direct logit effects against their dataset examples (§6.3.1), and neuron roles across layers (§6.3.2-6.3.4).

Measurements only: pure functions from runs, scores and harvests to results and to
scored claims. No plotting, widgets or HTML here (``solu_repro.book`` presents them).
"""

from __future__ import annotations

from .claim import EMPIRICAL, IDENTITY, SEED_RULE, ClaimSpec

# --- the claims this section decides ---------------------------------------------------
LOGIT_AGREEMENT = ClaimSpec("logit_agreement", "§6.3.1", "In 1-layer models the neurons' direct logit "
      "effects corroborate their dataset examples", "qualitative (neuron by neuron)",
      EMPIRICAL, "05-one-layer-neurons",
      "per 1-layer SoLU-LN seed, the median over neurons of the percentile, in the "
      "neuron's direct logit effect, of the tokens that follow its 20 strongest "
      "firings, for the judge's interpretable neurons minus a seeded random sample of "
      "64 live neurons of the same model (the control); t interval over the per-seed "
      "differences: reproduced if it is above 0, direction only if the seed mean is; "
      "not testable if no seed has an interpretable neuron; " + SEED_RULE)

EARLY_DETOKENIZATION = ClaimSpec("early_detokenization", "§6.3.2", "SoLU helps early-layer neurons: the first "
      "layer holds more de-tokenization neurons than the baseline's", "qualitative",
      EMPIRICAL, "06-neurons-across-layers",
      "share of the first layer's neurons (all of them) that the judge calls "
      "interpretable with a de-tokenization explanation (previous token or bigram), "
      "SoLU-LN minus GELU of the same depth (the deepest pair; 95% Newcombe interval "
      "over neurons, one seed each): one seed, so at most direction only: direction "
      "only if the point estimate is above 0, not reproduced if the whole interval is "
      "at or below 0, inconclusive otherwise; not testable if neither first layer has "
      "an interpretable neuron")

LATE_RETOKENIZATION = ClaimSpec("late_retokenization", "§6.3.3", "Late layers hold re-tokenization neurons",
      "qualitative", EMPIRICAL, "06-neurons-across-layers",
      "share of re-tokenization neurons (a next-token explanation confirmed by the "
      "neuron's own direct logit effect) among the interpretable neurons of the "
      "deepest SoLU-LN model, last layer minus its other layers (95% Newcombe interval "
      "over neurons, one seed, so at most direction only): direction only if the point "
      "estimate is above 0, not reproduced if the whole interval is at or below 0, "
      "inconclusive otherwise; not testable if either group has no interpretable "
      "neuron")

MIDDLE_ABSTRACT = ClaimSpec("middle_abstract", "§6.3.4", "Middle layers hold more abstract neurons "
      "(features that are not a fixed token or token sequence); measured here as "
      "token-class neurons, the nearest the explanation family reaches", "qualitative",
      EMPIRICAL, "06-neurons-across-layers",
      "share of neurons whose explanation is a token class or text pattern (digits, "
      "numbers, capitalized or ALL-CAPS words, punctuation, whitespace, line breaks, a "
      "year, a URL, hexadecimal, base64, indentation) among the interpretable neurons "
      "of the deepest SoLU-LN model, middle layers minus its first and last layers "
      "(95% Newcombe interval over neurons, one seed, so at most direction only): "
      "direction only if the point estimate is above 0, not reproduced if the whole "
      "interval is at or below 0, inconclusive otherwise; not testable below 3 layers "
      "or if either group has no interpretable neuron")

CLAIMS: tuple[ClaimSpec, ...] = (LOGIT_AGREEMENT, EARLY_DETOKENIZATION, LATE_RETOKENIZATION, MIDDLE_ABSTRACT,)
