"""Plain data passed between the engine, the strategies and the evals."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, fields


@dataclass(frozen=True)
class StepPath:
    """A partial or finished solution: the question and the steps taken so far."""

    question: str
    steps: tuple[str, ...] = ()
    finished: bool = False  # the policy emitted EOS

    def extend(self, step: "Step") -> "StepPath":
        steps = self.steps + (step.text,) if step.text or not step.finished else self.steps
        return StepPath(self.question, steps, step.finished)


@dataclass(frozen=True)
class Step:
    """One proposed next step."""

    text: str  # without SEP/EOS
    finished: bool = False  # EOS came right after this step (or instead of one): the path is done
    truncated: bool = False  # hit max_step_tokens without SEP; SEP was appended
    num_tokens: int = 0  # tokens the policy generated for it


@dataclass
class Proposals:
    """What Policy.propose returns."""

    steps: list[list[Step]]  # n candidates per path, in the order of the paths
    cost: "Cost"


@dataclass
class Completions:
    """What Policy.complete returns."""

    paths: list[list[StepPath]]  # n rollouts per path
    cost: "Cost"


@dataclass
class Scores:
    """What a PRM's score returns."""

    scores: list[list[float]]  # P(correct) of every step of every path
    cost: "Cost"


@dataclass
class Cost:
    """What a call (or a whole search) spent. Adds up with `+=`."""

    policy_calls: int = 0
    prompt_tokens: int = 0  # prompt tokens sent to the policy
    cached_tokens: int = 0  # of those, served from vLLM's prefix cache
    generated_tokens: int = 0
    prm_calls: int = 0
    prm_tokens_requested: int = 0  # tokens of every path the PRM was asked to score
    prm_tokens_computed: int = 0  # tokens it actually ran (the rest came from its caches)
    policy_seconds: float = 0.0
    prm_seconds: float = 0.0

    def __iadd__(self, other: "Cost") -> "Cost":
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        return self

    def scaled(self, weight: float) -> "Cost":
        return Cost(**{name: value * weight for name, value in self.as_dict().items()})

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass
class Timer:
    """`with Timer() as t: ...; t.seconds`"""

    seconds: float = field(default=0.0)

    def __enter__(self) -> "Timer":
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self._start
