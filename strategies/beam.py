"""Beam search with a PRM: keep the n/M best paths, expand each by M candidate steps.

Every round proposes M next steps for each of the n/M live paths of every problem (n
candidates per problem, the first round included: the beam starts as n/M copies of the root; one propose call and one score call for all problems), scores
them, and keeps the n/M best unfinished candidates by the aggregated PRM score. Finished
candidates leave the beam and are kept; the answer is the best finished path (or the
best live one if none finished within max_steps).
"""

from __future__ import annotations

from typing import Any, Sequence

from strategies.base import Candidate, SearchConfig, SearchResult, Services, is_open, register, unique


def beam_size(config: SearchConfig) -> int:
    if config.beam_width < 1 or config.n < config.beam_width:
        raise ValueError(f"need 1 <= beam_width <= n, got beam_width={config.beam_width}, n={config.n}")
    return config.n // config.beam_width


class BeamSearch:
    name = "beam"

    def search(self, problems: Sequence[Any], policy, prm, config: SearchConfig) -> list[SearchResult]:
        services = Services(problems, policy, prm, config)
        keep = beam_size(config)
        beams = [[Candidate(services.root(i), [])] * keep for i in range(len(problems))]  # n/M copies: the first round samples n too
        finished: list[list[Candidate]] = [[] for _ in problems]

        while any(beams):
            items = [(i, c.path) for i, beam in enumerate(beams) for c in beam]
            children = services.expand(items, n=config.beam_width)
            pool: list[list[Candidate]] = [[] for _ in problems]
            for (i, _), kids in zip(items, children):
                for kid in kids:
                    (pool[i] if is_open(kid.path, config) else finished[i]).append(kid)
            beams = [sorted(unique(p), key=lambda c: c.value(config.aggregation), reverse=True)[:keep] for p in pool]

        results = []
        for i in range(len(problems)):
            ranked = sorted(finished[i], key=lambda c: (c.path.finished, c.value(config.aggregation)), reverse=True)
            results.append(services.result(i, ranked[0] if ranked else None, ranked))
        return results


register(BeamSearch())
