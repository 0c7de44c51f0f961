"""The oracle PRM: an embedded world's exact process labels served through the PRM interface.

    prm = OraclePRM("countdown", policy.fmt)      # or: python -m evals.run --prm oracle
    prm.score([StepPath("24:3 7 8 12", ("12-8=4|3 4 7",))]).scores   # [[0.0]]: a dead end

P(correct) of a step is 1.0 when the world labels it Positive (countdown: legal so far and the
target still reachable), else 0.0. No model runs, so it costs nothing; searched with it, each
strategy shows its ceiling at each budget, and a learned PRM's accuracy as a fraction of the
oracle's says whether to improve the verifier or the search.
"""

from __future__ import annotations

from typing import Sequence

from engine.format import StepFormat
from engine.types import Cost, Scores, StepPath
from problems.worlds import get_world


class OraclePRM:
    def __init__(self, world: str, fmt: StepFormat):
        self.world = get_world(world)
        self.fmt = fmt

    def score(self, paths: Sequence[StepPath]) -> Scores:
        scores = [[1.0 if ok else 0.0 for ok in self.world.step_labels(p.question, p.steps)] for p in paths]
        return Scores(scores, Cost(prm_calls=1))

    def reset_caches(self) -> None:
        """Nothing to forget: the labels are computed afresh every call."""
