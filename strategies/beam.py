"""Beam search with a PRM (search-and-learn's algorithm): n proposals per round, keep the n/M best.

Each problem spends n step proposals per round. The first round proposes n next steps of
the question; every round after, the live beam (at most n/M paths, M = min(beam_width, n)) is
topped back up to n proposals: each of its k paths proposes n/k next steps (the first n % k
one more), so merged duplicates and paths that finished do not shrink the budget. New
candidates are scored by the PRM; finished ones (EOS) leave the beam and are kept; identical
live paths are merged (first kept); the n/M best live ones by the aggregated score form the
next beam. A problem stops when n of its paths have finished, when its beam is empty, or when
its paths reach max_steps. The answer is chosen with `selection` (base.select) among the n
best-scored finished paths; depth-capped paths compete only if none finished. All problems'
proposals go in one propose call and one score call per round.
"""

from __future__ import annotations

from typing import Any, Sequence

from strategies.base import Candidate, SearchConfig, SearchResult, Services, beam_size, is_open, ranked, register, select, spread, unique


class BeamSearch:
    name, needs_prm, uses_budget = "beam", True, True

    def search(self, problems: Sequence[Any], policy, prm, config: SearchConfig) -> list[SearchResult]:
        services = Services(problems, policy, prm, config)
        keep = beam_size(config)
        beams = [[Candidate(services.root(i), [])] for i in range(len(problems))]
        finished: list[list[Candidate]] = [[] for _ in problems]
        capped: list[list[Candidate]] = [[] for _ in problems]  # reached max_steps unfinished

        while True:
            items, counts = [], []
            for i, beam in enumerate(beams):
                if len(finished[i]) >= config.n:
                    beam.clear()
                for c, k in zip(beam, spread(config.n, len(beam))):
                    items.append((i, c.path))
                    counts.append(k)
            if not items:
                break
            pool: list[list[Candidate]] = [[] for _ in problems]
            for (i, _), kids in zip(items, services.expand(items, counts)):
                for kid in kids:
                    (finished[i] if kid.finished else pool[i] if is_open(kid.path, config) else capped[i]).append(kid)
            beams = [ranked(unique(p), config.aggregation)[:keep] for p in pool]

        results = []
        for i in range(len(problems)):
            final = ranked(finished[i], config.aggregation)[: config.n] or ranked(capped[i], config.aggregation)
            results.append(services.result(i, select(final, config.selection, config.aggregation, services.answer_key), final))
        return results


register(BeamSearch())
