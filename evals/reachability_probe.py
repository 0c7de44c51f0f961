"""Can a small transformer learn the judgement the countdown PRM misses: can four numbers still
make the target? A probe, apart from the PRM's format: the input is the target and the four
numbers as whole-number tokens (no digits to read), the label the exact oracle's
(`countdown.values`), the data as much as the time allows.

States are the four-number states countdown paths pass through: random legal moves from random
5- and 6-number questions (numbers 1..20) until four numbers are left (`--numbers_left 3`: three,
from 4- to 6-number questions). Every state is labelled for every target 10..100. Held out
(`--held_out`): 10% of the distinct states (`states`: does the judgement generalize to states
never seen?), or 10% of the draws (`draws`: how well are the states a path meets judged, many of
them seen in training, as a verifier trained on the same walks would meet them). Training
samples (state, target) pairs half reachable, half not; the report is accuracy and AUROC on held-out pairs (at
the held-out base rate and balanced), with the majority-class accuracy beside them.

`--per_state` asks the question the other way round: the input is the numbers alone and the
output one logit for every target (an MLP over the numbers' embeddings), so each training row
teaches a state's whole reachable set, 91 labels, not one. `--search_runs` also scores the
(target, numbers) pairs that evals.run candidates met (e.g. runs/cd-test7/dfs-n64): the
judgement a verifier is asked for in a search, split by whether the state was a training state.

    python -m evals.reachability_probe --minutes 3 --states 200000      # a GPU: minutes
    python -m evals.reachability_probe --minutes 0.2 --states 2000 --device cpu   # a smoke run
    python -m evals.reachability_probe --per_state --held_out states --states 400000 --minutes 25 --device cpu \
        --search_runs runs/cd-test7/dfs-n64,runs/cd-test7/best_of_n-n16,runs/cd-test7/beam-n16 --save runs/table4
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import torch
from torch import nn

from problems import countdown as cd
from problems.countdown_value import TARGETS, VOCAB, StateTable, claimed_state, predict, save_tables
from trainers.countdown_value import fit, walks


def search_pairs(run_dirs: list[str], left: int) -> list[tuple[int, tuple[int, ...], bool, float | None]]:
    """The distinct (target, numbers) a search met, with the oracle's verdict and the run's own
    PRM score: every candidate step of the runs that claims `left` numbers left, with a target in
    range and numbers the probe can read. The PRM score is the first one recorded for the pair on a
    path legal up to it (where P(every step so far correct) is P(reachable)); None if every path
    that met the pair had broken a rule before."""
    found: dict[tuple[int, tuple[int, ...]], float | None] = {}
    for run in run_dirs:
        for line in (Path(run) / "results.jsonl").read_text().splitlines():
            row = json.loads(line)
            target = cd.parse_question(row["question"])[0]
            for cand in row["candidates"]:
                legal, scores = cd.verify_steps(row["question"], cand["steps"]).step_legal, cand.get("scores", [])
                for j, step in enumerate(cand["steps"]):
                    if (state := claimed_state(target, step, left)) and found.get((target, state)) is None:
                        found[target, state] = scores[j] if legal[j] and j < len(scores) else None
    return [(t, state, cd.reachable(state, t), found[t, state]) for t, state in sorted(found)]


class Probe(nn.Module):
    """The target and the numbers as tokens, a role embedding each, a transformer encoder, one logit."""

    def __init__(self, width: int, layers: int):
        super().__init__()
        self.numbers = nn.Embedding(VOCAB, width)
        self.roles = nn.Parameter(torch.randn(7, width) * 0.02)  # the target and up to 6 numbers
        layer = nn.TransformerEncoderLayer(width, 8, 4 * width, dropout=0.0, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Linear(width, 1)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.numbers(tokens) + self.roles[: tokens.shape[1]]
        return self.head(self.encoder(x).mean(dim=1)).squeeze(-1)


def probe_predict(model: nn.Module, targets: torch.Tensor, states: torch.Tensor, device: torch.device) -> torch.Tensor:
    """P(reachable) of each (target, state), by either probe."""
    if isinstance(model, StateTable):
        return predict(model, targets, states, device)
    out = []
    with torch.no_grad():
        for k in range(0, len(states), 65536):
            t, x = targets[k : k + 65536].to(device), states[k : k + 65536].to(device)
            out.append(torch.sigmoid(model(torch.cat([t[:, None], x], dim=1)).float()).cpu())
    return torch.cat(out) if out else torch.empty(0)


def metrics(p: torch.Tensor, y: torch.Tensor) -> dict:
    return {"pairs": len(y), "accuracy": round(((p >= 0.5).float() == y).float().mean().item(), 4),
            "majority_class": round(max(y.mean().item(), 1 - y.mean().item()), 4), "auroc": round(auroc(p, y), 4)}


def pairs(data: list, balanced: bool, rng: random.Random) -> tuple[torch.Tensor, torch.Tensor]:
    """(state, target) rows and labels: every target of every state, or a balanced draw (at most 8 of each kind a state)."""
    rows, labels = [], []
    for state, lab in data:
        chosen = list(zip(TARGETS, lab))
        if balanced:
            yes, no = [t for t, ok in chosen if ok], [t for t, ok in chosen if not ok]
            k = min(len(yes), len(no), 8)
            chosen = [(t, True) for t in rng.sample(yes, k)] + [(t, False) for t in rng.sample(no, k)]
        for t, ok in chosen:
            rows.append((t, *state))
            labels.append(ok)
    return torch.tensor(rows), torch.tensor(labels, dtype=torch.float32)


def auroc(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """P(a reachable pair outscores an unreachable one), from ranks (ties are rare in floats):
    problems.metrics.within_problem_auroc compares every pair, too slow for a million of them."""
    ranks = torch.empty(len(scores))
    ranks[scores.argsort()] = torch.arange(1, len(scores) + 1, dtype=torch.float32)
    pos = labels.bool()
    n_pos, n_neg = pos.sum().item(), (~pos).sum().item()
    return ((ranks[pos].sum().item() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)) if n_pos and n_neg else float("nan")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--states", type=int, default=200_000, help="walks drawn")
    parser.add_argument("--numbers_left", type=int, default=4, choices=(2, 3, 4, 5))
    parser.add_argument("--per_state", action="store_true", help="numbers in, a logit per target out (StateTable), trained on the distinct training states")
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--layers", type=int, default=6, help="the transformer probe's")
    parser.add_argument("--hidden", type=int, default=2048, help="--per_state: the MLP's")
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--procs", type=int, default=8)
    parser.add_argument("--held_out", choices=("states", "draws"), default="states", help="hold out 10%% of the distinct states, or of the draws")
    parser.add_argument("--search_runs", default="", help="comma-separated evals.run directories: also score the pairs their candidates met")
    parser.add_argument("--save", default=None, help="--per_state: write the table here, a value model directory (problems.countdown_value)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    start = time.time()
    data = walks(args.states, args.numbers_left, args.procs)
    distinct = sorted({s for s, _ in data})
    if args.held_out == "states":
        held = set(random.Random(0).sample(distinct, len(distinct) // 10))
        train = [d for d in data if d[0] not in held]
        test = list({s: (s, lab) for s, lab in data if s in held}.values())
    else:  # every 10th draw; its state may also be among the training draws
        train, test = [d for k, d in enumerate(data) if k % 10], data[::10]
    rng = random.Random(1)
    if args.per_state:
        rows = dict(train)  # each distinct training state once, with its label for every target
        x, y = torch.tensor(list(rows)), torch.tensor(list(rows.values()), dtype=torch.float32)
    else:
        x, y = pairs(train, balanced=True, rng=rng)
    tx, ty = pairs(test, balanced=False, rng=rng)
    bx, by = pairs(test, balanced=True, rng=rng)
    seen = {s for s, _ in train}
    print(f"{len(data)} states ({len(distinct)} distinct; {len(test)} held out, {sum(s in seen for s, _ in test)} of them also in training), "
          f"{len(x)} training {'states' if args.per_state else 'pairs'}, held-out base rate {ty.mean():.3f}; data {time.time() - start:.0f} s", flush=True)

    device = torch.device(args.device)
    model = (StateTable(args.width, args.hidden, args.numbers_left) if args.per_state else Probe(args.width, args.layers)).to(device)
    steps = fit(model, x, y, args.batch, args.lr, device, minutes=args.minutes)
    model.eval()
    report = {"held_out": args.held_out, "per_state": args.per_state, "numbers_left": args.numbers_left, "steps": steps, "batch": args.batch,
              "parameters": sum(p.numel() for p in model.parameters()), "training_rows": len(x), "held_out_states": len(test),
              "held_out_base_rate": round(ty.mean().item(), 4)}
    for name, (ex, ey) in {"held_out_all_targets": (tx, ty), "held_out_balanced": (bx, by)}.items():
        report[name] = metrics(probe_predict(model, ex[:, 0], ex[:, 1:], device), ey)
    if args.search_runs:
        met = search_pairs(args.search_runs.split(","), args.numbers_left)
        p = probe_predict(model, torch.tensor([t for t, *_ in met]), torch.tensor([s for _, s, *_ in met]), device)
        ey = torch.tensor([ok for _, _, ok, _ in met], dtype=torch.float32)
        known = torch.tensor([s in seen for _, s, *_ in met])
        scored = torch.tensor([prm is not None for *_, prm in met])
        prm = torch.tensor([prm for *_, prm in met if prm is not None], dtype=torch.float32)
        report["search_pairs"] = {"all": metrics(p, ey), "state_in_training": metrics(p[known], ey[known]),
                                  "state_not_in_training": metrics(p[~known], ey[~known]),
                                  # beside the run's own PRM, on the pairs it scored on legal paths
                                  "probe_where_the_run_prm_scored": metrics(p[scored], ey[scored]), "run_prm": metrics(prm, ey[scored])}
    if args.save:
        if not args.per_state:
            raise SystemExit("error: --save writes a value model (countdown_value state tables): it needs --per_state")
        save_tables([model.cpu()], args.save)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
