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
from evals.reachability_probe import TARGETS, VOCAB, StateTable
from problems import countdown as cd


def load_table(path: str) -> StateTable:
    saved = torch.load(path)
    args = saved["args"]
    if not args["per_state"]:
        raise SystemExit(f"error: {path} is not a --per_state probe")
    table = StateTable(args["width"], args["hidden"], args["numbers_left"])
    table.load_state_dict(saved["state_dict"])
    return table.eval()


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
                parsed = cd.parse_step(step)
                if parsed and len(parsed[4]) in asks and max(parsed[4]) < VOCAB and target in TARGETS:
                    asks[len(parsed[4])].append((i, j, target, tuple(sorted(parsed[4]))))
        with torch.no_grad():
            for k, rows in asks.items():
                if rows:
                    logits = self.tables[k](torch.tensor([s for *_, s in rows]))
                    p = torch.sigmoid(logits[torch.arange(len(rows)), torch.tensor([t - TARGETS[0] for _, _, t, _ in rows])]).tolist()
                    for (i, j, _, _), v in zip(rows, p):
                        scores[i][j] = min(scores[i][j], v)
        return Scores(scores, out.cost)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0].startswith("-"):
        raise SystemExit(__doc__)
    tables = [load_table(p) for p in argv[0].split(",")]
    load_models = run.load_models

    def capped(*args, **kwargs):
        policy, prm = load_models(*args, **kwargs)
        return policy, (TableCappedPRM(prm, tables) if prm is not None else None)

    run.load_models = capped
    run.main(argv[1:])


if __name__ == "__main__":
    main()
