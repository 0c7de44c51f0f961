"""A deterministic fake policy and PRM: scripted worlds for exact tests of the search algorithms.

A world maps (question, steps so far) to the options for the next step, each a
(text, finished) pair ("" with finished=True is EOS alone), and each step to a PRM score.
The fake policy proposes from those options:
  - temperature 0: the first option (the greedy one), n times;
  - sampled, scripted (`random=False`): the options in turn, starting after the greedy one,
    one cursor per path that goes on across calls, so resampling a path gives the next option;
  - sampled, random (`random=True`): draws with `random.Random(seed)` from the request's seed,
    so the samples depend on the seed the strategy gives, as they do with the real policy.
Both record every request, so tests can check what was asked, how often, and for whom.
"""

from __future__ import annotations

import hashlib
import random as _random
from dataclasses import dataclass, field
from typing import Callable, Sequence

from engine.format import StepFormat
from engine.policy import per_path
from engine.types import Completions, Cost, Proposals, Scores, Step, StepPath

Option = tuple[str, bool]
Options = Callable[[str, tuple[str, ...]], list[Option]]


@dataclass
class Request:
    question: str
    steps: tuple[str, ...]
    n: int
    temperature: float
    seed: int | None
    kind: str  # "propose" or "complete"


@dataclass
class FakePolicy:
    options: Options
    random: bool = False
    fmt: StepFormat = field(default_factory=StepFormat)
    max_depth: int = 30  # complete(): a rollout still open after this many steps is cut, unfinished
    requests: list[Request] = field(default_factory=list)
    calls: int = 0
    _cursor: dict = field(default_factory=dict)

    def _next(self, path: StepPath, temperature: float, rng: _random.Random | None) -> Option:
        opts = self.options(path.question, path.steps)
        if temperature == 0:
            return opts[0]
        if rng is not None:
            return rng.choice(opts)
        k = self._cursor.get((path.question, path.steps), 1)
        self._cursor[(path.question, path.steps)] = k + 1
        return opts[k % len(opts)]

    def _requests(self, paths, n, temperature, seeds, kind):
        self.calls += 1
        ns, temps = per_path(n, paths, "n"), per_path(temperature, paths, "temperature")
        seeds = list(seeds) if seeds is not None else [None] * len(paths)
        for p, k, t, s in zip(paths, ns, temps, seeds):
            assert not p.finished, "cannot extend a finished path"
            self.requests.append(Request(p.question, p.steps, k, t, s, kind))
            rng = _random.Random(s) if self.random and t != 0 else None
            yield p, k, t, rng

    def propose(self, paths: Sequence[StepPath], n, *, temperature=0.8, top_p=1.0, max_step_tokens=64, seeds=None) -> Proposals:
        out = []
        for path, k, t, rng in self._requests(paths, n, temperature, seeds, "propose"):
            out.append([Step(text, finished=done, num_tokens=len(text) + 1) for text, done in (self._next(path, t, rng) for _ in range(k))])
        return Proposals(out, Cost(policy_calls=1, generated_tokens=sum(s.num_tokens for steps in out for s in steps)))

    def complete(self, paths: Sequence[StepPath], n, *, temperature=0.8, top_p=1.0, max_tokens=512, seeds=None) -> Completions:
        out = []
        for path, k, t, rng in self._requests(paths, n, temperature, seeds, "complete"):
            rollouts = []
            for _ in range(k):
                p = path
                while not p.finished and len(p.steps) < self.max_depth:
                    text, done = self._next(p, t, rng)
                    p = p.extend(Step(text, finished=done))
                rollouts.append(p)
            out.append(rollouts)
        return Completions(out, Cost(policy_calls=1, generated_tokens=sum(len(p.steps) for ps in out for p in ps)))

    def asked(self, question: str | None = None, kind: str | None = None) -> list[Request]:
        return [r for r in self.requests if (question is None or r.question == question) and (kind is None or r.kind == kind)]


@dataclass
class FakePRM:
    """P(correct) of a step = score(question, steps through it); records every path scored."""

    score_of: Callable[[str, tuple[str, ...]], float]
    fmt: StepFormat = field(default_factory=StepFormat)
    scored: list[StepPath] = field(default_factory=list)
    calls: int = 0

    def score(self, paths: Sequence[StepPath]) -> Scores:
        self.calls += 1
        self.scored.extend(paths)
        scores = [[self.score_of(p.question, p.steps[: k + 1]) for k in range(len(p.steps))] for p in paths]
        return Scores(scores, Cost(prm_calls=1))


def scripted(tree: dict[tuple[str, ...], list[Option | str]]) -> Options:
    """Options from a dict: steps so far -> options (a bare string is an unfinished step)."""

    def options(question: str, steps: tuple[str, ...]) -> list[Option]:
        return [(o, False) if isinstance(o, str) else o for o in tree[steps]]

    return options


def table(scores: dict[tuple[str, ...], float], default: float = 0.5) -> Callable[[str, tuple[str, ...]], float]:
    """Scores from a dict: steps through a step -> its score."""
    return lambda question, steps: scores.get(steps, default)


def _hash(*parts) -> int:
    return int.from_bytes(hashlib.blake2b("\0".join(map(str, parts)).encode(), digest_size=8).digest(), "little")


def random_world(question: str, steps: tuple[str, ...]) -> list[Option]:
    """A procedural world: 2-4 options per state, each step "d<k>" with k in 0..4; from depth 2
    on, some options end the path with an answer; everything ends by depth 6."""
    h = _hash(question, *steps)
    width = 2 + h % 3
    depth = len(steps)
    options = []
    for j in range(width):
        hj = _hash(h, j)
        finishes = depth >= 2 and (depth >= 5 or hj % 3 == 0)
        options.append((str(hj % 5) if finishes else f"d{hj % 5}", finishes))
    return options


def random_scores(question: str, steps: tuple[str, ...]) -> float:
    return (_hash("score", question, *steps) % 1000) / 1000
