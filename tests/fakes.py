"""Synthetic inputs shared by the tests of the paper modules and of the chapters: a zoo whose
losses follow a known scaling law, and scored neurons with chosen verdicts."""

from __future__ import annotations

import json


from solu_repro.interp.explanations import Explanation
from solu_repro.interp.score import NeuronScore, NeuronScores
from solu_repro.interp.stats import proportion
from solu_repro.paper import s6_interpretability as s6
from solu_repro.zoo import ZooRun, act_of, depth_of, zoo_configs

# --- a synthetic zoo with a known scaling law -------------------------------------------------
A, ALPHA, C = 20.0, 0.3, 4.0
N_GELU = {1: 12_768, 2: 25_472, 4: 50_880}


N_LN = {1: 13_024, 2: 25_984, 4: 51_904}


def law(n: float) -> float:
    return A * n ** -ALPHA + C


def synthetic_runs(tmp_path):
    """Tiny-zoo names with losses chosen from the law: at the final step the baseline follows
    it exactly; at the first evaluation the 4L baseline is worse than the 2L one."""
    final = {
        "1L-gelu": law(N_GELU[1]), "2L-gelu": law(N_GELU[2]), "4L-gelu": law(N_GELU[4]),
        "1L-solu_ln": law(N_LN[1]),                 # 1.0x, inside the fitted sizes
        "2L-solu_ln": law(1.5 * N_GELU[2]),         # 38,208 / 25,984
        "4L-solu_ln": law(N_LN[4]),                 # 1.0x, but beyond the largest baseline
        "1L-solu": law(0.6 * N_GELU[1]),            # 0.6x, below the smallest baseline
        "1L-gelu_ln": C - 0.01,                     # below the asymptote: only a bound
    }
    final["1L-solu_ln_b4"] = final["1L-solu_ln"] + 0.5  # blocked: clearly worse
    # other seeds: matched pairs 0.001 apart, so SoLU-LN vs GELU is equivalent within ±0.01
    final.update({"1L-gelu-s1": final["1L-gelu"] + 0.002,
                  "1L-solu_ln-s1": final["1L-solu_ln"] + 0.001})
    first = {n: v + 0.5 for n, v in final.items()}
    first["4L-gelu"] = first["2L-gelu"] + 0.1
    runs = {}
    for name, cfg in zoo_configs("tiny").items():
        run_dir = tmp_path / name
        run_dir.mkdir()
        depth, act = depth_of(name), act_of(name)
        n_params = N_LN[depth] if act in ("solu_ln", "gelu_ln", "solu_ln_b4") else N_GELU[depth]
        records = [{"step": s, "tokens": s * 512, "loss": 7.0 - s / 100} for s in (10, 20, 40)]
        records.append({"step": 40, "tokens": 40 * 512, "val_loss": first[name],
                        "val_loss_per_source": {"sotu": first[name], "python-stdlib": first[name]}})
        per_source = {"sotu": final[name] - 0.1, "python-stdlib": final[name] + 0.2}
        records.append({"step": 120, "tokens": 120 * 512, "val_loss": final[name],
                        "val_loss_per_source": per_source})
        (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
        result = {"val_loss": final[name], "val_loss_per_source": per_source,
                  "n_params": n_params, "tokens": 120 * 512}
        runs[name] = ZooRun(name, "tiny", cfg, run_dir, result)
    return runs



# --- scored neurons ---------------------------------------------------------------------------
def fake(name: str, hits: int, n: int, spectrum_hits: int = 0) -> s6.ModelInterpretability:
    depth, act = int(name.split("L-")[0]), name.split("-", 1)[1]
    return s6.ModelInterpretability(name, act, depth, proportion(hits, n),
                                    proportion(spectrum_hits, n), [])


def fake_scores(hits: int, n: int, spectrum_hits: int = 0, layers: int = 1) -> NeuronScores:
    """``n`` neurons per layer: the first ``hits`` interpretable (the first ``spectrum_hits``
    of them over the full spectrum too), each interpretable one with its own explanation."""
    records = []
    for layer in range(layers):
        for i in range(n):
            good, spec = i < hits, i < min(spectrum_hits, hits)
            records.append(NeuronScore(
                layer=layer, neuron=i, explanation=f"token:{i}" if good else None, text="",
                role=None, coverage=0.9 if good else 0.1, base_rate=0.01, lift=10.0,
                interpretable=good, dead=False, precision=0.9 if spec else 0.1,
                recall=0.9 if spec else 0.1, correlation=0.5, n_holds=1, n_fires=20))
    return NeuronScores({"name": "fake"}, records)


def nulls():
    solu = s6.NullControls("1L-solu_ln", fake("1L-solu_ln", 60, 100, 30),
                           {"rotated": fake("1L-solu_ln", 50, 100, 5),
                            "random_init": fake("1L-solu_ln", 10, 100, 0)})
    gelu = s6.NullControls("1L-gelu", fake("1L-gelu", 35, 100, 10),
                           {"rotated": fake("1L-gelu", 33, 100, 4),
                            "random_init": fake("1L-gelu", 10, 100, 0),
                            "solu_readout": fake("1L-gelu", 40, 100, 12)})
    return {"1L-solu_ln": solu, "1L-gelu": gelu}



def neuron_record(layer, neuron, kind="token", values=(1,), interpretable=True, coverage=0.9,
            precision=0.5, recall=0.5, lift=10.0, dead=False, text=None):
    e = Explanation(kind, values)
    return NeuronScore(layer, neuron, None if dead else e.key(), text or f"{kind} {values}",
                       None if dead else e.role, coverage, 0.01, lift, interpretable, dead,
                       precision, recall, 0.5, 10, 10)


def neuron_scores(records):
    return NeuronScores({"name": "synthetic"}, records)

