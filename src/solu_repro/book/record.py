"""The record of scored claims: what each chapter saves and chapter 8 reads.

A chapter decides its claims (``solu_repro.paper.registry.decide``), saves them here
(``record``) and glues each claim's sentence into its text (``glue_claims``). Chapter 8 loads
the saved claims (``load``) and renders them.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Iterable, Sequence

from myst_nb import glue

from ..atomic import write_text
from ..paper.claim import Claim
from ..paper.registry import CHAPTERS, CLAIMS
from ..zoo import zoo_configs


class MissingClaims(RuntimeError):
    """A chapter's scored claims are not saved (or were saved for another zoo)."""


def claims_dir(ctx) -> Path:
    return Path(ctx.runs_dir) / ctx.scale / "claims"


def zoo_fingerprint(ctx) -> str:
    """A digest of the zoo's run hashes: claims saved for another zoo are stale."""
    hashes = sorted(f"{n}:{c.run_hash()}" for n, c in zoo_configs(ctx.scale).items())
    return hashlib.sha256("\n".join(hashes).encode()).hexdigest()[:16]


def save(ctx, chapter: str, claims: Sequence[Claim]) -> Path:
    """Save ``chapter``'s scored claims (atomically) for chapter 8; every registry claim of
    the chapter must be among them, and no other."""
    want = {c.id for c in CLAIMS if c.chapter == chapter}
    got = [c.id for c in claims]
    if len(set(got)) != len(got):
        raise ValueError(f"{chapter}: a claim is scored twice: {got}")
    if set(got) != want:
        raise ValueError(f"{chapter} must score exactly its registry claims {sorted(want)}; "
                         f"missing {sorted(want - set(got))}, foreign {sorted(set(got) - want)}")
    path = claims_dir(ctx) / f"{chapter}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"chapter": chapter, "zoo": zoo_fingerprint(ctx), "scale": ctx.scale,
               "claims": [c.to_dict() for c in claims]}
    write_text(path, json.dumps(payload, indent=1, ensure_ascii=False))
    return path


def load(ctx, chapters: Iterable[str] | None = None) -> list[Claim]:
    """Every saved claim, in registry order; ``MissingClaims`` names the notebooks to run."""
    chapters = list(chapters or CHAPTERS)
    fingerprint = zoo_fingerprint(ctx)
    found: dict[str, Claim] = {}
    missing = []
    for chapter in chapters:
        path = claims_dir(ctx) / f"{chapter}.json"
        try:
            payload = json.loads(path.read_text())
        except FileNotFoundError:
            missing.append(f"{chapter} (nothing saved in {path})")
            continue
        except (OSError, ValueError) as exc:
            missing.append(f"{chapter} ({path} is unreadable: {exc})")
            continue
        if payload.get("zoo") != fingerprint:
            missing.append(f"{chapter} (saved for another zoo)")
            continue
        for d in payload["claims"]:
            found[d["id"]] = Claim.from_dict(d)
    if missing:
        raise MissingClaims(
            "the scorecard renders the claims the chapters saved, and these are missing: "
            + "; ".join(missing) + f". Run those notebooks at scale={ctx.scale!r} with the "
            "same runs_dir first (`solu-repro book` runs them all in order)")
    return [found[c.id] for c in CLAIMS if c.id in found]


def glue_claims(claims: Iterable[Claim]) -> None:
    """Glue each claim's sentence (``claim_<id>``) and verdict (``verdict_<id>``) for the text."""
    for c in claims:
        glue(f"claim_{c.id}", c.sentence, display=False)
        glue(f"verdict_{c.id}", c.verdict, display=False)
