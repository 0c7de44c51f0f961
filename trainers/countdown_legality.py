"""Train the countdown legality model (problems.countdown_legality): P(a step is legal) from the
numbers before it, learned from legal steps and near-misses labelled by the rules.

    python -m trainers.countdown_legality --output_dir models/countdown-legality   # the shipped one: ~35 CPU minutes

Data: `--walks` random walks, each from a fresh random question's numbers (3 to 6 of 1..20, as
the world draws them) by random legal moves down to one number. At each state: the walk's own
step and two legal moves drawn from the state (Positive), and two near-misses of each
(`countdown.corrupt_step`, any kind: a wrong result, a number dropped, added or changed in the
numbers left, one used twice, an inexact division, an operand already spent), Negative. No
target is involved: legality does not depend on it. The arithmetic part is taught every
(a, op, b) the rows hold and every one with both operands up to `--grid`, each labelled with its
result or "none" (`countdown_legality.result_class`).

Held out: one-step rows of the 400 dev problems (`countdown.legality_steps`, 4 walks a problem,
seed 7), reported by what makes a step illegal (`countdown.slip_kind`), with the share of their
legal steps whose (a, op, b) the training rows hold. `report.json` beside the weights has it.
Seeded, fixed step count: a rerun on the same machine gives the same weights.
"""

from __future__ import annotations

import argparse
import json
import random
import time
import warnings
from multiprocessing import Pool

import torch
from torch import nn

from problems import countdown as cd
from problems.countdown_legality import OP, A, B, LegalityNet, encode, predict, result_class, save_legality
from trainers.countdown_value import fit

SEED_OFFSET = 131_000  # walk k is seeded SEED_OFFSET + k (apart from every other generator's seeds)


def walk_rows(seed: int) -> list[tuple[tuple[int, ...], str, bool]]:
    """(numbers before, step, legal) along one random walk (module docstring)."""
    rng = random.Random(SEED_OFFSET + seed)
    state = tuple(sorted(rng.randint(1, 20) for _ in range(rng.choice(cd.DIFFICULTIES))))
    spent, rows = list(state), []
    while len(state) > 1:
        options = cd.moves(state)
        step, after = rng.choice(options)
        for legal in dict.fromkeys([step] + [rng.choice(options)[0] for _ in range(2)]):
            rows.append((state, legal, True))
            for _ in range(2):
                if (bad := cd.corrupt_step(state, legal, rng, spent)) is not None:
                    rows.append((state, bad[0], False))
        spent.append(cd.parse_step(step)[3])
        state = after
    return rows


def training_rows(walks: int, procs: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Encoded rows of walks 0..walks-1, each distinct (numbers, step) once, and their labels."""
    distinct: dict[tuple[tuple[int, ...], str], bool] = {}
    with Pool(procs) as pool:
        for rows in pool.imap(walk_rows, range(walks), chunksize=2000):
            for state, step, legal in rows:
                distinct.setdefault((state, step), legal)
    encoded = [(row, legal) for (state, step), legal in distinct.items() if (row := encode(state, step)) is not None]
    return torch.tensor([r for r, _ in encoded]), torch.tensor([legal for _, legal in encoded], dtype=torch.float32)


def arithmetic_facts(rows: torch.Tensor, grid: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every distinct (a, op, b) of the rows and of the grid 1..grid, and its result class."""
    grid_facts = torch.cartesian_prod(torch.arange(1, grid + 1), torch.arange(len(cd.OPS)), torch.arange(1, grid + 1))
    facts = torch.unique(torch.cat([rows[:, [A, OP, B]], grid_facts]), dim=0)
    return facts, torch.tensor([result_class(a, cd.OPS[op], b) for a, op, b in facts.tolist()])


def dev_report(net: LegalityNet, rows: torch.Tensor, problems: int = 400) -> dict:
    """Share passed (P >= 0.5) of the first dev problems' one-step rows by kind, and the arithmetic facts met."""
    held, kinds, met = [], [], {tuple(f) for f in rows[:, [A, OP, B]].tolist()}
    for r in cd.legality_steps(cd.load_split("dev")[:problems], 4, seed=7):
        state = cd.parse_question(r["question"])[1]
        if (row := encode(state, r["completions"][0])) is not None:
            held.append(row)
            kinds.append(cd.slip_kind(state, r["completions"][0]) or "legal")
    p = predict(net.eval(), torch.tensor(held))
    report = {}
    for kind in sorted(set(kinds)):
        chosen = torch.tensor([k == kind for k in kinds])
        report[kind] = {"passed": round((p[chosen] >= 0.5).float().mean().item(), 5), "steps": int(chosen.sum())}
    legal = [row for row, k in zip(held, kinds) if k == "legal"]
    report["legal_facts_met_in_training"] = round(sum((r[A], r[OP], r[B]) in met for r in legal) / len(legal), 4)
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--walks", type=int, default=150000)
    parser.add_argument("--grid", type=int, default=100, help="the arithmetic part also learns every a op b with a, b in 1..grid")
    parser.add_argument("--width", type=int, default=64, help="the embedding of each number and operation")
    parser.add_argument("--hidden", type=int, default=512, help="the arithmetic part's MLP width")
    parser.add_argument("--judge_hidden", type=int, default=256, help="the judge's MLP width")
    parser.add_argument("--steps", type=int, default=8000)
    parser.add_argument("--minutes", type=float, default=None, help="train this many wall-clock minutes instead of --steps")
    parser.add_argument("--batch", type=int, default=1024, help="rows a step, and as many arithmetic facts")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--procs", type=int, default=2, help="processes drawing the walks")
    parser.add_argument("--dev_problems", type=int, default=400, help="the held-out report's dev problems")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    # On a CPU, the tiny probabilities of a confident softmax are denormal floats, which made every
    # step 2-5x slower; flushed to zero from before any parallel op (torch's worker threads inherit it).
    warnings.filterwarnings("ignore", message="The value of the smallest subnormal")  # numpy notices the flush
    torch.set_flush_denormal(True)
    try:
        train(args)
    finally:
        torch.set_flush_denormal(False)


def train(args: argparse.Namespace) -> None:
    start, device = time.time(), torch.device(args.device)
    x, y = training_rows(args.walks, args.procs)
    facts, results = arithmetic_facts(x, args.grid)
    print(f"{len(x)} rows ({y.mean():.3f} legal), {len(facts)} arithmetic facts; data {time.time() - start:.0f} s", flush=True)
    torch.manual_seed(args.seed)
    net = LegalityNet(args.width, args.hidden, args.judge_hidden).to(device)
    facts_on, results_on = facts.to(device), results.to(device)

    def arithmetic_loss() -> torch.Tensor:
        i = torch.randint(len(facts_on), (args.batch,), device=device)
        f = facts_on[i]
        return nn.functional.cross_entropy(net.results(f[:, 0], f[:, 1], f[:, 2]).float(), results_on[i])

    steps = fit(net, x, y, args.batch, args.lr, device, steps=None if args.minutes else args.steps, minutes=args.minutes, extra_loss=arithmetic_loss)
    net = net.eval().cpu()
    report = {"args": vars(args), "rows": len(x), "legal_share": round(y.mean().item(), 4), "arithmetic_facts": len(facts), "steps": steps,
              "parameters": sum(p.numel() for p in net.parameters()), "minutes": round((time.time() - start) / 60, 1), "dev": dev_report(net, x, args.dev_problems)}
    save_legality(net, args.output_dir)
    with open(f"{args.output_dir}/report.json", "w") as f:
        json.dump(report, f, indent=2)
    print(json.dumps(report["dev"]), flush=True)
    print(f"wrote {args.output_dir}")


if __name__ == "__main__":
    main()
