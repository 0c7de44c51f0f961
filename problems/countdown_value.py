"""The countdown value model: P(the target can still be made) from the numbers a step leaves,
learned per state, and a PRM whose score it caps.

Whether four numbers can still make the target is the judgement a token PRM of the policy's size
does not learn (README: 65% right with four numbers left), because its data shows each state with
one target, and (target, state) pairs repeat far less than states do. A `StateTable` reads the
numbers alone and writes a logit for every target 10..100, so one training row (a state the
oracle labelled for every target; trainers.countdown_value) teaches the state's whole reachable
set. It memorizes the states random walks pass, which are most of the states a search meets.

`ValueCappedPRM` serves the PRM and the tables as one verifier: a step that leaves as many
numbers as a table reads scores min(PRM, table's P(target reachable from the numbers the step
claims)). The PRM judges legality there (a broken step stays low); the table judges the plan.
The shipped PRM is trained that way: at those steps its labels are legality alone
(`trainers.prm --legality_left 3,4`), so served without the tables it passes a legal dead end.
Every other step keeps the PRM's score. A recipe asks for it with `prm: {value: DIR}`.

    prm = ValueCappedPRM(VLLMPRM(...), load_tables("models/countdown-value"))

A table directory holds `config.json` ({"tables": [{"left", "width", "hidden", "file"}]}) and one
safetensors file per table (float16 on disk, float32 in use).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from engine.models import ModelDirError
from engine.types import Scores, StepPath
from problems import countdown as cd

TARGETS = range(10, 101)
VOCAB = 1001  # countdown step results are at most 1,000


class StateTable(nn.Module):
    """The numbers (sorted) alone in, one logit per target out: an embedding each, concatenated, a 2-layer MLP."""

    def __init__(self, width: int, hidden: int, left: int):
        super().__init__()
        self.left, self.width, self.hidden = left, width, hidden  # how many numbers it reads; its sizes
        self.numbers = nn.Embedding(VOCAB, width)
        self.mlp = nn.Sequential(nn.Linear(left * width, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, len(TARGETS)))

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.numbers(states).flatten(1))


def claimed_state(target: int, step: str, left: int | None = None) -> tuple[int, ...] | None:
    """The numbers a countdown step claims are left, sorted, where a table can read them: the
    target in range, every number below VOCAB and, given `left`, that many numbers; else None."""
    parsed = cd.parse_step(step)
    if not parsed or target not in TARGETS or max(parsed[4], default=VOCAB) >= VOCAB or left not in (None, len(parsed[4])):
        return None
    return tuple(sorted(parsed[4]))


def predict(table: StateTable, targets: torch.Tensor, states: torch.Tensor, device: torch.device | str = "cpu") -> torch.Tensor:
    """P(reachable) of each (target, state), in chunks."""
    out = []
    with torch.no_grad():
        for k in range(0, len(states), 65536):
            t, x = targets[k : k + 65536].to(device), states[k : k + 65536].to(device)
            logits = table(x).float()[torch.arange(len(x), device=x.device), t - TARGETS[0]]
            out.append(torch.sigmoid(logits).cpu())
    return torch.cat(out) if out else torch.empty(0)


def save_tables(tables: Sequence[StateTable], out_dir: str | Path) -> None:
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    config = []
    for t in tables:
        name = f"table{t.left}.safetensors"
        save_file({k: v.detach().to(torch.float16).cpu().contiguous() for k, v in t.state_dict().items()}, str(out / name))
        config.append({"left": t.left, "width": t.width, "hidden": t.hidden, "file": name})
    (out / "config.json").write_text(json.dumps({"kind": "countdown-state-tables", "tables": config}, indent=2) + "\n")


def load_tables(model_dir: str | Path) -> list[StateTable]:
    """The tables saved by save_tables, or a ModelDirError saying what is missing."""
    from safetensors.torch import load_file

    path = Path(model_dir)
    config_file = path / "config.json"
    if not config_file.is_file():
        raise ModelDirError(f"value model directory {path} has no config.json (train one: python -m trainers.countdown_value)")
    try:
        specs = json.loads(config_file.read_text())["tables"]
        tables = []
        for spec in specs:
            table = StateTable(spec["width"], spec["hidden"], spec["left"])
            table.load_state_dict({k: v.float() for k, v in load_file(str(path / spec["file"])).items()})
            tables.append(table.eval())
    except (KeyError, TypeError, ValueError, FileNotFoundError, RuntimeError) as e:
        raise ModelDirError(f"value model directory {path}: not a countdown state-table model ({type(e).__name__}: {e})") from None
    if len({t.left for t in tables}) != len(tables) or not tables:
        raise ModelDirError(f"value model directory {path}: needs one table per count of numbers, got {[t.left for t in tables]}")
    return tables


class CappedPRM:
    """What a PRM wrapper that lowers some of its scores shares: the wrapped PRM's format,
    encoder and length limit, and its caches cleared with the wrapper's own (`_reset`)."""

    def __init__(self, prm):
        self.prm, self.fmt = prm, prm.fmt

    @property
    def encoder(self):
        return self.prm.encoder

    @property
    def max_len(self) -> int:
        return self.prm.max_len

    def reset_caches(self) -> None:
        self.prm.reset_caches()
        self._reset()

    def _reset(self) -> None:
        pass


class ValueCappedPRM(CappedPRM):
    """A PRM whose score on each step a table reads is capped by the table's P(reachable).

    The PRM scores every step of a path again each call (its prefix cache makes that cheap);
    the tables' answers are kept the same way, per (target, numbers), so a step's state is
    read by a table once, not once per extension of its path."""

    def __init__(self, prm, tables: Sequence[StateTable]):
        super().__init__(prm)
        self.tables = {t.left: t for t in tables}  # numbers left -> table
        self.known: dict[tuple[int, tuple[int, ...]], float] = {}  # (target, numbers) -> P(reachable)

    def _reset(self) -> None:
        self.known.clear()

    def score(self, paths: Sequence[StepPath]) -> Scores:
        out = self.prm.score(paths)
        scores = [list(s) for s in out.scores]
        capped: list[tuple[int, int, tuple[int, tuple[int, ...]]]] = []  # (path, step, key)
        new: dict[int, dict[tuple[int, tuple[int, ...]], None]] = {k: {} for k in self.tables}  # per table, keys not read yet
        for i, path in enumerate(paths):
            target = cd.parse_question(path.question)[0]
            for j, step in enumerate(path.steps[: len(scores[i])]):
                if (state := claimed_state(target, step)) and len(state) in self.tables:
                    capped.append((i, j, (target, state)))
                    if (target, state) not in self.known:
                        new[len(state)][target, state] = None
        for k, keys in new.items():
            if keys:
                p = predict(self.tables[k], torch.tensor([t for t, _ in keys]), torch.tensor([state for _, state in keys]))
                self.known.update(zip(keys, p.tolist()))
        for i, j, key in capped:
            scores[i][j] = min(scores[i][j], self.known[key])
        return Scores(scores, out.cost)


def posed_steps(path: StepPath) -> list[StepPath | None]:
    """Each step of a countdown path posed as the one step of a question from the numbers the
    step before it claims to leave (the first step: from the path's own question). Steps are
    Markov, so a step is legal in its path iff it is legal posed so. None where the step before
    does not parse (the path is broken there already) or the question is not countdown's."""
    parsed = cd.parse_question(path.question)
    if parsed is None:
        return [None] * len(path.steps)
    target, state = parsed
    out: list[StepPath | None] = []
    for step in path.steps:
        out.append(StepPath(cd.question_text(target, state), (step,)) if state else None)
        before = cd.parse_step(step)
        state = before[4] if before else ()
    return out


class LegalityCappedPRM(CappedPRM):
    """A countdown PRM whose score on each step is capped by a legality model's, reading the step
    posed from the numbers before it (`posed_steps`): the shipped one is problems.countdown_legality
    (a net that checks the bookkeeping and recomputes the arithmetic); a token PRM trained on
    one-step rows labelled by legality alone (countdown.legality_steps) serves too. The token PRM
    judges a step by the numbers it claims and barely checks how it got there (README: it
    passes every absent operand taken from four or more numbers); the legality model reads only
    the transition. Each posed step is scored once per call, however many paths share it."""

    def __init__(self, prm, legality):
        super().__init__(prm)
        self.legality = legality

    def _reset(self) -> None:
        self.legality.reset_caches()

    def score(self, paths: Sequence[StepPath]) -> Scores:
        out = self.prm.score(paths)
        scores = [list(s) for s in out.scores]
        where: dict[StepPath, list[tuple[int, int]]] = {}  # posed step -> (path, step) it caps
        for i, path in enumerate(paths):
            for j, posed in enumerate(posed_steps(path)[: len(scores[i])]):
                if posed is not None:
                    where.setdefault(posed, []).append((i, j))
        if where:
            legal = self.legality.score(list(where))
            out.cost += legal.cost
            for spots, s in zip(where.values(), legal.scores, strict=True):
                for i, j in spots:
                    scores[i][j] = min(scores[i][j], s[0])
        return Scores(scores, out.cost)
