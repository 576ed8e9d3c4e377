"""The notebooks' regression checks (solu_repro.book.checks) print FAIL when their property
breaks, with the measurement; and pass on well-formed inputs."""

from __future__ import annotations

import math
from types import SimpleNamespace as NS

from solu_repro.book import checks
from solu_repro.interp.stats import proportion


def loss(name, depth, val, tokens=100, per_source=None):
    return NS(name=name, depth=depth, val_loss=val, tokens=tokens,
              per_source={"a": 5.0, "b": 5.5} if per_source is None else per_source)


def lines(cs):
    return checks.report(cs).splitlines()


def test_loss_checks_pass_and_fail():
    good = {"1L-gelu": loss("1L-gelu", 1, 5.9), "1L-solu_ln": loss("1L-solu_ln", 1, 6.1)}
    assert not checks.failed(checks.loss_checks(good, d_vocab=1024))
    assert all(line.startswith("ok    ") for line in lines(checks.loss_checks(good, 1024)))
    ceiling = math.log(1024) - checks.UNIFORM_MARGIN
    for bad_value in (float("nan"), ceiling + 0.01, 7.0, -1.0):
        bad = {**good, "1L-gelu": loss("1L-gelu", 1, bad_value)}
        failed = checks.failed(checks.loss_checks(bad, 1024))
        assert any("1L-gelu: validation loss" in c.what for c in failed), bad_value
        assert any(line.startswith("FAIL  1L-gelu: validation loss")
                   for line in lines(checks.loss_checks(bad, 1024)))
    spread = {**good, "1L-gelu": loss("1L-gelu", 1, 6.1 - checks.SAME_DEPTH_SPREAD - 0.01)}
    assert any("1L models end within" in c.what for c in checks.failed(
        checks.loss_checks(spread, 1024)))
    budgets = {**good, "1L-gelu": loss("1L-gelu", 1, 5.9, tokens=99)}
    assert any("share one token budget" in c.what
               for c in checks.failed(checks.loss_checks(budgets, 1024)))
    no_source = {**good, "1L-gelu": loss("1L-gelu", 1, 5.9, per_source={"a": float("inf")})}
    assert checks.failed(checks.loss_checks(no_source, 1024))


def result(top, spec, n=8, by_layer=None):
    return NS(top=proportion(top, n), spectrum=proportion(spec, n),
              by_layer=by_layer if by_layer is not None else [{"n": n, "interpretable": top}])


def test_interp_checks_catch_broken_tables():
    ok = {"1L-gelu": result(3, 1)}
    assert not checks.failed(checks.interp_checks(ok, {"1L-gelu": 8}))
    assert checks.failed(checks.interp_checks(ok, {"1L-gelu": 16}))          # wrong count
    assert checks.failed(checks.interp_checks(ok, {"1L-gelu": 8, "x": 8}))   # model missing
    assert checks.failed(checks.interp_checks({"1L-gelu": result(1, 3)}, {"1L-gelu": 8}))
    split = result(3, 1, by_layer=[{"n": 4, "interpretable": 1}, {"n": 4, "interpretable": 1}])
    assert checks.failed(checks.interp_checks({"1L-gelu": split}, {"1L-gelu": 8}))


def record(**kw):
    base = dict(layer=0, neuron=0, interpretable=False, spectrum_interpretable=False,
                coverage=0.5, lift=1.0, precision=0.2, recall=0.3)
    return NS(**{**base, **kw})


def test_scores_checks_catch_records_that_break_the_rule():
    scores = lambda recs: NS(meta={"name": "m"}, records=recs)
    fine = [record(), record(neuron=1, interpretable=True, coverage=0.85, lift=4.0)]
    assert not checks.failed(checks.scores_checks(scores(fine), 2, 0.8, 3.0))
    assert checks.failed(checks.scores_checks(scores(fine), 3, 0.8, 3.0))
    for bad in (record(interpretable=True, coverage=0.7, lift=4.0),
                record(spectrum_interpretable=True),
                record(precision=1.5)):
        assert checks.failed(checks.scores_checks(scores([bad, fine[1]]), 2, 0.8, 3.0)), bad


def role_row(model, layer, token=1, abstract=1, n=2):
    roles = {"token": token, "abstract": abstract}
    return {"model": model, "layer": layer, "n_interpretable": n, **roles,
            **{f"{r}_fraction": (v / n if n else math.nan) for r, v in roles.items()}}


def test_layer_roles_checks():
    roles = ("token", "abstract")
    rows = [role_row("2L", 0), role_row("2L", 1)]
    assert not checks.failed(checks.layer_roles_checks(rows, {"2L": 2}, roles))
    assert checks.failed(checks.layer_roles_checks(rows[:1], {"2L": 2}, roles))
    assert checks.failed(checks.layer_roles_checks([rows[0], role_row("2L", 1, n=3)],
                                                   {"2L": 2}, roles))

