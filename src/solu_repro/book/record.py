"""The record of scored claims: what each chapter saves and chapter 9 reads.

A chapter decides its claims (``solu_repro.paper.registry.decide``), saves them here
(``save``) and glues each claim's sentence into its text (``glue_claims``). Chapter 9 loads
the saved claims (``load``) and renders them.

A saved record is keyed by everything that made it (``keys.claims_key``): the chapter's
papermill parameters (all but ``keys.NOT_IN_KEY``, ``runs_dir`` resolved), the zoo's
fingerprint, the package's code and the chapter's notebook. Each notebook passes its
parameters explicitly::

    record.save(ctx, "07-layernorm", chapter_claims, parameters=dict(
        scale=scale, runs_dir=runs_dir, seed=seed, ...))    # every name of its parameters cell

and ``save`` refuses a call that leaves one out. ``load`` refuses (``StaleClaims``) a record
whose key differs from the book about to be published: in a ``solu-repro book`` build
(``book_root`` given) the chapter's executed copy there, else the chapter's notebook at its
defaults with the caller's scale, seed and runs_dir, on the current code.
"""

from __future__ import annotations

import hashlib
import json
import shlex
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from myst_nb import glue

from ..atomic import write_text
from ..paper.claim import Claim
from ..paper.registry import CHAPTERS, CLAIMS
from . import keys

SCORECARD = "09-scorecard"
"""The chapter that renders the saved records (``solu-repro book`` passes it ``book_root``)."""


class MissingClaims(RuntimeError):
    """A chapter's scored claims are not saved (or cannot be read)."""


class StaleClaims(MissingClaims):
    """A chapter's saved claims were made from other inputs than the book publishes."""


def claims_dir(ctx) -> Path:
    return Path(ctx.runs_dir) / ctx.scale / "claims"


def claims_path(runs_dir: Path | str, scale: str, chapter: str) -> Path:
    return Path(runs_dir) / scale / "claims" / f"{chapter}.json"


def zoo_fingerprint(ctx) -> str:
    """A digest of the zoo's run hashes: claims saved for another zoo are stale."""
    return keys.zoo_fingerprint(ctx.scale)


def notebook_path(chapter: str) -> Path:
    """The chapter's notebook: ``<chapter>.ipynb`` in the working directory (a kernel runs in
    its notebook's folder: the checkout's notebooks/ under papermill and the book, a copy's
    folder in JupyterLab), else ``notebooks/<chapter>.ipynb`` of the checkout found from the
    working directory, else of the checkout this package is installed from (editable)."""
    package_checkout = Path(__file__).resolve().parents[3]
    candidates = [Path.cwd() / f"{chapter}.ipynb", keys.notebooks_dir() / f"{chapter}.ipynb",
                  package_checkout / "notebooks" / f"{chapter}.ipynb"]
    for path in candidates:
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"no notebook {chapter}.ipynb in {Path.cwd()} or {candidates[1].parent}: a chapter's "
        "claims are keyed by its notebook; run the notebook from its own folder, or from the "
        "solu-repro checkout (`cd` into it)")


def default_parameters(ctx, chapter: str) -> dict[str, Any]:
    """The chapter's parameters at its notebook's defaults, with ``ctx``'s scale, seed and
    runs_dir: what chapter 9 run by hand expects, and what ``save`` records when it is not
    passed the parameters (a script or test scoring a chapter outside its notebook)."""
    return {**keys.notebook_parameters(notebook_path(chapter)), "scale": ctx.scale,
            "seed": getattr(ctx, "seed", 0), "runs_dir": ctx.runs_dir}


def claims_key(ctx, chapter: str, parameters: Mapping[str, Any] | None = None
               ) -> dict[str, Any]:
    """The key of ``chapter``'s claims made with ``parameters`` (None: its defaults, see
    ``default_parameters``) at ``ctx``'s scale and runs_dir, on the current code and notebook.
    """
    nb = notebook_path(chapter)
    if parameters is None:
        parameters = default_parameters(ctx, chapter)
    else:
        declared = keys.notebook_parameters(nb)
        missing = [n for n in declared if n not in parameters]
        unknown = [n for n in parameters if n not in declared]
        if missing or unknown:
            wrong = ", ".join(([f"missing {', '.join(missing)}"] if missing else [])
                              + ([f"unknown {', '.join(unknown)}"] if unknown else []))
            raise ValueError(
                f"record.save({chapter!r}, ..., parameters=dict(...)) must pass every "
                f"parameter of the parameters cell of {nb} and no other ({wrong}): make the "
                "notebook's record.save call pass exactly the names of its parameters cell")
        parameters = {**parameters, "runs_dir": ctx.runs_dir}
    return keys.claims_key(nb, parameters, keys.zoo_fingerprint(ctx.scale))


def save(ctx, chapter: str, claims: Sequence[Claim],
         parameters: Mapping[str, Any] | None = None) -> Path:
    """Save ``chapter``'s scored claims (atomically) for chapter 9, keyed by what made them;
    every registry claim of the chapter must be among them, and no other.

    ``parameters``: the notebook's parameters, every name of its ``parameters`` cell (the
    notebooks pass them; ``tests/reliability/test_book_keys.py`` checks each call names them
    all). None, for scripts and tests outside a notebook: the chapter's defaults.
    """
    want = {c.id for c in CLAIMS if c.chapter == chapter}
    got = [c.id for c in claims]
    if len(set(got)) != len(got):
        raise ValueError(f"{chapter}: a claim is scored twice: {got}")
    if set(got) != want:
        raise ValueError(f"{chapter} must score exactly its registry claims {sorted(want)}; "
                         f"missing {sorted(want - set(got))}, foreign {sorted(set(got) - want)}")
    path = claims_path(ctx.runs_dir, ctx.scale, chapter)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"chapter": chapter, "scale": ctx.scale,
               "key": claims_key(ctx, chapter, parameters),
               "claims": [c.to_dict() for c in claims]}
    write_text(path, json.dumps(payload, indent=1, ensure_ascii=False))
    return path


def saved(runs_dir: Path | str, scale: str, chapter: str) -> tuple[Any, str | None]:
    """(the key of ``chapter``'s saved record or None, a digest of the record file or None
    when there is none): what the book build compares with an executed chapter."""
    path = claims_path(runs_dir, scale, chapter)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None, None
    try:
        key = json.loads(data).get("key")
    except (ValueError, AttributeError):
        key = None
    return key, hashlib.sha256(data).hexdigest()


def published_key(book_root: Path | str, chapter: str) -> dict[str, Any]:
    """The claim key of the chapter a ``solu-repro book`` build publishes in ``book_root``
    (stored in its executed copy's metadata)."""
    executed = Path(book_root) / keys.EXECUTED / f"{chapter}.ipynb"
    try:
        inputs = json.loads(executed.read_text())["metadata"][keys.METADATA_KEY]["inputs"]
        return inputs["claims"]
    except (OSError, ValueError, KeyError, TypeError):
        raise StaleClaims(
            f"the book in {book_root} publishes no executed chapter {chapter} with a claim key "
            f"({executed} is missing or was built by an older solu-repro): rebuild it with "
            f"`solu-repro book --output {shlex.quote(str(book_root))}` and the scale and "
            "runs directory of this book") from None


def check_book_root(value: Any) -> Path | None:
    """Chapter 9's ``book_root`` parameter: None (run by hand), or the root of the book that
    ``solu-repro book`` is building, holding its executed chapters."""
    from .context import ParameterError

    if value is None or value == "":
        return None
    if not isinstance(value, (str, Path)) or not (Path(value) / keys.EXECUTED).is_dir():
        raise ParameterError(
            f"parameter book_root={value!r} is invalid: it must be None (the default) or a "
            f"book root holding {keys.EXECUTED}/ (`solu-repro book` passes it); run chapter 9 "
            "without it: `papermill notebooks/09-scorecard.ipynb /tmp/09-scorecard.ipynb`")
    return Path(value)


def _fix(ctx, stale: dict[str, dict[str, Any]], book_root: Path | str | None) -> str:
    """One command that makes the stale chapters' records match what the book publishes."""
    runs = shlex.quote(keys.resolved_runs_dir(ctx.runs_dir))
    book = f"solu-repro book --scale {ctx.scale} --runs-dir {runs}"
    if book_root is not None:
        return f"{book} --output {shlex.quote(str(Path(book_root).resolve()))}"

    def by_default(chapter: str) -> bool:   # what the book build would run it with
        defaults = keys.key_parameters(keys.notebook_parameters(notebook_path(chapter)))
        wanted = stale[chapter]["parameters"]
        return all(wanted.get(n) == v for n, v in defaults.items() if n != "runs_dir")

    if all(by_default(chapter) for chapter in stale):
        # at the notebooks' defaults, the book build re-executes exactly the chapters needed
        return book
    return " && ".join(
        f"papermill {shlex.quote(str(notebook_path(chapter)))} /tmp/{chapter}.ipynb "
        + " ".join(f"-p {n} {shlex.quote(str(expected['parameters'][n]))}"
                   for n in ("scale", "seed") if n in expected["parameters"])
        + f" -p runs_dir {runs}" for chapter, expected in stale.items())


def load(ctx, chapters: Iterable[str] | None = None,
         book_root: Path | str | None = None) -> list[Claim]:
    """Every saved claim, in registry order.

    ``MissingClaims`` names the notebooks to run; ``StaleClaims`` names each chapter whose
    record was made from other inputs than the book publishes, and what differs: in a book
    build (``book_root``: its root) the key of the chapter's executed copy there, else the
    chapter's notebook at its defaults with ``ctx``'s scale, seed and runs_dir on the current
    code (``default_parameters``).
    """
    chapters = list(chapters or CHAPTERS)
    found: dict[str, Claim] = {}
    missing, stale, expected_keys = [], [], {}
    for chapter in chapters:
        path = claims_path(ctx.runs_dir, ctx.scale, chapter)
        try:
            payload = json.loads(path.read_text())
            records = payload["claims"]
        except FileNotFoundError:
            missing.append(f"{chapter} (nothing saved in {path})")
            continue
        except (OSError, ValueError, KeyError, TypeError) as exc:
            missing.append(f"{chapter} ({path} is unreadable: {exc})")
            continue
        expected = (published_key(book_root, chapter) if book_root is not None
                    else claims_key(ctx, chapter))
        _, phrases = keys.differences(payload.get("key"), expected)
        if phrases:
            stale.append(f"chapter {chapter}'s saved claims ({path}) do not match it: "
                         + "; ".join(phrases))
            expected_keys[chapter] = expected
            continue
        for d in records:
            found[d["id"]] = Claim.from_dict(d)
    if missing:
        raise MissingClaims(
            "the scorecard renders the claims the chapters saved, and these are missing: "
            + "; ".join(missing) + f". Run those notebooks at scale={ctx.scale!r} with the "
            "same runs_dir first (`solu-repro book` runs them all in order)")
    if stale:
        published = "the book in " + str(book_root) if book_root is not None else "this book"
        raise StaleClaims(
            f"the scorecard would contradict the chapters of {published}: "
            + "; ".join(stale) + f". Re-run {'it' if len(stale) == 1 else 'them'}: `"
            + _fix(ctx, expected_keys, book_root) + "`")
    return [found[c.id] for c in CLAIMS if c.id in found]


def glue_claims(claims: Iterable[Claim]) -> None:
    """Glue each claim's sentence (``claim_<id>``) and verdict (``verdict_<id>``) for the text."""
    for c in claims:
        glue(f"claim_{c.id}", c.sentence, display=False)
        glue(f"verdict_{c.id}", c.verdict, display=False)
