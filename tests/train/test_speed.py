"""The side-by-side timing harness: structure, arithmetic and argument checks.

No assertion depends on how fast this machine is: ratios are tested with a fake clock, and
the one real-clock test compares a 20 ms sleep with a no-op by a wide margin.
"""

from __future__ import annotations

import math
import time

import pytest
import torch

from solu_repro.speed import (
    Samples,
    SpeedComparison,
    compare,
    compare_activations,
    compare_train_steps,
    interleave,
    make_activation_step,
    make_train_step,
    quantile,
    ratio_stats,
    torch_threads,
)
from solu_repro.zoo import zoo_configs


class FakeClock:
    """A clock that only moves when a timed function says how long it 'took'."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def work(self, seconds: float):
        def fn() -> None:
            self.now += seconds
        return fn


def test_interleave_structure_and_order():
    calls = []
    fns = {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}
    samples = interleave(fns, rounds=3, steps_per_round=2, warmup=1)
    assert set(samples) == {"a", "b"}
    for smp in samples.values():
        assert len(smp.rounds) == 3 and all(len(r) == 2 for r in smp.rounds)
        assert len(smp.all) == 6
        assert all(math.isfinite(t) and t >= 0 for t in smp.all)
    # warmup a, warmup b, then rounds alternate a a b b a a b b ...
    assert calls == ["a", "b"] + ["a", "a", "b", "b"] * 3


def test_fake_clock_gives_exact_medians_and_ratio():
    clock = FakeClock()
    fns = {"gelu": clock.work(0.010), "solu_ln": clock.work(0.030)}
    samples = interleave(fns, rounds=4, steps_per_round=3, warmup=2, timer=clock)
    assert samples["gelu"].median == pytest.approx(0.010)
    assert samples["solu_ln"].median == pytest.approx(0.030)
    r = ratio_stats(samples["gelu"], samples["solu_ln"], n_boot=200)
    assert r["ratio"] == pytest.approx(3.0)
    assert r["ci90_lo"] == pytest.approx(3.0) and r["ci90_hi"] == pytest.approx(3.0)
    assert r["round_min"] == pytest.approx(3.0) and r["round_max"] == pytest.approx(3.0)


def test_compare_with_fake_clock():
    clock = FakeClock()
    cmp = compare({"a": clock.work(0.02), "b": clock.work(0.021)}, "unit of work",
                  rounds=5, warmup=0, timer=clock, n_boot=100)
    assert isinstance(cmp, SpeedComparison)
    assert (cmp.a, cmp.b, cmp.what) == ("a", "b", "unit of work")
    assert cmp.ratio == pytest.approx(1.05)
    assert cmp.overhead == pytest.approx(0.05)
    assert cmp.n_samples == 5
    assert cmp.resolves
    assert "1.050x" in str(cmp)


def test_bootstrap_interval_brackets_the_ratio():
    a = Samples([[1.0, 1.2], [0.9, 1.1], [1.05, 0.95]])
    b = Samples([[1.1, 1.4], [1.0, 1.3], [1.2, 1.0]])
    r = ratio_stats(a, b, n_boot=500, seed=1)
    assert r["ci90_lo"] <= r["ratio"] <= r["ci90_hi"]
    assert r["round_min"] <= r["round_max"]
    assert ratio_stats(a, b, n_boot=500, seed=1) == r  # seeded: reproducible


def test_a_slower_function_is_measured_slower_on_the_real_clock():
    fns = {"noop": lambda: None, "sleep": lambda: time.sleep(0.02)}
    cmp = compare(fns, "sleep vs no-op", rounds=3, warmup=1, n_boot=100)
    assert cmp.median_a_s > 0 and math.isfinite(cmp.median_a_s)
    assert cmp.median_b_s >= 0.02  # sleep never returns early
    assert cmp.ratio > 3  # a no-op's median is far below 7 ms on any machine


def test_quantile():
    assert quantile([3.0, 1.0, 2.0], 0.5) == 2.0
    assert quantile([1.0, 2.0], 0.25) == pytest.approx(1.25)
    assert quantile([5.0], 0.9) == 5.0
    with pytest.raises(ValueError):
        quantile([], 0.5)
    with pytest.raises(ValueError):
        quantile([1.0], 1.5)


@pytest.mark.parametrize("kwargs, match", [
    (dict(rounds=0), "rounds"),
    (dict(steps_per_round=0), "steps_per_round"),
    (dict(warmup=-1), "warmup"),
    (dict(rounds=2.5), "rounds"),
    (dict(rounds=True), "rounds"),
])
def test_interleave_rejects_bad_counts(kwargs, match):
    with pytest.raises(ValueError, match=match):
        interleave({"a": lambda: None}, **kwargs)


def test_interleave_rejects_empty_and_uncallable():
    with pytest.raises(ValueError, match="empty"):
        interleave({})
    with pytest.raises(TypeError, match="not callable"):
        interleave({"a": 3})


def test_ratio_stats_rejects_mismatched_samples():
    with pytest.raises(ValueError, match="rounds"):
        ratio_stats(Samples([[1.0]]), Samples([[1.0], [2.0]]))
    with pytest.raises(ValueError):
        ratio_stats(Samples(), Samples())
    with pytest.raises(ValueError, match="n_boot"):
        ratio_stats(Samples([[1.0]]), Samples([[1.0]]), n_boot=0)


def test_compare_needs_two_callables_and_valid_threads():
    with pytest.raises(ValueError, match="exactly two"):
        compare({"a": lambda: None}, "x")
    with pytest.raises(ValueError, match="threads"):
        compare({"a": lambda: None, "b": lambda: None}, "x", threads=0)


def test_torch_threads_restores():
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_train_and_activation_steps_run_at_tiny_shapes():
    configs = zoo_configs("tiny")
    gelu, solu_ln = configs["1L-gelu"], configs["1L-solu_ln"]
    step = make_train_step(gelu, "cpu", seed=0)
    step()
    step()
    act = make_activation_step("solu_ln", gelu, "cpu", seed=0)
    act()
    cmp = compare_train_steps(gelu, solu_ln, rounds=2, warmup=1, threads=1, n_boot=50)
    assert (cmp.a, cmp.b, cmp.n_samples, cmp.threads) == ("gelu", "solu_ln", 2, 1)
    assert cmp.median_a_s > 0 and cmp.median_b_s > 0 and math.isfinite(cmp.ratio)
    assert cmp.ci90[0] <= cmp.ci90[1]
    acts = compare_activations(gelu, rounds=2, steps_per_round=2, warmup=1, n_boot=50)
    assert (acts.a, acts.b, acts.n_samples) == ("gelu", "solu_ln", 4)
    with pytest.raises(ValueError, match="two different"):
        compare_activations(gelu, acts=("gelu", "gelu"))


def test_train_step_does_not_touch_the_global_rng():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    make_train_step(zoo_configs("tiny")["1L-gelu"], "cpu")
    assert torch.equal(torch.rand(3), expected)


def test_matmul_peak_is_timed_from_the_callable_mfu_uses():
    from solu_repro.speed import make_matmul, matmul_flops, matmul_peak_flops

    fn = make_matmul(torch.float32, "cpu", size=64)
    fn()  # one size^3 matmul into a kept output
    assert matmul_flops(64) == 2 * 64 ** 3
    assert matmul_peak_flops(torch.float32, "cpu", size=64, calls=2) > 0
