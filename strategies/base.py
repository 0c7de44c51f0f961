"""What every strategy shares: the config, the result, the registry, and the two services.

A strategy is written against a Policy and a PRM only (never vLLM or torch). It searches
a batch of problems together: each search step is ONE `propose` (or `complete`) call and
ONE `score` call over the open paths of all problems, made through `Services`, which also
books each call's cost to the problems that took part in it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Protocol, Sequence

from engine.prm import PRM, check_compatible
from engine.types import Cost, Path


@dataclass
class SearchConfig:
    """Knobs of all strategies; each reads the ones it needs."""

    n: int = 8  # budget: candidates per search step (beam, dvts) or rollouts (best_of_n)
    beam_width: int = 4  # M: beam keeps n/M paths and expands each by M; dvts runs n/M subtrees
    temperature: float = 0.8
    top_p: float = 1.0
    max_step_tokens: int = 64
    max_steps: int = 24  # depth limit of a path
    max_tokens: int = 512  # rollout length (best_of_n, mcts rollouts)
    aggregation: str = "last"  # how a path's step scores become one number: last, min, prod, mean
    selection: str = "weighted"  # best_of_n: prm (best path), weighted (PRM-weighted majority), majority (no PRM)
    threshold: float = 0.5  # greedy_retry: accept a step when P(correct) >= threshold
    max_retries_per_step: int = 4  # greedy_retry
    max_retries_per_problem: int = 16  # greedy_retry
    greedy_first: bool = True  # greedy_retry: the first try at each position is greedy, retries are sampled
    mcts_iterations: int = 24  # mcts: policy calls per problem
    mcts_expand: int = 4  # mcts: children per expansion
    c_puct: float = 1.0  # mcts exploration constant
    mcts_rollout: bool = False  # mcts: value = PRM on a rollout to EOS instead of the new step's score


@dataclass
class Candidate:
    """A path with the PRM's P(correct) for each of its steps."""

    path: Path
    scores: list[float]

    def value(self, how: str) -> float:
        return aggregate(self.scores, how)


@dataclass
class SearchResult:
    problem_id: str
    question: str
    answer: str | None  # the final answer text (the chosen path's last step)
    path: Path | None  # the chosen path
    scores: list[float]  # its step scores
    candidates: list[Candidate]  # every scored candidate the search ended with
    cost: Cost

    def as_dict(self) -> dict:
        return {
            "id": self.problem_id,
            "question": self.question,
            "answer": self.answer,
            "steps": list(self.path.steps) if self.path else [],
            "finished": bool(self.path and self.path.finished),
            "scores": self.scores,
            "candidates": [{"steps": list(c.path.steps), "scores": c.scores} for c in self.candidates],
            "cost": self.cost.as_dict(),
        }


AGGREGATIONS: dict[str, Callable[[Sequence[float]], float]] = {
    "last": lambda s: s[-1],
    "min": min,
    "prod": math.prod,
    "mean": lambda s: sum(s) / len(s),
}


def aggregate(scores: Sequence[float], how: str) -> float:
    if how not in AGGREGATIONS:
        raise ValueError(f"unknown aggregation {how!r}; choose from {sorted(AGGREGATIONS)}")
    return AGGREGATIONS[how](scores) if scores else 0.0


class Strategy(Protocol):
    name: str

    def search(self, problems: Sequence[Any], policy, prm: PRM | None, config: SearchConfig) -> list[SearchResult]: ...


class Services:
    """The policy and the PRM, called once per search step for all problems, with cost books."""

    def __init__(self, problems: Sequence[Any], policy, prm: PRM | None, config: SearchConfig):
        if prm is not None:
            check_compatible(policy, prm)
        self.problems = list(problems)
        self.policy, self.prm, self.config = policy, prm, config
        self.costs = [Cost() for _ in self.problems]

    def root(self, i: int) -> Path:
        return Path(self.problems[i].question)

    def expand(self, items: Sequence[tuple[int, Path]], n: int, temperatures: Sequence[float] | None = None) -> list[list[Candidate]]:
        """n scored children of each (problem index, path): one propose call, one score call.

        temperatures: one per item (default: the config's for all)."""
        if not items:
            return []
        cfg = self.config
        temperature = cfg.temperature if temperatures is None else list(temperatures)
        out = self.policy.propose([p for _, p in items], n, temperature=temperature, top_p=cfg.top_p, max_step_tokens=cfg.max_step_tokens)
        self._book(out.cost, [i for i, _ in items])
        children = [[path.extend(step) for step in steps] for (_, path), steps in zip(items, out.steps)]
        return self._scored(items, children)

    def rollout(self, items: Sequence[tuple[int, Path]], n: int, score: bool = True) -> list[list[Candidate]]:
        """n scored rollouts to EOS of each (problem index, path): one complete call, one score call."""
        if not items:
            return []
        cfg = self.config
        out = self.policy.complete([p for _, p in items], n, temperature=cfg.temperature, top_p=cfg.top_p, max_tokens=cfg.max_tokens)
        self._book(out.cost, [i for i, _ in items])
        if not score:
            return [[Candidate(p, []) for p in paths] for paths in out.paths]
        return self._scored(items, out.paths)

    def _scored(self, items, children: list[list[Path]]) -> list[list[Candidate]]:
        flat = [c for cs in children for c in cs]
        scores = self.prm.score(flat)
        self._book(scores.cost, [i for (i, _), cs in zip(items, children) for _ in cs])
        it = iter(scores.scores)
        return [[Candidate(c, next(it)) for c in cs] for cs in children]

    def _book(self, cost: Cost, owners: list[int]) -> None:
        """Split a batched call's cost over the problems in it, in proportion to their requests."""
        share = 1.0 / len(owners)
        weights: dict[int, float] = {}
        for i in owners:
            weights[i] = weights.get(i, 0.0) + share
        for i, w in weights.items():
            self.costs[i] += cost.scaled(w)

    def result(self, i: int, chosen: Candidate | None, candidates: list[Candidate]) -> SearchResult:
        problem = self.problems[i]
        answer = self.policy.fmt.extract_answer(chosen.path.steps) if chosen else None
        return SearchResult(
            problem_id=str(getattr(problem, "id", i)),
            question=problem.question,
            answer=answer,
            path=chosen.path if chosen else None,
            scores=chosen.scores if chosen else [],
            candidates=candidates,
            cost=self.costs[i],
        )


STRATEGIES: dict[str, Strategy] = {}


def register(strategy: Strategy) -> Strategy:
    STRATEGIES[strategy.name] = strategy
    return strategy


def get_strategy(name: str) -> Strategy:
    if name not in STRATEGIES:
        raise KeyError(f"unknown strategy {name!r}; choose from {', '.join(sorted(STRATEGIES))}")
    return STRATEGIES[name]


def unique(candidates: Sequence[Candidate]) -> list[Candidate]:
    """Candidates with distinct paths (sampling often repeats a step), first seen kept."""
    return list({(c.path.steps, c.path.finished): c for c in reversed(candidates)}.values())[::-1]


def is_open(path: Path, config: SearchConfig) -> bool:
    return not path.finished and len(path.steps) < config.max_steps

