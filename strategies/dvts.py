"""Diverse verifier tree search (DVTS, search-and-learn): n/M independent subtrees, each
searched greedily by the PRM, whose final candidates all vote.

Each problem starts n/M subtrees (M = beam_width) from the root and spends n proposals per
round while they all live: each live subtree proposes M next steps (when M does not divide
n, the n proposals are spread evenly over the n/M subtrees) and goes on with its best child by the aggregated
score, so the subtrees stay apart instead of collapsing onto one high-scoring prefix as a
shared beam does. A subtree ends when its chosen child is finished or reaches max_steps.
The answer is chosen with `selection` (base.select) among every subtree's last expansion,
the chosen child and its siblings: n candidates, of which the finished ones vote. All
subtrees of all problems go in one propose call and one score call per round.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from strategies.base import Candidate, SearchConfig, SearchResult, Services, beam_size, best, is_open, register, select, spread


@dataclass
class Subtree:
    problem: int
    width: int  # proposals per round
    head: Candidate  # the path it goes on from
    last: list[Candidate] = field(default_factory=list)  # its last expansion: head and its siblings


class DVTS:
    name, needs_prm, uses_budget = "dvts", True, True

    def search(self, problems: Sequence[Any], policy, prm, config: SearchConfig) -> list[SearchResult]:
        services = Services(problems, policy, prm, config)
        subtrees = [Subtree(i, width, Candidate(services.root(i), []))
                    for i in range(len(problems)) for width in spread(config.n, beam_size(config))]

        while live := [t for t in subtrees if is_open(t.head.path, config)]:
            children = services.expand([(t.problem, t.head.path) for t in live], [t.width for t in live])
            for t, kids in zip(live, children):
                t.head, t.last = best(kids, config.aggregation), kids

        finals: list[list[Candidate]] = [[] for _ in problems]
        for t in subtrees:
            finals[t.problem].extend(t.last)
        return [services.result(i, select(cands, config.selection, config.aggregation, services.answer_key), cands)
                for i, cands in enumerate(finals)]


register(DVTS())
