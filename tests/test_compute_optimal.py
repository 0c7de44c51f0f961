"""The compute-optimal report by hand."""

import pytest

from evals.compute_optimal import compute_optimal, frontier_table


def run(strategy, n, acc, tokens, by_d_acc, by_d_tokens, counts=None):
    return {"strategy": strategy, "n": n, "accuracy": acc, "generated_tokens_per_problem": tokens,
            "accuracy_by_difficulty": by_d_acc, "generated_tokens_by_difficulty": by_d_tokens,
            "problems_by_difficulty": counts or {"3": 10, "4": 30}}


def test_best_strategy_per_difficulty_and_the_budget_that_matches_majority_64():
    summaries = [
        run("greedy", 1, .25, 10, {"3": .7, "4": .1}, {"3": 8, "4": 11}),
        run("majority", 4, .3, 40, {"3": .6, "4": .2}, {"3": 32, "4": 43}),
        run("beam", 4, .4, 60, {"3": .5, "4": .4}, {"3": 50, "4": 63}),
        run("majority", 64, .45, 640, {"3": .9, "4": .3}, {"3": 600, "4": 653}),
        run("beam", 64, .5, 700, {"3": .8, "4": .5}, {"3": 690, "4": 703}),
    ]
    out = compute_optimal(summaries)
    n4, n64 = out["frontier"]
    # n=4: difficulty 3 -> greedy (0.7), 4 -> beam (0.4): 0.25*0.7 + 0.75*0.4 = 0.475; tokens 0.25*8 + 0.75*63
    assert n4["choice"] == {"3": "greedy@1", "4": "beam@4"}
    assert n4["accuracy"] == pytest.approx(.475) and n4["generated_tokens_per_problem"] == pytest.approx(49.25)
    assert n64["choice"] == {"3": "majority@64", "4": "beam@64"}
    # majority@64 is 0.45: matched already at n=4, with 640 / 49.25 = 13x less generation
    assert out["matches"] is n4 and out["compute_ratio"] == pytest.approx(640 / 49.25)
    assert "13.0x less generation" in frontier_table(out)
    assert compute_optimal(summaries[:3])["reference"] is None
