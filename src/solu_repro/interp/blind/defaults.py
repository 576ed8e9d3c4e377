"""The defaults of a new blind session, in one place.

``BlindSession.create``, ``solu-repro blind`` (its options and their help) and the book's
chapter 4 (``solu_repro.book.ch04_interpretability``) all read them from here.
"""

from __future__ import annotations

DEFAULT_MODELS = ("1L-gelu", "1L-solu_ln")  # the paper's comparison at its smallest size
DEFAULT_SCALE = "cpu"                        # the zoo scale of the published book
DEFAULT_N_PER_MODEL = 60                     # paper §6.1: 60 neurons per model
DEFAULT_N_EXAMPLES = 20                      # paper §6.1: "typically 20" dataset examples
DEFAULT_SEED = 0                             # of the draw and of the shuffle
DEFAULT_HOOK = "mid"                         # SoLU(x) before its LayerNorm: what the paper read
