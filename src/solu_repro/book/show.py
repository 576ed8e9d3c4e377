"""Show, on a chapter's page, the code that defines its numbers.

d2l's rule is that the code on the page is the library's code: a chapter displays the
package's own function (``show_source``) instead of a copy that could drift from it, and each
claim's verdict rule beside the function that applies it (``show_claim``)."""

from __future__ import annotations

import inspect
import re
import textwrap
from typing import Any, Callable

from IPython.display import Markdown

from ..paper.claim import ClaimSpec


def fenced(code: str, language: str = "python") -> str:
    """``code`` in a fenced Markdown block whose fence is longer than any backtick run in it."""
    longest = max((len(run) for run in re.findall(r"`+", code)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{language}\n{code.rstrip()}\n{fence}"


def source_markdown(*objs: Callable[..., Any] | type) -> str:
    """The source of each of ``objs`` (as the package runs it; a property's getter), as fenced
    Markdown."""
    return "\n\n".join(fenced(textwrap.dedent(inspect.getsource(
        obj.fget if isinstance(obj, property) else obj))) for obj in objs)


def show_source(*objs: Callable[..., Any] | type) -> Markdown:
    """``display(show_source(f))``, or leave it last in a cell: ``f``'s source on the page."""
    return Markdown(source_markdown(*objs))


def claim_markdown(spec: ClaimSpec) -> str:
    """A claim's statement, the paper's number, its rule in words and the source of the
    ``decide`` function that applies the rule."""
    if spec.decide is None:
        raise ValueError(f"claim {spec.id} has no decide function to show")
    return (f"**{spec.section}: {spec.statement}** (paper: {spec.paper}).\n\n"
            f"*Rule:* {spec.rule}.\n\n" + source_markdown(spec.decide))


def show_claim(*specs: ClaimSpec) -> Markdown:
    """Each claim's rule and the code that decides it, for a chapter page."""
    return Markdown("\n\n".join(claim_markdown(s) for s in specs))
