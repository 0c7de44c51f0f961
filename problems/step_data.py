"""Step-labelled solutions in the layouts they come in, as (question, steps, labels).

    rows = load_step_labels("math_shepherd.jsonl")    # any file problems.datasets.read_rows reads
    rows = load_step_labels("champ")                   # CHAMP's human first-wrong-step annotations

Each row of a file may be any of (detected per row):
- stepwise (ours, TRL): `{"question"|"prompt", "completions": [step, ...], "labels": [bool, ...]}`
- ProcessBench: `{"problem", "steps": [...], "label": index of the first wrong step or -1}`
- Math-Shepherd: `{"input": "question Step 1: ... ки\\nStep 2: ... ки", "label": the same text
  with each "ки" replaced by "+" or "-"}`; the question ends where "Step 1:" begins
- PRM800K: `{"question": {"problem"}, "label": {"steps": [{"completions": [{"text", "rating"}],
  "chosen_completion": i | null}]}}`; a step is the chosen completion (or, where the labeller
  stopped, the first one rated -1); rating -1 is wrong, 0 and +1 are not.
A labelled path ends at its first wrong step's successors too: labels after a wrong step are
False (a step built on a wrong one is not correct), as in ProcessBench.

CHAMP (PyPI `champ-dataset`): 540 GPT-3.5/GPT-4/PaLM-2 solutions of 270 competition problems,
a human marking the character span of the first wrong step (or none). Steps are the solution's
blank-line paragraphs; the wrong step is the paragraph where the span starts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from problems.datasets import DatasetError, Problem, read_rows
from engine.answers import normalize, to_number

SHEPHERD_TAG = "ки"


@dataclass(frozen=True)
class StepLabels:
    question: str
    steps: list[str]
    labels: list[bool]  # True: the step is correct


def _after_first_wrong(labels: list[bool]) -> list[bool]:
    first = labels.index(False) if False in labels else len(labels)
    return [k < first for k in range(len(labels))]


def from_stepwise(row: dict, where: str) -> StepLabels:
    question, steps, labels = row.get("question", row.get("prompt")), row["completions"], row.get("labels")
    if not isinstance(labels, list) or len(labels) != len(steps) or not all(isinstance(x, bool) for x in labels):
        raise DatasetError(f"{where}: 'labels' must be one true/false per completion")
    return StepLabels(question, steps, labels)


def from_processbench(row: dict, where: str) -> StepLabels:
    steps, first = row["steps"], row.get("label")
    if not isinstance(first, int) or isinstance(first, bool) or not -1 <= first < len(steps):
        raise DatasetError(f"{where}: 'label' must be -1 or a step index below {len(steps)}, got {first!r}")
    return StepLabels(row.get("problem", row.get("question")), steps, [first == -1 or k < first for k in range(len(steps))])


def from_math_shepherd(row: dict, where: str) -> StepLabels:
    text, marked = row["input"], row.get("label")
    if not isinstance(marked, str) or text.count(SHEPHERD_TAG) == 0:
        raise DatasetError(f"{where}: Math-Shepherd rows need an 'input' with step tags {SHEPHERD_TAG!r} and a string 'label'")
    pieces = text.split(SHEPHERD_TAG)  # the text before each tag is a step (the first also holds the question)
    labels, offset = [], 0
    for piece in pieces[:-1]:
        offset += len(piece)
        mark = marked[offset : offset + 1]
        if mark not in ("+", "-"):
            raise DatasetError(f"{where}: 'label' should hold '+' or '-' where 'input' has a step tag, found {mark!r}")
        labels.append(mark == "+")
        offset += 1
    first = pieces[0]
    split = first.find("Step 1:")
    if split < 0:
        split = first.rfind("\n")
    if split <= 0:
        raise DatasetError(f"{where}: cannot tell the question from the first step (no 'Step 1:' or newline)")
    steps = [first[split:]] + pieces[1:-1]
    return StepLabels(first[:split].strip(), [s.strip() for s in steps], _after_first_wrong(labels))


def from_prm800k(row: dict, where: str) -> StepLabels:
    question, label = row["question"].get("problem"), row["label"]
    steps, labels = [], []
    for k, step in enumerate(label.get("steps") or []):
        completions, chosen = step.get("completions") or [], step.get("chosen_completion")
        if chosen is not None:
            pick = completions[chosen]
        elif step.get("human_completion"):
            pick = {**step["human_completion"], "rating": step["human_completion"].get("rating", 1)}
        else:  # the labeller stopped here: the step that ended it
            pick = next((c for c in completions if c.get("rating") == -1), completions[0] if completions else None)
        if pick is None or not isinstance(pick.get("text"), str):
            raise DatasetError(f"{where}: PRM800K step {k} has no completion text")
        steps.append(pick["text"])
        labels.append(pick.get("rating") != -1)
    if not steps:
        raise DatasetError(f"{where}: PRM800K row without steps")
    return StepLabels(question, steps, _after_first_wrong(labels))


def parse_row(row: dict, where: str) -> StepLabels:
    """One row in any of the layouts above."""
    try:
        if "completions" in row:
            parsed = from_stepwise(row, where)
        elif "steps" in row:
            parsed = from_processbench(row, where)
        elif "input" in row:
            parsed = from_math_shepherd(row, where)
        elif isinstance(row.get("question"), dict) and isinstance(row.get("label"), dict):
            parsed = from_prm800k(row, where)
        else:
            raise DatasetError(f"{where}: not a known step-labelled layout (stepwise 'completions'+'labels', ProcessBench "
                               "'steps'+'label', Math-Shepherd 'input'+'label', PRM800K 'question'+'label' objects)")
    except (KeyError, TypeError, AttributeError, IndexError) as e:
        raise DatasetError(f"{where}: malformed row ({type(e).__name__}: {e})") from None
    if not isinstance(parsed.question, str) or not parsed.question.strip():
        raise DatasetError(f"{where}: needs a non-empty question")
    if not parsed.steps or not all(isinstance(s, str) for s in parsed.steps):
        raise DatasetError(f"{where}: the steps must be a non-empty list of strings")
    return parsed


def champ_step_labels() -> list[StepLabels]:
    """CHAMP's annotated model solutions, blank-line steps, the human's first wrong step."""
    rows = []
    for problem in _champ().problems.values():
        for annotation in problem.fws_annotations.values():
            text = annotation.text
            bounds, start = [], 0
            for paragraph in text.split("\n\n"):
                bounds.append((start, paragraph))
                start += len(paragraph) + 2
            steps = [(s, p.strip()) for s, p in bounds if p.strip()]
            labels = [True] * len(steps)
            if annotation.start_idx is not None:
                wrong = max((k for k, (s, _) in enumerate(steps) if s <= annotation.start_idx), default=0)
                labels = [k < wrong for k in range(len(steps))]
            rows.append(StepLabels(problem.text, [p for _, p in steps], labels))
    return rows


def champ_problems(numeric_only: bool = False) -> list[Problem]:
    """CHAMP's 270 problems, for evals.run --dataset champ (or champ-numeric).

    Its answers are free-form ("C(10, 5), or equivalently 252", "2^(n-1)", "No"); where one
    gives an equivalent or approximate form, the graded answer is the form that is a number
    (the exact one if both are: "5/14, or approximately 35.7%" grades as 5/14).
    numeric_only: only the problems whose answer is then a number (the reliably graded ones).
    """
    problems = []
    for pid, p in _champ().problems.items():
        answer = p.answer
        alternative = re.search(r",\s*or (?:equivalently|approximately)\s+(.+)$", answer)
        if alternative:  # keep the exact form if it is a number, else take the stated number
            head = answer[: alternative.start()]
            if to_number(normalize(head)) is not None:
                answer = head
            elif to_number(normalize(alternative.group(1))) is not None:
                answer = alternative.group(1)
        if not numeric_only or to_number(normalize(answer)) is not None:
            problems.append(Problem(pid, p.text, answer))
    return problems


@lru_cache(maxsize=1)
def _champ():  # the 72 MB JSON, read once
    try:
        import champ_dataset
    except ImportError:
        raise DatasetError("CHAMP needs the PyPI package champ-dataset (pip install champ-dataset)") from None
    return champ_dataset.load("v0")


def load_step_labels(spec: str | Path) -> list[StepLabels]:
    if str(spec) == "champ":
        return champ_step_labels()
    path = Path(spec)
    if not path.exists():
        raise DatasetError(f"step-labelled data not found: {path}")
    return [parse_row(row, f"{path}:{lineno}") for lineno, row in read_rows(path)]
