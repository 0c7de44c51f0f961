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

from dataclasses import dataclass
from pathlib import Path

from problems.datasets import DatasetError, champ, read_rows
from problems.metrics import correct_so_far

SHEPHERD_TAG = "ки"


@dataclass(frozen=True)
class StepLabels:
    question: str
    steps: list[str]
    labels: list[bool]  # True: the step is correct


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
    return StepLabels(first[:split].strip(), [s.strip() for s in steps], correct_so_far(labels))


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
    return StepLabels(question, steps, correct_so_far(labels))


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
    for problem in champ().problems.values():
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


def load_step_labels(spec: str | Path) -> list[StepLabels]:
    if str(spec) == "champ":
        return champ_step_labels()
    path = Path(spec)
    if not path.exists():
        raise DatasetError(f"step-labelled data not found: {path}")
    return [parse_row(row, f"{path}:{lineno}") for lineno, row in read_rows(path)]
