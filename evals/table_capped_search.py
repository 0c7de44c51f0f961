"""What a better judgement of countdown states buys a search: `evals.run` with the recipe's PRM
capped by reachability probes (`evals.reachability_probe --per_state --save`), an experiment.

A step that leaves as many numbers as a probe reads gets min(PRM score, the probe's P(target
reachable from the numbers the step claims)): the PRM still judges legality (a broken step stays
low), the probe judges the plan. Every other step keeps the PRM's score. The arguments after the
probes are evals.run's.

    python -m evals.table_capped_search runs/s16/table4.pt,runs/s16/table3.pt --recipe recipes/countdown.yaml \\
        --strategy dfs --n 16 --dataset countdown-dev --limit 200 --output runs/s16/capped-dfs16
"""

from __future__ import annotations

import sys
from typing import Sequence

import torch

from engine.types import Scores, StepPath
from evals import run
from evals.reachability_probe import StateTable, claimed_state, load_state_table, predict
from problems import countdown as cd


class TableCappedPRM:
    def __init__(self, prm, tables: Sequence[StateTable]):
        self.prm, self.fmt = prm, prm.fmt
        self.tables = {t.left: t for t in tables}  # numbers left -> probe

    def reset_caches(self) -> None:
        self.prm.reset_caches()

    def score(self, paths: Sequence[StepPath]) -> Scores:
        out = self.prm.score(paths)
        scores = [list(s) for s in out.scores]
        asks: dict[int, list[tuple[int, int, int, tuple[int, ...]]]] = {k: [] for k in self.tables}
        for i, path in enumerate(paths):
            target = cd.parse_question(path.question)[0]
            for j, step in enumerate(path.steps[: len(scores[i])]):
                if (state := claimed_state(target, step)) and len(state) in asks:
                    asks[len(state)].append((i, j, target, state))
        for k, rows in asks.items():
            if rows:
                p = predict(self.tables[k], torch.tensor([t for _, _, t, _ in rows]), torch.tensor([s for *_, s in rows]), torch.device("cpu"))
                for (i, j, _, _), v in zip(rows, p.tolist()):
                    scores[i][j] = min(scores[i][j], v)
        return Scores(scores, out.cost)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0].startswith("-"):
        raise SystemExit(__doc__)
    tables = [load_state_table(p) for p in argv[0].split(",")]
    load_models = run.load_models

    def capped(*args, **kwargs):
        policy, prm = load_models(*args, **kwargs)
        return policy, (TableCappedPRM(prm, tables) if prm is not None else None)

    run.load_models = capped
    run.main(argv[1:])


if __name__ == "__main__":
    main()
