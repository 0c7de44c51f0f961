"""What every strategy shares: the config, the two services it searches with (the `Policy`
and `PRM` protocols), the result, the registry, and how an answer is chosen among candidates.

A strategy is written against the two protocols below only (never vLLM or torch):
`engine.policy.Policy` and `engine.prm`'s scorers implement them with real models,
`problems.oracle.OraclePRM` with a world's exact labels, tests/fakes.py from a script. It
searches a batch of problems together: each search step is ONE `propose` (or `complete`)
call and ONE `score` call over the open paths of all problems, made through `Services`, which
also books each call's cost to the problems that took part in it.

The budget `n` means one thing everywhere: how many samples of the policy a problem's search
draws at each point it samples, n whole paths (best_of_n, majority) or n next steps per round
(beam, dvts: about the tokens of n whole paths). mcts expands 2n times (unless
`mcts_iterations` says otherwise), `mcts_expand` children each; dfs at most n times,
`dfs_width` (default `beam_width`) children each, and stops once it accepts an answer; greedy and greedy_retry do not
use it (their `uses_budget` is False). Each strategy's docstring says how it spends it.

Batch invariance: a problem's result depends on the problem, the models, the config and
`config.seed`, never on the other problems in its batch. Each strategy runs every problem's
search on that problem's state alone, and `Services` gives every policy request a seed made
from (config.seed, the question, how many requests this problem has made so far), which the
policy uses to seed that request's sampling.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any, Callable, Protocol, Sequence

from engine.answers import answer_key, final_answer
from engine.format import StepFormat
from engine.types import Completions, Cost, Proposals, Scores, StepPath


class Policy(Protocol):
    """What a strategy asks of the policy (engine.policy.Policy serves it with vLLM)."""

    fmt: StepFormat  # its step format: SEP, EOS, and how a path's final answer is read

    def propose(self, paths: Sequence[StepPath], n: int | Sequence[int], *, temperature: float | Sequence[float], top_p: float,
                max_step_tokens: int, seeds: Sequence[int] | None) -> Proposals:
        """n candidate next steps for every path (n: one count, or one per path), in one batched call."""
        ...

    def complete(self, paths: Sequence[StepPath], n: int | Sequence[int], *, temperature: float | Sequence[float], top_p: float,
                 max_tokens: int, seeds: Sequence[int] | None) -> Completions:
        """n rollouts of every path to EOS (or max_tokens), in one batched call."""
        ...


class PRM(Protocol):
    """What a strategy asks of the PRM (engine.prm's scorers, problems.oracle.OraclePRM)."""

    fmt: StepFormat  # the format it reads steps in; it re-encodes the policy's step texts

    def score(self, paths: Sequence[StepPath]) -> Scores:
        """P(correct) of every step of every path, in one call."""
        ...


def check_compatible(policy: Policy, prm: PRM) -> None:
    """The PRM reads the policy's steps as text and re-encodes them in its own format, so the
    formats may differ (a "\\n\\n" policy and a "ки"-tagged PRM); but a step that contains the
    PRM's separator cannot be scored. Checked here once for the policy's own separator."""
    p, r = policy.fmt, prm.fmt
    if r.sep != p.sep and r.sep in p.sep:
        raise ValueError(f"the PRM's step separator {r.sep!r} is part of the policy's {p.sep!r}: the PRM cannot tell steps apart")


@dataclass
class SearchConfig:
    """Knobs of all strategies; each reads the ones it needs."""

    n: int = 8  # the budget: samples per problem at each sampling point (module docstring)
    beam_width: int = 4  # M (at most n): beam keeps n/M paths; dvts runs n/M subtrees of M proposals a round
    seed: int = 0  # with the question, seeds every policy request of a problem
    temperature: float = 0.8
    top_p: float = 1.0
    max_step_tokens: int = 64
    max_steps: int = 24  # depth limit of a path
    max_tokens: int = 512  # rollout length (best_of_n, mcts rollouts)
    aggregation: str = "last"  # how a path's step scores become one number: last, min, prod, mean
    selection: str = "weighted"  # best_of_n, beam, dvts: prm (best path), weighted (PRM-weighted vote), majority (plain vote)
    threshold: float = 0.5  # greedy_retry: accept a step when P(correct) >= threshold
    max_retries_per_step: int = 4  # greedy_retry
    max_retries_per_problem: int = 16  # greedy_retry
    greedy_first: bool = True  # greedy_retry: the first try at each position is greedy, retries are sampled
    mcts_iterations: int | None = None  # mcts: expansions (policy calls) per problem; None: 2n
    mcts_expand: int = 4  # mcts: children per expansion
    c_puct: float = 1.0  # mcts exploration constant
    mcts_rollout: bool = False  # mcts: value = PRM on a rollout to EOS instead of the new step's score
    dfs_prune: float = 0.2  # dfs: a path whose last step scores below this is pruned (chosen on countdown dev)
    dfs_accept: float = 0.5  # dfs: a finished path whose last step scores at least this is the answer
    dfs_width: int | None = None  # dfs: next steps proposed per expansion (at most n); None: beam_width


@dataclass
class Candidate:
    """A path with the PRM's P(correct) for each of its steps."""

    path: StepPath
    scores: list[float]

    def value(self, how: str) -> float:
        return aggregate(self.scores, how)

    @property
    def finished(self) -> bool:
        return self.path.finished


@dataclass
class SearchResult:
    problem_id: str
    question: str
    answer: str | None  # the final answer text (the chosen path's last step)
    path: StepPath | None  # the chosen path
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
            "candidates": [{"steps": list(c.path.steps), "finished": c.path.finished, "scores": c.scores} for c in self.candidates],
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
    needs_prm: bool  # False: searches without a PRM (greedy, majority)
    uses_budget: bool  # False: config.n does not change what it does (greedy, greedy_retry)

    def search(self, problems: Sequence[Any], policy: Policy, prm: PRM | None, config: SearchConfig) -> list[SearchResult]: ...


def request_seed(seed: int, question: str, k: int) -> int:
    """The seed of a problem's k-th policy request: a stable hash, the same in every process."""
    digest = hashlib.blake2b(f"{seed}\0{k}\0{question}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & 0x7FFFFFFF


class Services:
    """The policy and the PRM, called once per search step for all problems, with cost books."""

    def __init__(self, problems: Sequence[Any], policy: Policy, prm: PRM | None, config: SearchConfig):
        if prm is not None:
            check_compatible(policy, prm)
        self.problems = list(problems)
        self.policy, self.prm, self.config = policy, prm, config
        self.costs = [Cost() for _ in self.problems]
        self.requests = [0] * len(self.problems)  # policy requests made so far, per problem: their seeds

    def root(self, i: int) -> StepPath:
        return StepPath(self.problems[i].question)

    def expand(self, items: Sequence[tuple[int, StepPath]], children: int | Sequence[int], temperatures: Sequence[float] | None = None) -> list[list[Candidate]]:
        """Scored children of each (problem index, path): one propose call, one score call.

        children: one count for all items or one per item; temperatures: one per item (default: the config's)."""
        if not items:
            return []
        cfg = self.config
        temperature = cfg.temperature if temperatures is None else list(temperatures)
        out = self.policy.propose([p for _, p in items], children, temperature=temperature, top_p=cfg.top_p, max_step_tokens=cfg.max_step_tokens,
                                  seeds=self._seeds(items))
        self._book(out.cost, [i for i, _ in items])
        children = [[path.extend(step) for step in steps] for (_, path), steps in zip(items, out.steps)]
        return self._scored(items, children)

    def rollout(self, items: Sequence[tuple[int, StepPath]], samples: int, score: bool = True) -> list[list[Candidate]]:
        """Scored rollouts to EOS of each (problem index, path), `samples` each: one complete call, one score call."""
        if not items:
            return []
        cfg = self.config
        out = self.policy.complete([p for _, p in items], samples, temperature=cfg.temperature, top_p=cfg.top_p, max_tokens=cfg.max_tokens,
                                   seeds=self._seeds(items))
        self._book(out.cost, [i for i, _ in items])
        if not score:
            return [[Candidate(p, []) for p in paths] for paths in out.paths]
        return self._scored(items, out.paths)

    def finish_by_rollout(self, answers: list[Candidate | None], candidates: list[list[Candidate]], start: Callable[[int], StepPath]) -> None:
        """Problems with no answer yet: the path start(i) finished by one rollout (one complete +
        score call for all of them) becomes the answer and the first candidate."""
        items = [(i, start(i)) for i, answer in enumerate(answers) if answer is None]
        for (i, _), (rollout,) in zip(items, self.rollout(items, samples=1)):
            answers[i] = rollout
            candidates[i].insert(0, rollout)

    def answer(self, path: StepPath) -> str | None:
        """The path's final answer text, read as the policy's step format says (engine.answers)."""
        return final_answer(path.steps, self.policy.fmt.answer_format)

    def answer_key(self, path: StepPath) -> str | None:
        """What votes compare: the path's final answer up to equivalence (engine.answers.answer_key)."""
        return answer_key(self.answer(path))

    def _seeds(self, items: Sequence[tuple[int, StepPath]]) -> list[int]:
        seeds = []
        for i, _ in items:
            seeds.append(request_seed(self.config.seed, self.problems[i].question, self.requests[i]))
            self.requests[i] += 1
        return seeds

    def _scored(self, items, children: list[list[StepPath]]) -> list[list[Candidate]]:
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
        answer = self.answer(chosen.path) if chosen else None
        return SearchResult(
            problem_id=str(getattr(problem, "id", i)),
            question=problem.question,
            answer=answer,
            path=chosen.path if chosen else None,
            scores=chosen.scores if chosen else [],
            candidates=candidates,
            cost=self.costs[i],
        )


SELECTIONS = ("prm", "weighted", "majority")


def select(candidates: Sequence[Candidate], selection: str, aggregation: str, key: Callable[[StepPath], str | None]) -> Candidate | None:
    """The answer among candidates.

    Only finished candidates compete (an unfinished one's last step is not an answer), unless
    none finished. selection:
      prm       the best aggregated PRM score;
      weighted  each answer (grouped by key: equivalent answers are one) gets the sum of its
                candidates' scores; the winner's best-scored candidate;
      majority  each answer gets one vote per candidate; the winner's first candidate.
    Candidates whose key is None (no answer) do not vote. Ties go to the answer (or the
    candidate) seen first, so the choice depends only on the candidates' order.
    """
    if selection not in SELECTIONS:
        raise ValueError(f"unknown selection {selection!r}; choose from {SELECTIONS}")
    pool = [c for c in candidates if c.finished] or list(candidates)
    if not pool:
        return None
    value = lambda c: c.value(aggregation)  # noqa: E731
    if selection == "prm":
        return max(pool, key=value)  # max keeps the first of equals
    keys = [key(c.path) for c in pool]
    votes: dict[str, float] = {}
    for c, k in zip(pool, keys):
        if k is not None:
            votes[k] = votes.get(k, 0.0) + (value(c) if selection == "weighted" else 1.0)
    if not votes:
        return max(pool, key=value) if selection == "weighted" else pool[0]
    winner = max(votes, key=votes.get)
    with_winner = [c for c, k in zip(pool, keys) if k == winner]
    return max(with_winner, key=value) if selection == "weighted" else with_winner[0]


def beam_size(config: SearchConfig) -> int:
    """n/M: the paths a beam keeps (beam) or the subtrees searched side by side (dvts), M = min(beam_width, n)."""
    if config.beam_width < 1 or config.n < 1:
        raise ValueError(f"need n >= 1 and beam_width >= 1, got n={config.n}, beam_width={config.beam_width}")
    return config.n // min(config.beam_width, config.n)


def spread(total: int, parts: int) -> list[int]:
    """total split over parts as evenly as possible, the larger shares first: spread(10, 4) = [3, 3, 2, 2]."""
    return [total // parts + (1 if j < total % parts else 0) for j in range(parts)]


def best(candidates: Sequence[Candidate], aggregation: str) -> Candidate:
    """The best-scored candidate by aggregation, the first of equals."""
    return max(candidates, key=lambda c: c.value(aggregation))


def ranked(candidates: Sequence[Candidate], aggregation: str) -> list[Candidate]:
    """Best aggregated score first; equals keep their order."""
    return sorted(candidates, key=lambda c: c.value(aggregation), reverse=True)


STRATEGIES: dict[str, Strategy] = {}


def register(strategy: Strategy) -> Strategy:
    STRATEGIES[strategy.name] = strategy
    return strategy


def get_strategy(name: str) -> Strategy:
    if name not in STRATEGIES:
        raise KeyError(f"unknown strategy {name!r}; choose from {', '.join(sorted(STRATEGIES))}")
    return STRATEGIES[name]


def unique(candidates: Sequence[Candidate], seen: set | None = None) -> list[Candidate]:
    """Candidates with distinct paths (sampling often repeats a step), first seen kept, in order;
    with `seen`, also none already in it, and it gets the new ones (a search's memory of paths met)."""
    seen = set() if seen is None else seen
    out = []
    for c in candidates:
        if (c.path.steps, c.path.finished) not in seen:
            seen.add((c.path.steps, c.path.finished))
            out.append(c)
    return out


def is_open(path: StepPath, config: SearchConfig) -> bool:
    return not path.finished and len(path.steps) < config.max_steps

