"""Monte Carlo tree search with the PRM as the value function (PUCT).

Per problem, a tree of paths; a node's value estimate v is its path's aggregated PRM score
(`aggregation`). Every problem runs its own iterations, all problems' expansions batched:
  selection  from the root, follow the child maximizing PUCT
                 Q + c_puct * P * sqrt(N_parent) / (1 + N_child),
             P the child's PRM score of its last step (the prior), Q the mean of the values
             backed up through it, or its own v while unvisited: one scale, so at c_puct = 0
             selection is greedy in v. Selecting a finished (or max_steps) leaf backs its v
             up again and selects anew, without a policy call;
  expansion  propose `mcts_expand` next steps at the selected leaf; identical siblings merge;
  value      the best new child's v, or with `mcts_rollout` the aggregated PRM score of one
             rollout to EOS from that child (the rollout is kept: a finished rollout can be
             the answer);
  backup     from that child to the root: N += 1, value sum += the value.
The budget is `mcts_iterations` expansions (policy calls) per problem, 2n when it is None
(2n expansions of `mcts_expand` = 4 children: 8n proposed steps, about the steps of n whole
paths of 8 steps). A problem stops earlier only when that many selections in a row end at
finished leaves (the search has settled on finished paths). The answer is the finished path (tree node or rollout) with the
best v; if none finished, the most visited path is finished by one rollout. The result's
candidates are every scored node and rollout, best v first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

from strategies.base import Candidate, SearchConfig, SearchResult, Services, is_open, ranked, register, unique


@dataclass
class Node:
    candidate: Candidate
    value: float  # v: the path's aggregated PRM score
    parent: "Node | None" = None
    children: list["Node"] = field(default_factory=list)
    visits: int = 0
    value_sum: float = 0.0

    @property
    def prior(self) -> float:
        return self.candidate.value("last")

    def q(self) -> float:
        return self.value_sum / self.visits if self.visits else self.value

    def terminal(self, config: SearchConfig) -> bool:
        return not is_open(self.candidate.path, config)


def puct(child: Node, parent: Node, c_puct: float) -> float:
    return child.q() + c_puct * child.prior * math.sqrt(max(parent.visits, 1)) / (1 + child.visits)


def select_leaf(root: Node, config: SearchConfig) -> Node:
    node = root
    while node.children:
        node = max(node.children, key=lambda ch: puct(ch, node, config.c_puct))  # the first of equals
    return node


def iterations(config: SearchConfig) -> int:
    """Expansions per problem: mcts_iterations, else 2n."""
    return config.mcts_iterations if config.mcts_iterations is not None else 2 * config.n


def select_open_leaf(root: Node, config: SearchConfig) -> Node | None:
    """An open leaf to expand; finished leaves selected on the way back their value up again.
    None when `iterations(config)` selections in a row ended at finished leaves."""
    for _ in range(iterations(config)):
        leaf = select_leaf(root, config)
        if not leaf.terminal(config):
            return leaf
        backup(leaf, leaf.value)
    return None


def backup(node: Node | None, value: float) -> None:
    while node is not None:
        node.visits += 1
        node.value_sum += value
        node = node.parent


def walk(root: Node):
    stack = [root]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(reversed(node.children))


def most_visited_path(root: Node) -> Node:
    node = root
    while node.children:
        node = max(node.children, key=lambda n: (n.visits, n.prior))
    return node


class MCTS:
    name, needs_prm, uses_budget = "mcts", True, True

    def search(self, problems: Sequence[Any], policy, prm, config: SearchConfig) -> list[SearchResult]:
        services = Services(problems, policy, prm, config)
        agg = config.aggregation
        roots = [Node(Candidate(services.root(i), []), 0.0) for i in range(len(problems))]
        expansions = [0] * len(problems)
        settled = [False] * len(problems)
        rollouts: list[list[Candidate]] = [[] for _ in problems]

        while active := [i for i in range(len(problems)) if not settled[i] and expansions[i] < iterations(config)]:
            leaves = {}
            for i in active:
                leaf = select_open_leaf(roots[i], config)
                if leaf is None:
                    settled[i] = True
                else:
                    leaves[i] = leaf
            todo = list(leaves)
            children = services.expand([(i, leaves[i].candidate.path) for i in todo], children=config.mcts_expand)
            chosen = []
            for i, kids in zip(todo, children):
                expansions[i] += 1
                leaf = leaves[i]
                leaf.children = [Node(k, k.value(agg), parent=leaf) for k in unique(kids)]
                chosen.append(max(leaf.children, key=lambda n: n.value))
            values = [node.value for node in chosen]
            if config.mcts_rollout:
                items = [(i, node.candidate.path) for i, node in zip(todo, chosen) if not node.terminal(config)]
                done = iter(services.rollout(items, samples=1))
                for k, (i, node) in enumerate(zip(todo, chosen)):
                    if not node.terminal(config):
                        (rollout,) = next(done)
                        rollouts[i].append(rollout)
                        values[k] = rollout.value(agg)
            for node, value in zip(chosen, values):
                backup(node, value)

        scored = [ranked([n.candidate for n in walk(root) if n is not root] + rollouts[i], agg) for i, root in enumerate(roots)]
        answers = [next((c for c in cands if c.finished), None) for cands in scored]
        # No path finished within the budget: commit to the most visited path, finished by one rollout.
        services.finish_by_rollout(answers, scored, lambda i: most_visited_path(roots[i]).candidate.path)
        return [services.result(i, answers[i], scored[i]) for i in range(len(problems))]


register(MCTS())
