"""The countdown world: reach a target from a multiset of numbers with + - * and exact /.

A problem is a target and k numbers (k = 3..6, the difficulty); its question is the target,
a colon and the numbers in ascending order: "24:3 7 8 12". Every problem is solvable using
every number exactly once.

A step combines two numbers of the current multiset and writes the whole multiset left after
it, ascending, so a state can be read from the last step alone (Markov):

    24:3 7 8 12  ->  12-8=4|3 4 7  ->  7-4=3|3 3  ->  3*3=9|9   (wrong: 9 is not 24)
    24:3 7 8 12  ->  8-7=1|1 3 12  ->  3-1=2|2 12  ->  12*2=24|24

A step `a op b=c|rest` is legal iff a and b are in the current multiset (twice if a == b),
c = a op b exactly and is a positive integer (a - b needs a > b, a / b needs b to divide a),
and rest is the multiset with a and b taken out and c put in (in any order; compared as a
multiset). A path is solved iff it is finished, every step is legal, and it has k - 1 steps
whose last leaves exactly the target: every number used once. A path that writes the target
through an illegal step is not solved.

Process labels come from an exact oracle: a step is Positive iff it and every step before it
are legal and the target can still be reached from the numbers it leaves (an exhaustive
search over them: Math-Shepherd's "hard" label with an exact solver instead of Monte-Carlo
rollouts). The final step is Positive iff it leaves exactly the target.

Everything here is pure Python and deterministic; `verify_steps`, `solved` and `step_labels`
never raise, whatever text they get.
"""

from __future__ import annotations

import functools
import random
import re
from collections import Counter
from dataclasses import dataclass
from typing import Collection, Sequence

from problems.metrics import first_error

NAME = "countdown"
DIFFICULTY = "numbers"  # what a problem's difficulty counts
COUNTDOWN_VERSION = "v1"
MIN_NUMBER, MAX_NUMBER = 1, 20  # the input numbers
MIN_TARGET, MAX_TARGET = 10, 100
DIFFICULTIES = (3, 4, 5, 6)  # how many numbers
MAX_VALUE = 1000  # a step result above this is illegal (keeps numbers short and the oracle fast)
SPLIT_SIZES = {"train": 20000, "dev": 400, "test": 800}  # dev and test: equal counts per difficulty
OPS = "+-*/"

_QUESTION_RE = re.compile(r"\s*([0-9]+)\s*:\s*([0-9]+(?:\s+[0-9]+)*)\s*")
_STEP_RE = re.compile(r"\s*([0-9]+)\s*([-+*/])\s*([0-9]+)\s*=\s*([0-9]+)\s*\|\s*([0-9]+(?:\s+[0-9]+)*)?\s*")


@dataclass(frozen=True)
class CountdownProblem:
    id: str  # e.g. "test-v1-00042"
    question: str  # e.g. "24:3 7 8 12"
    target: int
    numbers: tuple[int, ...]  # ascending

    @property
    def steps(self) -> tuple[str, ...]:
        """A reference solution: one drawn uniformly among all solutions, seeded by the id
        (computed on demand: up to ~0.5 s for six numbers)."""
        return reference_solution(self.id, self.target, self.numbers)

    def solutions(self, k: int) -> list[tuple[str, ...]]:
        """k reference solutions drawn uniformly with replacement; the first is `steps`."""
        return reference_solutions(self.id, self.target, self.numbers, k)

    @property
    def answer(self) -> int:
        return self.target

    @property
    def difficulty(self) -> int:
        return len(self.numbers)


@dataclass(frozen=True)
class StepVerdict:
    step_legal: tuple[bool, ...]  # each step legal, given legal steps before it
    first_error: int | None  # the first illegal step
    labels: tuple[bool, ...]  # the oracle's process labels (legal so far and target still reachable)
    solved: bool  # all legal, all numbers used, the last state is the target (finishing is checked by `solved`)


# -- text ----------------------------------------------------------------------------------


def question_text(target: int, numbers: Sequence[int]) -> str:
    return f"{target}:" + " ".join(map(str, sorted(numbers)))


def parse_question(question: str) -> tuple[int, tuple[int, ...]] | None:
    """(target, numbers ascending), or None if the text is not a countdown question."""
    m = _QUESTION_RE.fullmatch(question) if isinstance(question, str) else None
    if m is None or len(question) > 200:
        return None
    return int(m.group(1)), tuple(sorted(int(x) for x in m.group(2).split()))


QUESTION_CHARS = "0123456789: "
QUESTION_SHAPE = "TARGET:NUMBERS, e.g. 24:3 7 8 12"


def is_question(question: str) -> bool:
    return parse_question(question) is not None


def step_text(a: int, op: str, b: int, c: int, rest: Sequence[int]) -> str:
    return f"{a}{op}{b}={c}|" + " ".join(map(str, sorted(rest)))


def parse_step(step: str) -> tuple[int, str, int, int, tuple[int, ...]] | None:
    """(a, op, b, c, numbers left ascending), or None if malformed."""
    m = _STEP_RE.fullmatch(step) if isinstance(step, str) else None
    if m is None or len(step) > 200:
        return None
    rest = tuple(sorted(int(x) for x in m.group(5).split())) if m.group(5) else ()
    return int(m.group(1)), m.group(2), int(m.group(3)), int(m.group(4)), rest


# -- the rules ------------------------------------------------------------------------------


def combine(a: int, op: str, b: int) -> int | None:
    """a op b if it is a positive integer no larger than MAX_VALUE, else None."""
    if op == "+":
        c = a + b
    elif op == "-":
        c = a - b
    elif op == "*":
        c = a * b
    elif op == "/":
        c = a // b if b and a % b == 0 else 0
    else:
        return None
    return c if 0 < c <= MAX_VALUE else None


def apply_step(state: tuple[int, ...], step: str) -> tuple[int, ...] | None:
    """The state after a legal step (ascending), or None if the step is illegal here."""
    parsed = parse_step(step)
    if parsed is None:
        return None
    a, op, b, c, rest = parsed
    have = Counter(state)
    have[a] -= 1
    have[b] -= 1
    if have[a] < 0 or have[b] < 0 or combine(a, op, b) != c:
        return None
    have[c] += 1
    after = tuple(sorted(have.elements()))
    return after if after == rest else None


def moves(state: tuple[int, ...]) -> list[tuple[str, tuple[int, ...]]]:
    """Every legal step from a state, as (step text, next state); each distinct step once."""
    out = {}
    for i in range(len(state)):
        for j in range(len(state)):
            if i == j:
                continue
            a, b = state[i], state[j]
            rest = state[:min(i, j)] + state[min(i, j) + 1:max(i, j)] + state[max(i, j) + 1:]
            for op in OPS:
                if op in "+*" and a < b:
                    continue  # commutative: write the larger first, once
                c = combine(a, op, b)
                if c is not None:
                    after = tuple(sorted(rest + (c,)))
                    out.setdefault(step_text(a, op, b, c, after), after)
    return list(out.items())


@functools.lru_cache(maxsize=200_000)
def values(state: tuple[int, ...]) -> frozenset[int]:
    """Every value reachable by combining ALL the numbers of state (a sorted tuple)."""
    if len(state) == 1:
        return frozenset(state)
    out: set[int] = set()
    n = len(state)
    seen = set()
    for mask in range(1, 2 ** n - 1):
        if mask & 1 == 0:
            continue  # each split {A, B} once: A holds the first number
        left = tuple(state[i] for i in range(n) if mask >> i & 1)
        right = tuple(state[i] for i in range(n) if not mask >> i & 1)
        if (left, right) in seen:
            continue
        seen.add((left, right))
        for x in values(left):
            for y in values(right):
                for a, b in ((x, y), (y, x)):
                    for op in OPS:
                        if op in "+*" and a < b:
                            continue
                        c = combine(a, op, b)
                        if c is not None:
                            out.add(c)
    return frozenset(out)


def reachable(state: tuple[int, ...], target: int) -> bool:
    """Can the numbers of state, all of them, be combined into target?"""
    return bool(state) and target in values(tuple(sorted(state)))


# -- judging paths --------------------------------------------------------------------------


def states_after(question: str, steps: Sequence[str]) -> list[tuple[int, ...] | None]:
    """The numbers left after each step, None from the first illegal step on (all None if the
    question does not parse)."""
    parsed = parse_question(question)
    state = parsed[1] if parsed else None
    out = []
    for step in steps:
        state = None if state is None else apply_step(state, step)
        out.append(state)
    return out


def verify_steps(question: str, steps: Sequence[str]) -> StepVerdict:
    """Legality of every step, the oracle's process labels and whether the path reaches the target."""
    parsed = parse_question(question)
    steps = list(steps) if isinstance(steps, (list, tuple)) else []
    states = states_after(question, steps)
    legal = tuple(state is not None for state in states)
    labels = tuple(state is not None and reachable(state, parsed[0]) for state in states)
    solved = bool(steps) and all(legal) and states[-1] == (parsed[0],)
    return StepVerdict(legal, first_error(legal), labels, solved)


def slip_kind(state: tuple[int, ...], step: str) -> str | None:
    """What makes `step` illegal from `state`, None if it is legal: "malformed"; "absent" (an
    operand that is not there: `14/7=2` after the 7 was spent); "twice" (a single number used
    twice); "inexact" (a division that is not exact: `34/6=5`); "out_of_range" (no positive
    result up to MAX_VALUE: `8-8=0`); "result" (wrong arithmetic: `12*6=70`); "left" (the
    numbers left are not the state's with the operands taken out and the result put in)."""
    if apply_step(state, step) is not None:
        return None
    parsed = parse_step(step)
    if parsed is None:
        return "malformed"
    a, op, b, c, _ = parsed
    have = Counter(state)
    if not have[a] or not have[b]:
        return "absent"
    if a == b and have[a] < 2:
        return "twice"
    if op == "/" and (not b or a % b):
        return "inexact"
    result = combine(a, op, b)
    if result is None:
        return "out_of_range"
    return "result" if result != c else "left"


def step_labels(question: str, steps: Sequence[str]) -> list[bool]:
    """The oracle's process labels: Positive iff legal so far and the target still reachable."""
    return list(verify_steps(question, steps).labels)


def legality_labels(question: str, steps: Sequence[str], labels: Sequence[bool], left: Collection[int]) -> list[bool]:
    """`labels` (the oracle's, for `steps`) with every step that leaves a count of numbers in
    `left` relabelled Positive iff it and every step before it are legal. For a PRM served capped
    by a value model that reads those states (problems.countdown_value): whether the target is
    still reachable there is the value model's judgement, so the PRM is taught legality alone at
    those steps, and the oracle's labels everywhere else."""
    return [True if state is not None and len(state) in left else bool(label)
            for state, label in zip(states_after(question, steps), labels)]


def solved(question: str, steps: Sequence[str], finished: bool = True) -> bool:
    """The whole path: finished, every step legal, every number used, the target reached."""
    return finished and verify_steps(question, steps).solved


def answer_of(steps: Sequence[str]) -> int | None:
    """The number a path ends on (its last step's result), for voting; None if unreadable."""
    for step in reversed(list(steps)):
        parsed = parse_step(step)
        if parsed is not None:
            return parsed[3]
    return None


# -- problems -------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def reference_solution(seed: str, target: int, numbers: tuple[int, ...]) -> tuple[str, ...]:
    """A solution drawn uniformly among all step sequences that reach the target (each move
    taken with probability proportional to the solutions through it)."""
    return _draw_solution(random.Random(seed), _solution_counter(target), numbers)


def reference_solutions(seed: str, target: int, numbers: tuple[int, ...], k: int) -> list[tuple[str, ...]]:
    """k solutions drawn independently and uniformly (with replacement), the first one
    `reference_solution`'s; the solution counts are computed once for all k."""
    count = _solution_counter(target)
    return [_draw_solution(random.Random(seed if j == 0 else f"{seed}#{j}"), count, numbers) for j in range(k)]


def _draw_solution(rng: random.Random, count, numbers: tuple[int, ...]) -> tuple[str, ...]:
    state, steps = tuple(sorted(numbers)), []
    while len(state) > 1:
        options = [(step, after, count(after)) for step, after in moves(state)]
        pick = rng.randrange(sum(weight for _, _, weight in options))
        for option in options:
            pick -= option[2]
            if pick < 0:
                break
        step, after, _ = option
        steps.append(step)
        state = after
    return tuple(steps)


@functools.lru_cache(maxsize=200_000)
def successors(state: tuple[int, ...]) -> tuple[tuple[int, ...], ...]:
    """The state after each legal move (one entry per distinct move, as `moves` counts them)."""
    return tuple(after for _, after in moves(state))


def _solution_counter(target: int):
    @functools.lru_cache(maxsize=None)
    def count(state: tuple[int, ...]) -> int:
        if len(state) == 1:
            return int(state[0] == target)
        if len(state) <= 4 and target not in values(state):  # cheap to rule out; larger states just recurse
            return 0
        return sum(count(after) for after in successors(state))

    return count


def random_problem(rng: random.Random, k: int) -> tuple[int, tuple[int, ...]]:
    """A solvable (target, numbers) with k numbers: the numbers at random, the target the end of
    random legal moves over all of them, drawn again until it lies in the target range."""
    while True:
        numbers = tuple(sorted(rng.randint(MIN_NUMBER, MAX_NUMBER) for _ in range(k)))
        state = numbers
        while len(state) > 1:
            _, state = rng.choice(moves(state))
        if MIN_TARGET <= state[0] <= MAX_TARGET:
            return state[0], numbers


def generate_problems(n: int, seed: int, difficulties: Sequence[int] = DIFFICULTIES, prefix: str = "gen",
                      exclude: frozenset[str] = frozenset(), balanced: bool = False) -> list[CountdownProblem]:
    """n problems, deterministic in seed; the difficulty cycles over `difficulties` when
    balanced, else is drawn at random. Questions in `exclude` (and repeats) are skipped."""
    rng = random.Random(seed)
    problems, seen = [], set(exclude)
    while len(problems) < n:
        k = difficulties[len(problems) % len(difficulties)] if balanced else rng.choice(list(difficulties))
        target, numbers = random_problem(rng, k)
        question = question_text(target, numbers)
        if question in seen:
            continue
        seen.add(question)
        problems.append(CountdownProblem(f"{prefix}-{COUNTDOWN_VERSION}-{len(problems):05d}", question, target, numbers))
    return problems


@functools.lru_cache(maxsize=None)
def load_split(split: str) -> list[CountdownProblem]:
    """The fixed splits: test and dev first (balanced over difficulty), then train, which never
    repeats a dev or test question."""
    if split not in SPLIT_SIZES:
        raise ValueError(f"unknown countdown split {split!r}; choose from {sorted(SPLIT_SIZES)}")
    if split == "test":
        return generate_problems(SPLIT_SIZES["test"], seed=1001, prefix="test", balanced=True)
    held_out = frozenset(p.question for p in load_split("test"))
    if split == "dev":
        return generate_problems(SPLIT_SIZES["dev"], seed=1002, prefix="dev", exclude=held_out, balanced=True)
    held_out |= {p.question for p in load_split("dev")}
    return generate_problems(SPLIT_SIZES["train"], seed=1003, prefix="train", exclude=held_out)


def fresh_problems(n: int, seed: int, difficulties: Sequence[int] = DIFFICULTIES) -> list[CountdownProblem]:
    """Problems for training beyond the train split: never a dev or test question."""
    held_out = frozenset(p.question for split in ("dev", "test") for p in load_split(split))
    return generate_problems(n, seed=10_000 + seed, difficulties=difficulties, prefix=f"fresh{seed}", exclude=held_out)


def random_paths(problems: Sequence[CountdownProblem], per_problem: int, seed: int) -> list[dict]:
    """Oracle-labelled paths beyond any policy's rollouts, for PRM training: per problem,
    `per_problem` paths of uniformly random legal moves (mostly dead ends, some solutions),
    and with each of them the same path whose last step claims the target through wrong
    arithmetic (`3*3=24|24`, the failure a policy trained on solutions makes most). Rows are
    {"question", "completions", "labels"} (trainers.prm's stepwise rows), each distinct path once."""
    rng = random.Random(seed)
    rows: dict[tuple, dict] = {}
    for p in problems:
        for _ in range(per_problem):
            steps = random_walk(p.numbers, rng)
            add_labelled(rows, p.question, steps)
            if parse_step(steps[-1])[3] != p.target:
                add_labelled(rows, p.question, steps[:-1] + [claim_target(steps[-1], p.target)])
    return list(rows.values())


def random_walk(state: tuple[int, ...], rng: random.Random) -> list[str]:
    """Uniformly random legal moves from `state` until one number is left (or no move is legal)."""
    steps = []
    while len(state) > 1:
        step, state = rng.choice(moves(state) or [(None, ())])
        if step is None:
            break
        steps.append(step)
    return steps


def claim_target(step: str, target: int) -> str:
    """The same operation claiming the target as its result and the only number left (`3*3=24|24`)."""
    a, op, b, _, _ = parse_step(step)
    return step_text(a, op, b, target, (target,))


def add_labelled(rows: dict[tuple, dict], question: str, path: list[str]) -> None:
    """Add a path with the oracle's labels as a PRM training row, once per distinct path."""
    rows.setdefault((question, tuple(path)), {"question": question, "completions": path, "labels": step_labels(question, path)})


def sibling_paths(problems: Sequence[CountdownProblem], per_state: int, seed: int, wander: float = 0.25) -> list[dict]:
    """Oracle-labelled sibling sets for PRM training, no policy needed: what a beam search has
    to rank. Per problem, one walk from the question to a single number; at every state on it
    with at most 5 numbers, `per_state` of its legal moves (half of them keeping the target
    reachable where it can, the rest dead ends), each as the walk so far plus that move; at the
    last state also every claim of the target through wrong arithmetic (`13*7=56|56`). The walk
    goes on through a reachable move (chosen uniformly), or with probability `wander` through
    any legal move, so some sibling sets hang off dead states. Rows are {"question",
    "completions", "labels"}, each distinct path once, deterministic in seed."""
    rng = random.Random(seed)
    rows: dict[tuple, dict] = {}
    for p in problems:
        state, steps = p.numbers, []
        while len(state) > 1:
            options = moves(state)
            if len(state) > 5:  # judging 5 numbers left costs ~35 ms a state: no siblings here, step on (reachably if 4 tries find it)
                for _ in range(4):
                    step, after = rng.choice(options)
                    if reachable(after, p.target):
                        break
                steps.append(step)
                state = after
                continue
            labelled = [(step, after, reachable(after, p.target)) for step, after in options]
            good = [x for x in labelled if x[2]]
            bad = [x for x in labelled if not x[2]]
            rng.shuffle(good)
            rng.shuffle(bad)
            kept_good = good[: per_state // 2]
            for step, _, _ in kept_good + bad[: per_state - len(kept_good)]:
                add_labelled(rows, p.question, steps + [step])
            if len(state) == 2:
                a, b = state[1], state[0]
                for op in OPS:
                    if combine(a, op, b) != p.target:
                        add_labelled(rows, p.question, steps + [step_text(a, op, b, p.target, (p.target,))])
            if good and rng.random() >= wander:
                step, state, _ = rng.choice(good)
            else:
                step, state = rng.choice(options)
            steps.append(step)
    return list(rows.values())


CORRUPTIONS = ("result", "result", "dropped", "added", "changed", "twice", "inexact", "absent", "absent")  # corrupt_step's kinds, as often as drawn


def corrupt_step(state: tuple[int, ...], step: str, rng: random.Random, spent: Collection[int] = (),
                 kinds: Sequence[str] = CORRUPTIONS) -> tuple[str, tuple[int, ...]] | None:
    """A near-miss of the legal `step` from `state` that breaks exactly one rule, and the numbers it
    claims to leave: a wrong result (`13-13=1`), a number dropped from, added to or changed in the
    numbers left, one number used twice (`14/14=1` with a single 14), a division that is not
    exact, rounded (`24/14=2`; not a near-miss of `step` but of another move from `state`), or an
    operand that is not there, in place of one of the step's (`14/7=2` after the 7 was spent:
    one of `spent`, the numbers the path had before, else one off a number that is there). None
    if none of `kinds` applies."""
    a, op, b, c, rest = parse_step(step)
    others = list(rest)
    others.remove(c)
    kinds = list(kinds)
    rng.shuffle(kinds)
    for kind in kinds:
        if kind == "absent":
            pool = sorted(set(spent) - set(state)) or sorted({x + d for x in state for d in (-1, 1)} - set(state) - {0})
            rng.shuffle(pool)
            keep, gone = (a, b) if rng.random() < 0.5 else (b, a)  # x takes the place of `gone`
            for x in pool:
                for o in rng.sample(OPS, len(OPS)):
                    for left_operand, right_operand in rng.sample([(keep, x), (x, keep)], 2):
                        y = combine(left_operand, o, right_operand)
                        if y is not None:
                            left = list(state)
                            left.remove(keep)
                            left.remove(gone)
                            return step_text(left_operand, o, right_operand, y, left + [y]), tuple(sorted(left + [y]))
        elif kind == "inexact":
            pairs = sorted({(x, y) for x in state for y in state if x > y > 1 and x % y})
            if pairs:
                x, y = rng.choice(pairs)
                wrong = x // y if rng.random() < 0.5 else int(x / y + 0.5)  # floored or rounded
                left = list(state)
                left.remove(x)
                left.remove(y)
                return step_text(x, "/", y, wrong, left + [wrong]), tuple(sorted(left + [wrong]))
        elif kind == "result":
            wrong = rng.choice(near_misses(a, b, c, (1, -1, 2, -2, 10, -10)))
            if wrong > 0 and wrong != c:
                return step_text(a, op, b, wrong, others + [wrong]), tuple(sorted(others + [wrong]))
        elif kind == "dropped" and others:
            left = others[:]
            left.pop(rng.randrange(len(left)))
            return step_text(a, op, b, c, left + [c]), tuple(sorted(left + [c]))
        elif kind == "added":
            left = others + [rng.choice([a, b] + list(state))]
            return step_text(a, op, b, c, left + [c]), tuple(sorted(left + [c]))
        elif kind == "changed" and others:
            left = others[:]
            i = rng.randrange(len(left))
            left[i] = max(1, left[i] + rng.choice([-1, 1, 2]))
            if sorted(left) != sorted(others):
                return step_text(a, op, b, c, left + [c]), tuple(sorted(left + [c]))
        elif kind == "twice":
            singles = [x for x in set(state) if state.count(x) == 1]
            rng.shuffle(singles)
            for x in singles:
                for o in rng.sample(OPS, len(OPS)):
                    y = combine(x, o, x)
                    if y is not None:
                        left = list(state)
                        left.remove(x)
                        return step_text(x, o, x, y, left + [y]), tuple(sorted(left + [y]))
    return None


def near_misses(a: int, b: int, c: int, offsets: Sequence[int]) -> list[int]:
    """Wrong results a policy writes for `a op b = c`: c moved by each offset, then what the other
    operations on a and b give (c itself among them; callers filter)."""
    return [c + d for d in offsets] + [x for o in OPS if (x := combine(a, o, b)) is not None]


def reachable_walk(p: CountdownProblem, rng: random.Random) -> list[tuple[tuple[int, ...], str]]:
    """(state, step) pairs of a random walk through `p` to one number, by moves that keep the
    target reachable wherever they leave four numbers or fewer (cheap to judge)."""
    state, walk = p.numbers, []
    while len(state) > 1:
        options = moves(state)
        if len(state) <= 5:
            options = [(st, after) for st, after in options if reachable(after, p.target)] or options
        step, after = rng.choice(options)
        walk.append((state, step))
        state = after
    return walk


def slipped_walks(problems: Sequence[CountdownProblem], per_problem: int, rng: random.Random, kinds: Sequence[str] = CORRUPTIONS,
                  min_before: int = 0):
    """(problem, walk, k, (bad step, the numbers it claims)): per problem, `per_problem` walks
    (`reachable_walk`), step k of each replaced by a near-miss of one of `kinds` (`corrupt_step`;
    a walk where none applies is skipped). k is drawn among the steps with at least `min_before`
    numbers before them (a problem with fewer numbers gives nothing)."""
    for p in problems:
        if len(p.numbers) < min_before:
            continue
        for _ in range(per_problem):
            walk = reachable_walk(p, rng)
            eligible = [k for k, (state, _) in enumerate(walk) if len(state) >= min_before]
            k = eligible[rng.randrange(len(eligible))]
            spent = p.numbers + tuple(parse_step(st)[3] for _, st in walk[:k])
            bad = corrupt_step(*walk[k], rng, spent, kinds)
            if bad is not None:
                yield p, walk, k, bad


def corrupted_paths(problems: Sequence[CountdownProblem], per_problem: int, seed: int) -> list[dict]:
    """Oracle-labelled paths with one illegal step inside, for PRM training, no policy needed:
    the slips a policy makes and a PRM must not forgive later. Per problem, `per_problem` walks
    (through moves that keep the target reachable wherever they leave four numbers or fewer,
    cheap to judge); on each, one step replaced by a near-miss (`corrupt_step`), and the walk
    goes on with legal moves from the numbers the bad step claims, its last step claiming the
    target half of the time. Every step from the bad one on is Negative (the oracle's labels:
    legal so far). Rows are {"question", "completions", "labels"}, each distinct path once,
    deterministic in seed."""
    rng = random.Random(seed)
    rows: dict[tuple, dict] = {}
    for p, walk, k, (step, state) in slipped_walks(problems, per_problem, rng):
        path = [st for _, st in walk[:k]] + [step] + random_walk(state, rng)
        if len(path) > k + 1 and rng.random() < 0.5:
            path[-1] = claim_target(path[-1], p.target)
        add_labelled(rows, p.question, path)
    return list(rows.values())


def inexact_division_paths(problems: Sequence[CountdownProblem], per_problem: int, seed: int) -> list[dict]:
    """Division pairs, for PRM training, no policy needed: the policy's commonest illegal step is a
    division that is not exact, floored or rounded (`34/6=5`), and a PRM can only catch it by
    checking the arithmetic. Per problem, `per_problem` walks (`reachable_walk`) with one step
    replaced by such a division and legal moves on from the numbers it claims (Negative from
    the slip on), each with its twin where the state has an exact division by more than 1: the
    same path up to there, that division (`34/2=17`), and legal moves on, labelled by the oracle.
    The twins keep a PRM from learning to doubt every division. Rows as corrupted_paths'."""
    rng = random.Random(seed)
    rows: dict[tuple, dict] = {}
    for p, walk, k, (step, state) in slipped_walks(problems, per_problem, rng, kinds=("inexact",)):
        prefix = [st for _, st in walk[:k]]
        add_labelled(rows, p.question, prefix + [step] + random_walk(state, rng))
        exact = [(st, after) for st, after in moves(walk[k][0]) if (move := parse_step(st))[1] == "/" and move[2] > 1]
        if exact:
            step, after = rng.choice(exact)
            add_labelled(rows, p.question, prefix + [step] + random_walk(after, rng))
    return list(rows.values())


def slip_pairs(problems: Sequence[CountdownProblem], per_problem: int, seed: int, min_before: int = 5) -> list[dict]:
    """Slip pairs early in long paths, for PRM training, no policy needed. A PRM of the policy's
    size passes half the illegal steps taken from five or six numbers and few of those from
    fewer (evals.prm_eval --slips), so these teach the check where it is missed. Per problem
    with at least `min_before` numbers, `per_problem` walks (`reachable_walk`) with a step that
    has `min_before` numbers or more before it replaced by a near-miss of any kind
    (`corrupt_step`), each with its twin: the same steps up to there and the walk's own legal
    step. Both end there (a step's score depends only on the steps up to it, so what follows
    teaches nothing about it). Labelled by the oracle; rows as corrupted_paths'."""
    rng = random.Random(seed)
    rows: dict[tuple, dict] = {}
    for p, walk, k, (step, _) in slipped_walks(problems, per_problem, rng, min_before=min_before):
        prefix = [st for _, st in walk[:k]]
        add_labelled(rows, p.question, prefix + [step])
        add_labelled(rows, p.question, prefix + [walk[k][1]])
    return list(rows.values())


def legality_steps(problems: Sequence[CountdownProblem], per_problem: int, seed: int) -> list[dict]:
    """One-step legality rows, for a model that judges a step's legality alone, no policy needed.
    Steps are Markov (each writes every number it leaves), so whether step k is legal depends
    only on the numbers step k-1 claims: a step posed as the one step of the question
    "{target}:{those numbers}" is judged exactly as inside its path. Per problem, `per_problem`
    walks (`reachable_walk`); at every state of each, the walk's own step and a legal move drawn
    from the state (Positive), and a near-miss of each (`corrupt_step`, any kind; an absent
    operand is one the walk spent first), Negative. The drawn move keeps the labels balanced
    where the walk's own steps repeat across problems (from two numbers, the step that makes
    the target). Rows are {"question", "completions": [step], "labels": [legal]}, each once."""
    rng = random.Random(seed)
    rows: dict[tuple, dict] = {}
    for p in problems:
        for _ in range(per_problem):
            spent = list(p.numbers)
            for state, step in reachable_walk(p, rng):
                question = question_text(p.target, state)
                for legal in dict.fromkeys((step, rng.choice(moves(state))[0])):
                    bad = corrupt_step(state, legal, rng, spent)
                    for s, ok in [(legal, True)] + ([(bad[0], False)] if bad else []):
                        rows.setdefault((question, s), {"question": question, "completions": [s], "labels": [ok]})
                spent.append(parse_step(step)[3])
    return list(rows.values())


def claimed_walks(problems: Sequence[CountdownProblem], per_problem: int, seed: int) -> list[dict]:
    """Oracle-labelled pairs that teach a PRM to check the claim at the end of a path, for PRM
    training, no policy needed. Per problem, `per_problem` random walks over its numbers whose
    last number v lies in the target range; each gives two rows over the same steps: the
    question with target v (a solved path, every step Positive, whatever the size of its
    arithmetic: `112-14=98|98`), and the question with a near-miss target w whose last step
    claims w through the same operation (`108-10=96|96` for 98), Negative at the end (its earlier
    steps labelled by the oracle for w). A policy that fudges the last result to hit the target
    makes the second kind; a PRM trained mostly on wrong claims learns to doubt the first.
    Rows are {"question", "completions", "labels"}, each distinct path once, deterministic in seed."""
    rng = random.Random(seed)
    rows: dict[tuple, dict] = {}
    for p in problems:
        for _ in range(per_problem):
            for _try in range(20):  # a walk ending in the target range (most do within a few tries)
                steps = random_walk(p.numbers, rng)
                if len(steps) == len(p.numbers) - 1:
                    a, _, b, end, _ = parse_step(steps[-1])
                    if MIN_TARGET <= end <= MAX_TARGET:
                        break
            else:
                continue
            misses = [w for w in near_misses(a, b, end, (-10, -5, -4, -3, -2, -1, 1, 2, 3, 4, 5, 10)) if MIN_TARGET <= w <= MAX_TARGET and w != end]
            add_labelled(rows, question_text(end, p.numbers), steps)
            if misses:
                wrong = rng.choice(misses)
                add_labelled(rows, question_text(wrong, p.numbers), steps[:-1] + [claim_target(steps[-1], wrong)])
    return list(rows.values())
