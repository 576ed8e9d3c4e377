"""``solu-repro blind``: judge a session's neurons in the terminal, or unblind it.

At every prompt, ``q`` (or ``quit``, ``exit``) and end of input (Ctrl-D) quit, after recording
what was already answered for the neuron on screen; running the same command resumes. Ctrl-C
quits at once and leaves that neuron unjudged. A hypothesis that is one of the quit words is
given on the judgment line instead: ``i q`` records "interpretable" with the hypothesis "q".
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from ...pretrained import is_published
from ..harvest import HOOKS
from .defaults import (
    DEFAULT_HOOK,
    DEFAULT_MODELS,
    DEFAULT_N_EXAMPLES,
    DEFAULT_N_PER_MODEL,
    DEFAULT_SCALE,
    DEFAULT_SEED,
)
from .errors import BlindError
from .protocol import INSTRUCTION, TIME_HINT
from .render import Renderer, SnippetRenderer, load_zoo_entries
from .report import unblind
from .session import MANIFEST_NAME, BlindSession, default_evaluator, refuse_orphan_judgments

QUIT_WORDS = ("q", "quit", "exit")
PROMPT = "[i]nterpretable / [n]ot / [s]kip / [q]uit (optionally followed by a hypothesis): "
HYPOTHESIS_PROMPT = "hypothesis (optional; Enter for none, q to record the judgment and quit): "
KEYS = ("q, quit, exit or Ctrl-D at any prompt records what you answered and quits (run the "
        "same command to resume); Ctrl-C quits without the neuron on screen. To record the "
        "hypothesis \"q\", type it after the judgment: i q")
SEPARATOR = "\n" * 3 + "=" * 78
_ANSWERS = {"i": "interpretable", "interpretable": "interpretable",
            "n": "not_interpretable", "not": "not_interpretable",
            "not_interpretable": "not_interpretable", "s": "skip", "skip": "skip",
            **{word: "quit" for word in QUIT_WORDS}}


def add_blind_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``solu-repro blind`` (wired up in ``solu_repro.cli``)."""
    from ... import zoo

    parser.epilog = KEYS
    parser.add_argument("--session", type=Path, required=True, metavar="DIR",
                        help="session directory: created if new, resumed if it exists")
    # Options of a new session default to None, so that resuming can tell which were given.
    parser.add_argument("--scale", choices=sorted(zoo.SCALES), default=None,
                        help=f"zoo scale of the models (new sessions; default {DEFAULT_SCALE})")
    parser.add_argument("--models", "--model", nargs="+", default=None, metavar="NAME",
                        help="zoo models to compare, or released ones (tl:solu-1l, "
                             "tl:<directory>; read on the default corpus in their own "
                             "tokenizer) (new sessions; default: "
                             f"{' '.join(DEFAULT_MODELS)})")
    parser.add_argument("--sources", nargs="+", default=None, metavar="SOURCE",
                        help="released models only: the corpus, in their own tokenizer "
                             "(new sessions; default: the embedded default corpus; or "
                             "files:<glob>, hf:<name>)")
    parser.add_argument("--n", type=int, default=None,
                        help="neurons per model (new sessions; default "
                             f"{DEFAULT_N_PER_MODEL}, as in the paper)")
    parser.add_argument("--seed", type=int, default=None,
                        help=f"seed of the draw and the order (new sessions; default "
                             f"{DEFAULT_SEED})")
    parser.add_argument("--layers", type=int, nargs="+", default=None,
                        help="draw only from these layers (new sessions; default all)")
    parser.add_argument("--hook", choices=HOOKS, default=None,
                        help="activation shown: mid (paper, before SoLU's LN) or post (new "
                             f"sessions; default {DEFAULT_HOOK})")
    parser.add_argument("--n-examples", type=int, default=None,
                        help=f"dataset examples per neuron (new sessions; default "
                             f"{DEFAULT_N_EXAMPLES})")
    parser.add_argument("--evaluator", default=None,
                        help="your name (default: login name); judgments are kept per evaluator")
    parser.add_argument("--unblind", action="store_true",
                        help="print the unblinded results instead of judging")
    parser.add_argument("--color", action=argparse.BooleanOptionalAction, default=None,
                        help="colour firing tokens in the terminal (default: if a terminal)")
    parser.add_argument("--runs-dir", type=Path, default=None,
                        help="trained runs (default: $SOLU_RUNS_DIR or ./runs)")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="corpus cache (default: $SOLU_DATA_DIR or ./data)")


def _check_zoo_names(names: Sequence[str], scale: str) -> None:
    from ... import zoo

    known = zoo.zoo_configs(scale)
    unknown = [n for n in names if n not in known and not is_published(n)]
    if unknown:
        raise BlindError(f"unknown model(s) {unknown} at scale {scale!r}: choose from "
                         f"{sorted(known)}")
    if len(set(names)) != len(names):
        raise BlindError(f"--models lists a model twice: {list(names)}")


def _check_resume_options(session: BlindSession, args: argparse.Namespace) -> None:
    """Options given when resuming must agree with the session (they cannot change it)."""
    s = session.settings
    given = {"--models": (None if args.models is None else list(args.models), s["models"]),
             "--n": (args.n, s["n_per_model"]), "--seed": (args.seed, s["seed"]),
             "--layers": (None if args.layers is None else sorted(set(args.layers)), s["layers"]),
             "--hook": (args.hook, s["hook"]), "--n-examples": (args.n_examples, s["n_examples"])}
    if "scale" in session.meta:  # sessions made from Python may not record a zoo scale
        given["--scale"] = (args.scale, session.meta["scale"])
    for option, (asked, has) in given.items():
        if asked is not None and asked != has:
            raise BlindError(
                f"session {session.path} was created with {option} {has}, not {asked}: "
                "drop the option to resume it, or pick another --session to start anew")


def _harvest_k(n_examples: int) -> int:
    # Harvest at least the paper's 20 top firings, as the book does, so its cached harvest
    # is the one reused.
    return max(DEFAULT_N_EXAMPLES, n_examples)


def _ask(input_fn: Callable[[str], str], print_fn: Callable[..., Any]) -> tuple[str, str | None]:
    """``(judgment or "quit", inline hypothesis or None)``; end of input means quit."""
    while True:
        try:
            raw = input_fn(PROMPT)
        except EOFError:
            return "quit", None
        parts = raw.strip().split(maxsplit=1)
        answer = _ANSWERS.get(parts[0].lower().rstrip(":")) if parts else None
        if answer is not None:
            return answer, parts[1].strip() if len(parts) > 1 else None
        print_fn("please answer i, n, s or q")


def _ask_hypothesis(input_fn: Callable[[str], str]) -> str | None:
    """The optional hypothesis ("" for none), or None to quit (a quit word or end of input)."""
    try:
        raw = input_fn(HYPOTHESIS_PROMPT).strip()
    except EOFError:
        return None
    return None if raw.lower() in QUIT_WORDS else raw


def judge_loop(session: BlindSession, renderer: Renderer, evaluator: str,
               input_fn: Callable[[str], str] = input,
               print_fn: Callable[..., Any] = print) -> int:
    """Judge the evaluator's remaining items in the terminal until done or quit.

    Quitting at the hypothesis prompt records the judgment just given (without a hypothesis)
    first; see the module docstring for the keys.

    Returns:
        0 when done or quit, 130 on Ctrl-C.
    """
    print_fn(KEYS)
    while (item := session.next_item(evaluator)) is not None:
        done, total = session.progress(evaluator)
        print_fn(SEPARATOR)
        print_fn(f"{done} / {total} judged   (evaluator {evaluator}, {item.item})")
        print_fn(f"{INSTRUCTION}\n{TIME_HINT}\n")
        print_fn(renderer.text(item))
        shown_at = time.monotonic()
        try:
            answer, hypothesis = _ask(input_fn, print_fn)
            quitting = answer == "quit"
            if answer in ("interpretable", "not_interpretable") and hypothesis is None:
                hypothesis = _ask_hypothesis(input_fn)
                quitting = hypothesis is None
        except KeyboardInterrupt:
            print_fn(f"\ninterrupted; {done} judgment(s) are saved in {session.judgments_path}; "
                     "run the same command to resume")
            return 130
        if answer != "quit":
            session.record(item, answer, evaluator, hypothesis or "",
                           seconds=time.monotonic() - shown_at)
        if quitting:
            break
    if session.next_item(evaluator) is None:
        _print_done(session, evaluator, print_fn)
    else:
        print_fn(f"saved {session.progress(evaluator)[0]} judgment(s) in "
                 f"{session.judgments_path}; run the same command to resume")
    return 0


def _print_done(session: BlindSession, evaluator: str, print_fn: Callable[..., Any]) -> None:
    print_fn(f"all {len(session.items)} neurons judged by {evaluator}. See the results with "
             f"`solu-repro blind --session {session.path} --unblind`.")


def run_blind_cli(args: argparse.Namespace, input_fn: Callable[[str], str] = input,
                  print_fn: Callable[..., Any] = print,
                  load_entries: Callable[..., Mapping[str, Any]] | None = None) -> int:
    """``solu-repro blind``: create or resume a session and judge in the terminal, or unblind.

    Args:
        args: Parsed options (see ``add_blind_arguments``).
        input_fn: Reads one answer (``input``; tests pass a scripted one).
        print_fn: Prints one block of output.
        load_entries: ``(names, scale, runs_dir, data_dir, k) -> {name: BlindModel}``
            (default ``load_zoo_entries``).

    Returns:
        The exit status.
    """
    load_entries = load_entries or load_zoo_entries
    path = Path(args.session)
    if args.unblind:
        print_fn(unblind(BlindSession.open(path)).to_markdown())
        return 0
    evaluator = (args.evaluator or default_evaluator()).strip()
    color = args.color if args.color is not None else sys.stdout.isatty()
    if (path / MANIFEST_NAME).exists():
        session = BlindSession.open(path)
        _check_resume_options(session, args)
        sources = session.meta.get("sources")
        if args.sources is not None and sources is not None and list(args.sources) != sources:
            raise BlindError(f"--sources {' '.join(args.sources)} differs from the session's "
                             f"{' '.join(sources)}: a session keeps its corpus")
        if session.next_item(evaluator) is None:  # nothing left: no need to load models
            _print_done(session, evaluator, print_fn)
            return 0
        scale = session.meta.get("scale") or args.scale or DEFAULT_SCALE
        entries = load_entries(session.models, scale, args.runs_dir, args.data_dir,
                               _harvest_k(session.settings["n_examples"]),
                               **({"sources": tuple(sources)} if sources else {}))
    else:
        scale = args.scale or DEFAULT_SCALE
        models = list(args.models or DEFAULT_MODELS)
        _check_zoo_names(models, scale)
        refuse_orphan_judgments(path)  # before loading (perhaps training) any model
        given = {"n_per_model": args.n, "seed": args.seed, "layers": args.layers,
                 "hook": args.hook, "n_examples": args.n_examples}
        options = {k: v for k, v in given.items() if v is not None}  # the rest: create's
        meta: dict[str, Any] = {"scale": scale}
        if any(is_published(m) for m in models):  # released models: the corpus they read
            meta["sources"] = list(args.sources or ["default"])
        elif args.sources is not None:
            raise BlindError("--sources applies to released models (tl:...); zoo models read "
                             "the corpus they were trained on")
        entries = load_entries(models, scale, args.runs_dir, args.data_dir,
                               _harvest_k(options.get("n_examples", DEFAULT_N_EXAMPLES)),
                               **({"sources": tuple(meta["sources"])} if "sources" in meta
                                  else {}))
        session = BlindSession.create(path, {m: entries[m] for m in models},
                                      meta=meta, **options)
    renderer = SnippetRenderer(session, entries, color=color)
    return judge_loop(session, renderer, evaluator, input_fn, print_fn)
