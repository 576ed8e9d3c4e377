"""What the evaluator is told and what they may answer (paper §6.1)."""

from __future__ import annotations

# paper §6.1, quoted verbatim (including its mismatched quotation marks).
PAPER_INSTRUCTION = ("80% or more of the strongest firings can be explained by a single rule or "
                     "category (e.g. the word “apple,\" or any phrase relating to music)")
INSTRUCTION = (f"Mark INTERPRETABLE if “{PAPER_INSTRUCTION},” and NOT INTERPRETABLE "
               "otherwise.")
TIME_HINT = "The paper's evaluators spent 1-2 minutes per neuron (§6.1)."

JUDGMENTS = ("interpretable", "not_interpretable", "skip")
