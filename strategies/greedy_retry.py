"""Greedy retry: propose one step, let the PRM verify it, accept it or resample.

The first try at each position is the policy's greedy step (with `greedy_first`), retries
are sampled at `temperature`.

A step is accepted when P(correct) >= threshold. A rejected step is resampled at the same
position, at most `max_retries_per_step` times per position and `max_retries_per_problem`
times in all; when retries run out, the best-scored candidate seen at this position (the
first of equals) is taken, so the search never loops forever. Ending the path (a proposal
that is EOS alone, with no new step) is accepted as it is: there is no step for the PRM to
judge, and the steps before it were already accepted. All problems advance together: each
round is one propose call and one score call over every open problem.
"""

from __future__ import annotations

from typing import Any, Sequence

from strategies.base import Candidate, SearchConfig, SearchResult, Services, is_open, register


class GreedyRetry:
    name, needs_prm, uses_budget = "greedy_retry", True, False  # its budget is the retry limits, not n

    def search(self, problems: Sequence[Any], policy, prm, config: SearchConfig) -> list[SearchResult]:
        services = Services(problems, policy, prm, config)
        current = [Candidate(services.root(i), []) for i in range(len(problems))]
        best_here: list[Candidate | None] = [None] * len(problems)  # best rejected candidate at the current position
        retries_here = [0] * len(problems)
        retries_total = [0] * len(problems)
        tried: list[list[Candidate]] = [[] for _ in problems]

        while open_ := [i for i, c in enumerate(current) if is_open(c.path, config)]:
            temperatures = [0.0 if config.greedy_first and retries_here[i] == 0 else config.temperature for i in open_]
            children = services.expand([(i, current[i].path) for i in open_], children=1, temperatures=temperatures)
            for i, (child,) in zip(open_, children):
                tried[i].append(child)
                stops_only = child.path.steps == current[i].path.steps  # EOS with no new step
                step_score = child.value("last")
                out_of_retries = retries_here[i] >= config.max_retries_per_step or retries_total[i] >= config.max_retries_per_problem
                if stops_only or step_score >= config.threshold or out_of_retries:
                    if not stops_only and step_score < config.threshold and best_here[i] is not None and best_here[i].value("last") >= step_score:
                        child = best_here[i]  # out of retries: take the best candidate seen here
                    current[i], best_here[i], retries_here[i] = child, None, 0
                else:
                    retries_here[i] += 1
                    retries_total[i] += 1
                    if best_here[i] is None or step_score > best_here[i].value("last"):
                        best_here[i] = child
        return [services.result(i, current[i], tried[i]) for i in range(len(problems))]


register(GreedyRetry())
