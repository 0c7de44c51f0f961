"""Diverse verifier tree search (DVTS): n/M independent subtrees, each searched greedily by the PRM.

Each problem starts n/M subtrees from the root. Every round, each live subtree proposes M
next steps and keeps only its best-scored one, so the subtrees stay apart instead of
collapsing onto one high-scoring prefix as a shared beam does. All subtrees of all
problems go in one propose call and one score call. The answer is chosen among the
subtrees' final paths with `selection` (see best_of_n).
"""

from __future__ import annotations

from typing import Any, Sequence

from strategies.base import Candidate, SearchConfig, SearchResult, Services, is_open, register
from strategies.beam import beam_size
from strategies.best_of_n import select


class DVTS:
    name = "dvts"

    def search(self, problems: Sequence[Any], policy, prm, config: SearchConfig) -> list[SearchResult]:
        services = Services(problems, policy, prm, config)
        subtrees = [(i, Candidate(services.root(i), [])) for i in range(len(problems)) for _ in range(beam_size(config))]

        while True:
            live = [k for k, (_, c) in enumerate(subtrees) if is_open(c.path, config)]
            if not live:
                break
            children = services.expand([(subtrees[k][0], subtrees[k][1].path) for k in live], n=config.beam_width)
            for k, kids in zip(live, children):
                subtrees[k] = (subtrees[k][0], max(kids, key=lambda c: c.value("last")))

        finals: list[list[Candidate]] = [[] for _ in problems]
        for i, c in subtrees:
            finals[i].append(c)
        return [
            services.result(i, select(cands, config.selection, config.aggregation, policy.fmt.extract_answer), cands)
            for i, cands in enumerate(finals)
        ]


register(DVTS())
