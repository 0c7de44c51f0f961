"""Depth-first search with PRM pruning and backtracking (Tree of Thoughts' DFS, Yao et al. 2023).

Per problem, a stack of open paths, the most promising on top. Each round every problem pops
its top path and proposes M = dfs_width (default beam_width) next steps of it (identical ones merged, and paths
this problem has met before dropped); the PRM scores them. A path's value is the score of its
last step, the PRM's P(every step so far correct): Tree of Thoughts' state value. A new path
whose value is below `dfs_prune` is pruned (it stays a candidate); a finished one whose value
reaches `dfs_accept` is the answer and ends the problem's search; the open ones are pushed,
best on top (siblings share every step but the last, so this is their order by any
`aggregation` too). So the search goes deeper on the best child and comes back to a sibling,
or further up, only when everything below was pruned: backtracking on the PRM's word. When
the stack runs empty the question is expanded afresh (every request has its own seed, so the
samples are new).

The budget is at most n expansions per problem (n policy requests of M steps each); a problem
stops as soon as it accepts an answer, so easy problems cost a few expansions and its cost is
best read in generated tokens. Out of budget, the answer is the best finished path by
`aggregation`, and if none finished, the best open path finished by one rollout. The result's
candidates are every path scored, best by `aggregation` first. All problems' expansions go in
one propose call and one score call per round.
"""

from __future__ import annotations

from typing import Any, Sequence

from strategies.base import Candidate, SearchConfig, SearchResult, Services, is_open, ranked, register, unique


class DFS:
    name, needs_prm, uses_budget = "dfs", True, True

    def search(self, problems: Sequence[Any], policy, prm, config: SearchConfig) -> list[SearchResult]:
        services = Services(problems, policy, prm, config)
        if config.dfs_width is not None and config.dfs_width < 1:
            raise ValueError(f"need dfs_width >= 1, got {config.dfs_width}")
        agg, width = config.aggregation, min(config.dfs_width or config.beam_width, config.n)
        roots = [Candidate(services.root(i), []) for i in range(len(problems))]
        stacks: list[list[Candidate]] = [[] for _ in problems]  # open paths to expand, the next on top (last)
        seen: list[set] = [set() for _ in problems]
        scored: list[list[Candidate]] = [[] for _ in problems]
        answers: list[Candidate | None] = [None] * len(problems)
        expansions = [0] * len(problems)

        while active := [i for i in range(len(problems)) if answers[i] is None and expansions[i] < config.n]:
            items = [(i, (stacks[i].pop() if stacks[i] else roots[i]).path) for i in active]
            for (i, _), kids in zip(items, services.expand(items, children=width)):
                expansions[i] += 1
                new = unique(kids, seen[i])
                scored[i].extend(new)
                kept = [k for k in ranked(new, "last") if k.value("last") >= config.dfs_prune]
                answers[i] = next((k for k in kept if k.finished and k.value("last") >= config.dfs_accept), None)
                stacks[i].extend(reversed([k for k in kept if is_open(k.path, config)]))

        candidates = [ranked(c, agg) for c in scored]
        # Out of budget with no accepted answer: the best finished path, else the best open one
        # finished by one rollout.
        for i, cands in enumerate(candidates):
            if answers[i] is None:
                answers[i] = next((c for c in cands if c.finished), None)
        services.finish_by_rollout(answers, candidates, lambda i: (candidates[i][0] if candidates[i] else roots[i]).path)
        return [services.result(i, answers[i], candidates[i]) for i in range(len(problems))]


register(DFS())
