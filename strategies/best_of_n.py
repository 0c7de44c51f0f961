"""Best-of-N: n complete rollouts per problem, then pick one.

selection:
  prm       the rollout with the best aggregated PRM score;
  weighted  PRM-weighted majority: each final answer gets the sum of its rollouts' scores;
  majority  plain majority vote over final answers, no PRM at all (the baseline).
One complete call for all problems, then (unless majority) one score call.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from typing import Any, Sequence

from strategies.base import Candidate, SearchConfig, SearchResult, Services, register

SELECTIONS = ("prm", "weighted", "majority")


def select(candidates: list[Candidate], selection: str, aggregation: str, extract_answer) -> Candidate | None:
    """The chosen candidate; for votes, the best-scored (or first) rollout with the winning answer."""
    if selection not in SELECTIONS:
        raise ValueError(f"unknown selection {selection!r}; choose from {SELECTIONS}")
    if not candidates:
        return None
    if selection == "prm":
        return max(candidates, key=lambda c: c.value(aggregation))
    votes: dict[str, float] = defaultdict(float)
    for c in candidates:
        answer = extract_answer(c.path.steps)
        if answer is not None:
            votes[answer] += c.value(aggregation) if selection == "weighted" else 1.0
    if not votes:
        return candidates[0]
    winner = max(votes, key=votes.get)
    with_winner = [c for c in candidates if extract_answer(c.path.steps) == winner]
    return max(with_winner, key=lambda c: c.value(aggregation)) if selection == "weighted" else with_winner[0]


class BestOfN:
    name = "best_of_n"

    def search(self, problems: Sequence[Any], policy, prm, config: SearchConfig) -> list[SearchResult]:
        return self._search(problems, policy, prm, config, config.selection)

    def _search(self, problems, policy, prm, config: SearchConfig, selection: str) -> list[SearchResult]:
        use_prm = selection != "majority"
        services = Services(problems, policy, prm if use_prm else None, config)
        rollouts = services.rollout([(i, services.root(i)) for i in range(len(problems))], config.n, score=use_prm)
        return [
            services.result(i, select(cands, selection, config.aggregation, policy.fmt.extract_answer), cands)
            for i, cands in enumerate(rollouts)
        ]


class Majority(BestOfN):
    """Plain majority vote over n rollouts: the no-PRM baseline."""

    name = "majority"

    def search(self, problems: Sequence[Any], policy, prm, config: SearchConfig) -> list[SearchResult]:
        return self._search(problems, policy, None, config, "majority")


class Greedy(BestOfN):
    """One greedy rollout (temperature 0), no PRM: the plain-decoding baseline."""

    name = "greedy"

    def search(self, problems: Sequence[Any], policy, prm, config: SearchConfig) -> list[SearchResult]:
        return self._search(problems, policy, None, replace(config, n=1, temperature=0.0), "majority")


register(BestOfN())
register(Majority())
register(Greedy())
