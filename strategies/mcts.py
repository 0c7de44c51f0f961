"""Monte Carlo tree search with the PRM as the value function.

Per problem, a tree of paths. Each iteration, for every problem at once:
  selection  from the root, follow the child maximizing PUCT
             Q + c_puct * P * sqrt(N_parent) / (1 + N_child), with P the child's PRM step score
             (the prior) and Q its mean backed-up value (the prior until visited);
  expansion  propose `mcts_expand` next steps at the selected leaf (one propose call and one
             score call for all problems);
  value      the best new child's aggregated PRM score, or with `mcts_rollout` the PRM score
             of a rollout to EOS from that child (one more complete + score call);
  backup     add the value along the path to the root.
The budget is `mcts_iterations` iterations (policy calls) per problem. The answer is the
finished path with the best aggregated score; if no path finished within the budget, the
most visited path is finished by one rollout and that is the answer. The
result's candidates are every scored node of the tree, best first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

from strategies.base import Candidate, SearchConfig, SearchResult, Services, is_open, register


@dataclass
class Node:
    candidate: Candidate
    parent: "Node | None" = None
    children: list["Node"] = field(default_factory=list)
    visits: int = 0
    value_sum: float = 0.0

    @property
    def prior(self) -> float:
        return self.candidate.value("last")

    def q(self) -> float:
        return self.value_sum / self.visits if self.visits else self.prior

    def terminal(self, config: SearchConfig) -> bool:
        return not is_open(self.candidate.path, config)


def select_leaf(root: Node, config: SearchConfig) -> Node:
    node = root
    while node.children:
        total = math.sqrt(max(node.visits, 1))
        node = max(node.children, key=lambda ch: ch.q() + config.c_puct * ch.prior * total / (1 + ch.visits))
    return node


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
        stack.extend(node.children)


class MCTS:
    name = "mcts"

    def search(self, problems: Sequence[Any], policy, prm, config: SearchConfig) -> list[SearchResult]:
        services = Services(problems, policy, prm, config)
        roots = [Node(Candidate(services.root(i), [])) for i in range(len(problems))]

        for _ in range(config.mcts_iterations):
            leaves = [select_leaf(root, config) for root in roots]
            for leaf in leaves:  # a finished leaf needs no call: back its own value up again
                if leaf.terminal(config):
                    backup(leaf, leaf.candidate.value(config.aggregation))
            todo = [i for i, leaf in enumerate(leaves) if not leaf.terminal(config)]
            if not todo:
                break
            children = services.expand([(i, leaves[i].candidate.path) for i in todo], n=config.mcts_expand)
            best = []
            for i, kids in zip(todo, children):
                leaves[i].children = [Node(k, parent=leaves[i]) for k in kids]
                best.append(max(leaves[i].children, key=lambda n: n.candidate.value(config.aggregation)))
            values = [b.candidate.value(config.aggregation) for b in best]
            if config.mcts_rollout:
                items = [(i, b.candidate.path) for i, b in zip(todo, best) if not b.terminal(config)]
                rollouts = iter(services.rollout(items, n=1))
                values = [next(rollouts)[0].value(config.aggregation) if not b.terminal(config) else v for b, v in zip(best, values)]
            for b, v in zip(best, values):
                backup(b, v)

        scored = [sorted((n.candidate for n in walk(root) if n is not root), key=lambda c: c.value(config.aggregation), reverse=True) for root in roots]
        chosen = [next((c for c in cands if c.path.finished), None) for cands in scored]
        # Out of budget before any path finished: commit to the most visited path and finish
        # it with one rollout (one complete + score call for all such problems).
        unfinished = [(i, self._most_visited(roots[i]).candidate.path) for i, c in enumerate(chosen) if c is None]
        for (i, _), (rollout,) in zip(unfinished, services.rollout(unfinished, n=1)):
            chosen[i] = rollout
            scored[i].insert(0, rollout)
        return [services.result(i, chosen[i], scored[i]) for i in range(len(problems))]

    @staticmethod
    def _most_visited(root: Node) -> Node:
        node = root
        while node.children:
            node = max(node.children, key=lambda n: (n.visits, n.prior))
        return node


register(MCTS())
