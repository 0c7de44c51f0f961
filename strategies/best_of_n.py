"""Best-of-N: n complete rollouts per problem, then pick one (base.select).

selection:
  prm       the finished rollout with the best aggregated PRM score;
  weighted  PRM-weighted vote: each final answer (equivalent answers grouped) gets the sum of
            its finished rollouts' scores;
  majority  plain vote over final answers, no PRM at all (self-consistency, the baseline).
Rollouts cut off by max_tokens compete only if none finished. One complete call for all
problems, then (unless majority) one score call.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Sequence

from strategies.base import SearchConfig, SearchResult, Services, register, select


class BestOfN:
    name, needs_prm, uses_budget = "best_of_n", True, True

    def search(self, problems: Sequence[Any], policy, prm, config: SearchConfig) -> list[SearchResult]:
        return self._search(problems, policy, prm, config, config.selection)

    def _search(self, problems, policy, prm, config: SearchConfig, selection: str) -> list[SearchResult]:
        use_prm = selection != "majority"
        services = Services(problems, policy, prm if use_prm else None, config)
        rollouts = services.rollout([(i, services.root(i)) for i in range(len(problems))], config.n, score=use_prm)
        return [services.result(i, select(cands, selection, config.aggregation, services.answer_key), cands) for i, cands in enumerate(rollouts)]


class Majority(BestOfN):
    """Plain majority vote over n rollouts: the no-PRM baseline."""

    name, needs_prm = "majority", False

    def search(self, problems: Sequence[Any], policy, prm, config: SearchConfig) -> list[SearchResult]:
        return self._search(problems, policy, None, config, "majority")


class Greedy(BestOfN):
    """One greedy rollout (temperature 0), no PRM: the plain-decoding baseline."""

    name, needs_prm, uses_budget = "greedy", False, False

    def search(self, problems: Sequence[Any], policy, prm, config: SearchConfig) -> list[SearchResult]:
        return self._search(problems, policy, None, replace(config, n=1, temperature=0.0), "majority")


register(BestOfN())
register(Majority())
register(Greedy())
