"""Train the countdown value model (problems.countdown_value): per-state tables of which targets
the numbers left can still make, from random walks labelled by the exact oracle.

    python -m trainers.countdown_value --output_dir gen1      # both tables as generation 1, ~40 CPU minutes
    # the shipped generation 2 (20x the walks, wider, on a GPU): models/countdown-value/TRAINING.md

Data: `--walks` random walks through fresh 5- and 6-number questions (numbers 1..20; 4- to
6-number ones for three numbers left) of random legal moves, each stopped where `left` numbers
are left; each distinct state is one training row labelled for every target 10..100
(`countdown.values`). A tenth of the distinct states is held out (`--held_out_fraction`) and
reported: the judgement does not generalize to unseen states (README), so this measures how
much is memorized rather than learned; set it to 0 to train on every state. Each table trains
for a fixed count of steps with a cosine schedule, seeded, so a rerun on the same machine
gives the same weights. `report.json` beside the weights holds the held-out metrics.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import random
import time
from multiprocessing import Pool
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from problems import countdown as cd
from problems.countdown_value import TARGETS, StateTable, predict, save_tables


def walk_state(seed: int, left: int = 4) -> tuple[int, ...]:
    """Where random legal moves from a random question with more than `left` numbers (up to 6) leave `left` numbers."""
    rng = random.Random(seed)
    state = tuple(sorted(rng.randint(1, 20) for _ in range(rng.choice(range(left + 1, 7)))))
    while len(state) > left:
        state = rng.choice(cd.moves(state))[1]
    return state


def target_labels(state: tuple[int, ...]) -> list[bool]:
    """Whether the numbers can make each target 10..100 (the exact oracle)."""
    made = cd.values(state)
    return [t in made for t in TARGETS]


def labelled(seed: int, left: int = 4) -> tuple[tuple[int, ...], list[bool]]:
    state = walk_state(seed, left)
    return state, target_labels(state)


def walks(count: int, left: int, procs: int) -> list[tuple[tuple[int, ...], list[bool]]]:
    """Walks 0..count-1 (each its own seed), labelled for every target."""
    with Pool(procs) as pool:
        return pool.map(functools.partial(labelled, left=left), range(count), chunksize=1000)


def distinct_walks(count: int, left: int, procs: int) -> dict[tuple[int, ...], list[bool]]:
    """The distinct states of walks 0..count-1, in order of first visit, each labelled once: the
    same rows as dict(walks(...)), without labelling a state again for every walk that passes it."""
    with Pool(procs) as pool:
        states = list(dict.fromkeys(pool.map(functools.partial(walk_state, left=left), range(count), chunksize=1000)))
        return dict(zip(states, pool.map(target_labels, states, chunksize=1000)))


def fit(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int, lr: float, device: torch.device,
        steps: int | None = None, minutes: float | None = None, warmup: int = 200, extra_loss: Callable[[], torch.Tensor] | None = None) -> int:
    """Minibatches drawn with replacement, AdamW, BCE on the logits (plus `extra_loss()`, a loss
    of the model's own, each step), linear warm-up then cosine decay over `steps` (or over
    `minutes` of wall-clock time); returns the steps taken."""
    from trainers.common import time_cosine_factor

    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    if steps is not None:
        factor = lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / steps)))  # noqa: E731
    else:
        factor = time_cosine_factor(warmup, minutes)
    schedule = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    x, y, done, t0 = x.to(device), y.to(device), 0, time.time()
    while (done < steps) if steps is not None else (time.time() - t0 < minutes * 60):
        idx = torch.randint(len(x), (batch,), device=device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            loss = nn.functional.binary_cross_entropy_with_logits(model(x[idx]).float(), y[idx])
            if extra_loss is not None:
                loss = loss + extra_loss()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        schedule.step()
        done += 1
        if done % 1000 == 0:
            print(f"step {done} loss {loss.item():.4f} ({time.time() - t0:.0f} s)", flush=True)
    return done


def cached_walks(count: int, left: int, procs: int, cache_dir: str | None) -> dict[tuple[int, ...], list[bool]]:
    """distinct_walks, kept in `cache_dir` (one file per count and numbers left) so a rerun, or a
    run on another machine the file is copied to, does not walk and label them again."""
    import numpy as np

    if not cache_dir:
        return distinct_walks(count, left, procs)
    path = Path(cache_dir) / f"walks-left{left}-{count}.npz"
    if path.is_file():
        data = np.load(path)
        labels = np.unpackbits(data["labels"], axis=1, count=len(TARGETS)).astype(bool)
        return dict(zip(map(tuple, data["states"].tolist()), labels.tolist()))
    distinct = distinct_walks(count, left, procs)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, states=np.array(list(distinct), dtype=np.int16), labels=np.packbits(np.array(list(distinct.values()), dtype=bool), axis=1))
    return distinct


def split_states(distinct: dict, held_out_fraction: float) -> tuple[dict, dict]:
    """Distinct states -> labels, split into training and held-out states (seed 0)."""
    held = set(random.Random(0).sample(sorted(distinct), int(len(distinct) * held_out_fraction)))
    return {s: v for s, v in distinct.items() if s not in held}, {s: v for s, v in distinct.items() if s in held}


def held_out_accuracy(table: StateTable, held: dict, device: torch.device) -> dict:
    """Accuracy on every (target, held-out state) pair, with the majority class beside it."""
    if not held:
        return {}
    states = torch.tensor(list(held)).repeat_interleave(len(TARGETS), 0)
    targets = torch.tensor(list(TARGETS)).repeat(len(held))
    y = torch.tensor([v for labels in held.values() for v in labels], dtype=torch.float32)
    p = predict(table, targets, states, device)
    return {"pairs": len(y), "accuracy": round(((p >= 0.5).float() == y).float().mean().item(), 4),
            "majority_class": round(max(y.mean().item(), 1 - y.mean().item()), 4)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--numbers_left", default="4,3", help="one table per count of numbers left")
    parser.add_argument("--hidden", default="2048,1024", help="each table's MLP width")
    parser.add_argument("--steps", default="7068,11206", help="each table's training steps")
    parser.add_argument("--walks", default="400000", help="random walks per table (one value for all, or one per table)")
    parser.add_argument("--held_out_fraction", type=float, default=0.1)
    parser.add_argument("--width", type=int, default=128, help="the embedding of each number")
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--minutes", type=float, default=None,
                        help="train each table for this many wall-clock minutes instead of --steps (report.json has the steps reached)")
    parser.add_argument("--cache_dir", default=None, help="keep the labelled walks here and reuse them (walks-left<k>-<count>.npz)")
    parser.add_argument("--procs", type=int, default=2, help="processes labelling the walks")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    lefts, hiddens, steps, n_walks = ([int(v) for v in s.split(",")] for s in (args.numbers_left, args.hidden, args.steps, args.walks))
    n_walks = n_walks * len(lefts) if len(n_walks) == 1 else n_walks
    if not len(lefts) == len(hiddens) == len(steps) == len(n_walks) or not set(lefts) <= {2, 3, 4, 5}:
        parser.error("--numbers_left (each 2..5), --hidden, --steps and --walks need one value per table")
    device, tables, report = torch.device(args.device), [], {"args": vars(args)}
    for left, hidden, n_steps, count in zip(lefts, hiddens, steps, n_walks):
        start = time.time()
        train, held = split_states(cached_walks(count, left, args.procs, args.cache_dir), args.held_out_fraction)
        print(f"{left} numbers left: {len(train)} training states, {len(held)} held out; data {time.time() - start:.0f} s", flush=True)
        torch.manual_seed(args.seed)
        table = StateTable(args.width, hidden, left).to(device)
        x, y = torch.tensor(list(train)), torch.tensor(list(train.values()), dtype=torch.float32)
        n_steps = fit(table, x, y, args.batch, args.lr, device, steps=None if args.minutes else n_steps, minutes=args.minutes)
        tables.append(table.eval().cpu())
        report[f"left{left}"] = {"training_states": len(train), "steps": n_steps, "parameters": sum(p.numel() for p in table.parameters()),
                                 "minutes": round((time.time() - start) / 60, 1), "held_out_states": held_out_accuracy(table.cpu(), held, torch.device("cpu"))}
        print(json.dumps(report[f"left{left}"]), flush=True)
    save_tables(tables, args.output_dir)
    with open(f"{args.output_dir}/report.json", "w") as f:
        json.dump(report, f, indent=2)
    print(f"wrote {args.output_dir}")


if __name__ == "__main__":
    main()
