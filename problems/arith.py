"""
The embedded arithmetic world: step-wise integer arithmetic problems.

A problem is an expression of non-negative integers joined by + - * with no
spaces and no parentheses, e.g. "3+4*5-2". Standard precedence applies: every
'*' binds tighter than + and -, and + / - associate left to right.

A solution is a list of steps. Each step is the whole expression rewritten
with exactly one adjacent pair `a op b` replaced by its value:

    3+4*5-2  ->  3+20-2  ->  23-2  ->  21

reference_steps() always reduces the leftmost '*' first, then the leftmost
+ or -. Because operands are non-negative, the only negative number that can
ever appear is the very first one ("3-20" -> "-17"), so the grammar of a state
is: an optional leading '-', then numbers joined by operators. Numbers longer
than MAX_DIGITS digits are treated as malformed (this also keeps us clear of
Python's 4300-digit int() limit).

Verifier semantics (verify_steps):
  - A step is correct iff it parses AND it equals the previous state with ONE
    adjacent pair `a op b` replaced by the value of `a op b` AND that pair may
    legally be reduced (a + or - pair must not touch a '*' on either side) AND
    the value of the whole expression is unchanged. This accepts any legal
    order (e.g. "2*3+4*5" -> "2*3+20") and rejects wrong precedence
    ("3+4*5" -> "7*5"), wrong arithmetic, two reductions in one step
    ("3+4*5" -> "23"), reordering and malformed text. Numbers are compared by
    value, so a harmless leading zero ("07") is not an error.
  - The previous state for step 0 is the question. Every later step is judged
    against the step generated just before it, even if that step was wrong,
    so each step is judged as a local reduction of what precedes it.
  - Once a step (or the question) is malformed, every later step is incorrect.
  - A step after the state is already a bare number is incorrect (extra step).
  - answer = parse_answer(last step); answer_correct compares it with the
    value of the question; complete = the last step is a bare number.
verify_steps, parse_answer and grade never raise, whatever text they get.
"""

import functools
import math
import random
import re
from dataclasses import dataclass
from typing import Sequence

from problems.metrics import correct_so_far, first_error

NAME = "arith"
DIFFICULTY = "operands"  # what a problem's difficulty counts
ARITH_VERSION = "v1"
MAX_DIGITS = 60  # longer numbers are malformed (int() refuses > 4300 digits)

_STATE_RE = re.compile(r"-?[0-9]+(?:[-+*][0-9]+)*")  # ASCII digits only
_TOKEN_RE = re.compile(r"[0-9]+|[-+*]")
_ANSWER_RE = re.compile(r"-?[0-9]+")


@dataclass(frozen=True)
class ArithProblem:
    id: str                  # e.g. "test-v1-00042"
    question: str            # e.g. "3+4*5-2"
    answer: int              # e.g. 21
    steps: tuple[str, ...]   # reference solution; the last step is str(answer)
    n_operands: int          # difficulty

    @property
    def difficulty(self) -> int:
        return self.n_operands


@dataclass(frozen=True)
class StepVerdict:
    step_correct: tuple[bool, ...]  # one per generated step
    first_error: int | None         # index of the first incorrect step
    answer: int | None              # parse_answer(last step)
    answer_correct: bool            # answer == value of the question
    complete: bool                  # last step is a bare number

# -----------------------------------------------------------------------------
# parsing and evaluation. A state is a token list [n0, op, n1, op, n2, ...]
# with ints at even positions and operator strings at odd positions.

QUESTION_CHARS = "0123456789+-*"
QUESTION_SHAPE = "numbers joined by + - *, no spaces, e.g. 3+4*5-2"


def is_question(question: str) -> bool:
    return _tokenize(question) is not None


def _tokenize(text) -> list | None:
    """Parse a state into tokens, or return None if it is malformed."""
    if not isinstance(text, str):
        return None
    text = text.strip()
    if _STATE_RE.fullmatch(text) is None:
        return None
    negative = text.startswith("-")
    tokens = _TOKEN_RE.findall(text[1:] if negative else text)
    for i in range(0, len(tokens), 2):
        if len(tokens[i]) > MAX_DIGITS:
            return None
        tokens[i] = int(tokens[i])
    if negative:
        tokens[0] = -tokens[0]
    return tokens

def _value(tokens: list) -> int:
    """Value of a token list with standard precedence."""
    total, term = 0, tokens[0]
    for i in range(1, len(tokens), 2):
        op, b = tokens[i], tokens[i + 1]
        if op == "*":
            term *= b
        else:  # close the running product term, start a new one
            total += term
            term = b if op == "+" else -b
    return total + term

def _apply(a: int, op: str, b: int) -> int:
    return a * b if op == "*" else a + b if op == "+" else a - b

def _reduce(tokens: list, i: int) -> list:
    """Replace the pair around the operator at index i by its value."""
    a, op, b = tokens[i - 1], tokens[i], tokens[i + 1]
    return tokens[:i - 1] + [_apply(a, op, b)] + tokens[i + 2:]

def _render(tokens: list) -> str:
    return "".join(map(str, tokens))

def _steps_from_tokens(tokens: list) -> list[str]:
    """Reference order: leftmost '*' while any remains, then leftmost +/-."""
    steps = []
    while len(tokens) > 1:
        i = tokens.index("*") if "*" in tokens else 1
        tokens = _reduce(tokens, i)
        steps.append(_render(tokens))
    return steps

def evaluate(expression: str) -> int:
    """Value of an expression; raises ValueError if it is malformed."""
    tokens = _tokenize(expression)
    if tokens is None:
        raise ValueError(f"malformed expression: {str(expression)[:80]!r}")
    return _value(tokens)

def reference_steps(expression: str) -> list[str]:
    """Reference solution, one reduction per step ([] for a bare number)."""
    tokens = _tokenize(expression)
    if tokens is None:
        raise ValueError(f"malformed expression: {str(expression)[:80]!r}")
    steps = _steps_from_tokens(tokens)
    if any(_tokenize(s) is None for s in steps):
        raise ValueError(f"intermediate value exceeds {MAX_DIGITS} digits")
    return steps

def parse_answer(text: str) -> int | None:
    """The integer in text (optionally negative, surrounding whitespace ok), else None."""
    if not isinstance(text, str):
        return None
    text = text.strip()
    if _ANSWER_RE.fullmatch(text) is None or len(text.lstrip("-")) > MAX_DIGITS:
        return None
    return int(text)

def grade(problem: ArithProblem, answer_text: str) -> bool:
    """True iff answer_text is exactly the problem's integer answer."""
    return parse_answer(answer_text) == problem.answer

def solved(question: str, steps: Sequence[str], finished: bool = True) -> bool:
    """The world's grader of a path: its last step is the question's value (as `grade`; the
    steps before it are not checked, so the measured arith accuracies keep their meaning)."""
    verdict = verify_steps(question, steps)
    return bool(steps) and verdict.answer_correct

def step_labels(question: str, steps: Sequence[str]) -> list[bool]:
    """Process labels: True up to the first wrong step, False from it on."""
    return correct_so_far(verify_steps(question, steps).step_correct)

# -----------------------------------------------------------------------------
# step verification

def _is_legal_step(prev: list, cur: list) -> bool:
    """Is cur exactly prev with one legally reducible pair reduced?"""
    if len(prev) < 3 or len(cur) != len(prev) - 2:
        return False  # prev is a bare number, or not exactly one reduction
    target = _value(prev)
    for i in range(1, len(prev), 2):
        if prev[i] != "*":
            # a + or - pair touching a '*' would break precedence
            if (i >= 3 and prev[i - 2] == "*") or (i + 2 < len(prev) and prev[i + 2] == "*"):
                continue
        if _reduce(prev, i) == cur and _value(cur) == target:
            return True
    return False

def verify_steps(question: str, steps: Sequence[str]) -> StepVerdict:
    """Judge each step as a single legal reduction of the state before it."""
    steps = list(steps)
    prev = _tokenize(question)
    broken = prev is None  # once anything is malformed, later steps all fail
    step_correct = []
    for step in steps:
        cur = _tokenize(step)
        ok = not broken and cur is not None and _is_legal_step(prev, cur)
        step_correct.append(ok)
        broken = broken or cur is None
        prev = cur
    last = steps[-1] if len(steps) > 0 else None
    answer = parse_answer(last)
    question_tokens = _tokenize(question)
    truth = _value(question_tokens) if question_tokens is not None else None
    return StepVerdict(
        step_correct=tuple(step_correct),
        first_error=first_error(step_correct),
        answer=answer,
        answer_correct=answer is not None and answer == truth,
        complete=answer is not None,  # a bare number is exactly what parses as an answer
    )

# -----------------------------------------------------------------------------
# problem generation

def _random_tokens(rng: random.Random, k: int, lo: int, hi: int, ops: str) -> list:
    tokens = [rng.randint(lo, hi)]
    for _ in range(k - 1):
        tokens.append(rng.choice(ops))
        tokens.append(rng.randint(lo, hi))
    return tokens

def _make_problem(pid: str, tokens: list) -> ArithProblem:
    steps = _steps_from_tokens(tokens)
    return ArithProblem(id=pid, question=_render(tokens), answer=_value(tokens),
                        steps=tuple(steps), n_operands=(len(tokens) + 1) // 2)

def _check_args(n, n_operands, min_value, max_value, operators) -> tuple[int, int, str]:
    """Validate generate_problems arguments; returns (lo, hi, ops)."""
    if not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be an int >= 0, got {n!r}")
    if isinstance(n_operands, int):
        lo = hi = n_operands
    elif isinstance(n_operands, tuple) and len(n_operands) == 2 and all(isinstance(x, int) for x in n_operands):
        lo, hi = n_operands
    else:
        raise ValueError(f"n_operands must be an int or a (lo, hi) tuple, got {n_operands!r}")
    if not 2 <= lo <= hi:
        raise ValueError(f"n_operands needs 2 <= lo <= hi, got {n_operands!r}")
    if not (isinstance(min_value, int) and isinstance(max_value, int) and 0 <= min_value <= max_value):
        raise ValueError(f"need ints 0 <= min_value <= max_value, got {min_value!r}, {max_value!r}")
    # every intermediate value is at most max(max_value, 2) ** hi in magnitude
    if hi * math.log10(max(max_value, 2)) >= MAX_DIGITS:
        raise ValueError(f"values could exceed {MAX_DIGITS} digits; use fewer operands or smaller values")
    if not isinstance(operators, str) or not operators or not set(operators) <= set("+-*"):
        raise ValueError(f"operators must be a non-empty subset of '+-*', got {operators!r}")
    ops = "".join(c for c in "+-*" if c in operators)  # canonical order, no duplicates
    return lo, hi, ops

def generate_problems(n: int, seed: int, n_operands: int | tuple[int, int] = (2, 4),
                      min_value: int = 1, max_value: int = 30,
                      operators: str = "+-*") -> list[ArithProblem]:
    """n random problems, deterministic in seed. A tuple n_operands is an inclusive range."""
    lo, hi, ops = _check_args(n, n_operands, min_value, max_value, operators)
    rng = random.Random(seed)
    problems = []
    for i in range(n):
        k = rng.randint(lo, hi)
        problems.append(_make_problem(f"gen-{seed}-{i:05d}", _random_tokens(rng, k, min_value, max_value, ops)))
    return problems

# -----------------------------------------------------------------------------
# fixed, versioned splits (generated on the fly, no files)
# The held-out splits are drawn first: test, then dev (skipping test questions),
# then train (skipping dev and test questions). Drawing train first would not
# work: 200k draws cover all 2700 two-operand questions, leaving none for test.
# dev and test have no duplicate questions; train may repeat its own questions.

SPLITS: dict[str, dict] = {
    "test":  {"seed": 1002, "size": 500, "n_operands_each": (2, 3, 4, 5, 6), "per_n_operands": 100},  # 5, 6: longer than the train split
    "dev":   {"seed": 1001, "size": 500, "n_operands": (2, 4)},
    "train": {"seed": 1000, "size": 200_000, "n_operands": (2, 4)},
}
_SPLIT_VALUES = dict(min_value=1, max_value=30, operators="+-*")

def _draw_unique(split: str, rng: random.Random, count: int, lo: int, hi: int,
                 exclude: set[str], start: int, dedupe: bool) -> list[ArithProblem]:
    """Draw count problems whose questions are not in exclude (exclude grows if dedupe)."""
    problems = []
    v = _SPLIT_VALUES
    while len(problems) < count:
        tokens = _random_tokens(rng, rng.randint(lo, hi), v["min_value"], v["max_value"], v["operators"])
        question = _render(tokens)
        if question in exclude:
            continue  # skipped deterministically: the rng stream is fixed
        if dedupe:
            exclude.add(question)
        problems.append(_make_problem(f"{split}-{ARITH_VERSION}-{start + len(problems):05d}", tokens))
    return problems

@functools.lru_cache(maxsize=None)
def _split(name: str) -> tuple[ArithProblem, ...]:
    spec = SPLITS[name]
    rng = random.Random(spec["seed"])
    if name == "test":
        problems, seen = [], set()
        for k in spec["n_operands_each"]:
            problems += _draw_unique(name, rng, spec["per_n_operands"], k, k, seen, len(problems), dedupe=True)
    elif name == "dev":
        seen = {p.question for p in _split("test")}
        problems = _draw_unique(name, rng, spec["size"], *spec["n_operands"], seen, 0, dedupe=True)
    else:
        held_out = {p.question for p in _split("test") + _split("dev")}
        problems = _draw_unique(name, rng, spec["size"], *spec["n_operands"], held_out, 0, dedupe=False)
    return tuple(problems)

def load_split(name: str) -> list[ArithProblem]:
    """A fresh list of the split's problems ("train", "dev" or "test"); cached underneath."""
    if name not in SPLITS:
        raise ValueError(f"unknown split {name!r}, expected one of {sorted(SPLITS)}")
    return list(_split(name))

def fresh_problems(n: int, seed: int, n_operands: int | tuple[int, int] = (2, 6)) -> list[ArithProblem]:
    """n generated problems (split value range) none of whose questions is in dev or test."""
    held_out = {p.question for split in ("dev", "test") for p in _split(split)}
    lo, hi = (n_operands, n_operands) if isinstance(n_operands, int) else n_operands
    return _draw_unique(f"fresh{seed}", random.Random(seed), n, lo, hi, held_out, 0, dedupe=False)
