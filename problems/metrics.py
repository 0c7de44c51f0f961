"""Numbers about results and about a PRM's step judgements: pure functions, no models.

- `wilson_interval`, `accuracy_by_difficulty`: an accuracy with its 95% interval, per difficulty.
- `first_error`, `correct_so_far`: the first wrong step of a path, and the process labels it
  implies (the one place that finds it).
- `prm_metrics`: step accuracy, F1 on Negative steps and ProcessBench's first-error numbers.
- `accuracy_by_left`, `within_problem_auroc`, `sibling_metrics`: how a PRM judges partial
  paths, ranks a problem's solved and unsolved candidates, and ranks the moves from one state.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Callable, Sequence


def wilson_interval(correct: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """95% confidence interval of a proportion (Wilson score)."""
    if total == 0:
        return (0.0, 1.0)
    p = correct / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return (max(0.0, centre - half), min(1.0, centre + half))


def accuracy_by_difficulty(problems: Sequence, correct: Sequence[bool]) -> dict:
    """{'all': {...}, '2': {...}, ...} with correct, total, accuracy and its 95% interval, per difficulty."""
    groups: dict[str, list[bool]] = defaultdict(list)
    for problem, ok in zip(problems, correct):
        groups[str(problem.difficulty)].append(ok)
        groups["all"].append(ok)
    report = {}
    for key in ["all"] + sorted((k for k in groups if k != "all"), key=int):
        c, n = sum(groups[key]), len(groups[key])
        lo, hi = wilson_interval(c, n)
        report[key] = {"correct": c, "total": n, "accuracy": round(c / n, 4), "ci95": [round(lo, 4), round(hi, 4)]}
    return report


def first_error(correct: Sequence[bool]) -> int | None:
    """The index of the first wrong step, None if every step is right."""
    return next((k for k, ok in enumerate(correct) if not ok), None)


def correct_so_far(correct: Sequence[bool]) -> list[bool]:
    """Process labels from per-step verdicts: True up to the first wrong step, False from it on
    (a step after a wrong one builds on a wrong state)."""
    first = first_error(correct)
    return [first is None or k < first for k in range(len(correct))]


def prm_metrics(scores: Sequence[Sequence[float]], labels: Sequence[Sequence[bool]], threshold: float = 0.5) -> dict:
    """scores: P(correct) per step; labels: True for a correct step. Predicted correct iff score >= threshold.

    first_error_accuracy is ProcessBench's question per path: is the first step judged wrong
    the first step that is wrong (both None for a path with no wrong step)?
    """
    tp = fp = fn = right = steps = 0
    firsts = []  # (predicted, true) first error of each path
    for path_scores, path_labels in zip(scores, labels, strict=True):
        if len(path_scores) != len(path_labels):
            raise ValueError(f"{len(path_scores)} scores for {len(path_labels)} labels")
        predicted = [s >= threshold for s in path_scores]
        for p, y in zip(predicted, path_labels):
            steps += 1
            right += p == y
            tp += (not p) and (not y)  # Negative is the positive class here
            fp += (not p) and y
            fn += p and (not y)
        firsts.append((first_error(predicted), first_error(path_labels)))
    # ProcessBench: the paths split by whether they have an error
    with_error = [p == y for p, y in firsts if y is not None]
    without = [p is None for p, y in firsts if y is None]
    error_acc = sum(with_error) / len(with_error) if with_error else 0.0
    clean_acc = sum(without) / len(without) if without else 0.0
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return {
        "steps": steps,
        "paths": len(labels),
        "step_accuracy": right / steps if steps else 0.0,
        "negative_precision": precision,
        "negative_recall": recall,
        "negative_f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        "first_error_accuracy": sum(p == y for p, y in firsts) / len(firsts) if firsts else 0.0,
        "error_path_accuracy": error_acc,
        "correct_path_accuracy": clean_acc,
        "processbench_f1": 2 * error_acc * clean_acc / (error_acc + clean_acc) if error_acc + clean_acc else 0.0,
    }


def accuracy_by_left(paths: Sequence[tuple[str, Sequence[str], Sequence[float], Sequence[bool], int]], threshold: float = 0.5) -> dict[int, dict]:
    """Step accuracy by how much of the problem is left after the step: paths are (question,
    steps, step scores, step labels, the problem's difficulty), and a step at depth k (1-based) leaves
    difficulty - k numbers (countdown) or operands (arith). Each distinct state (question and
    steps through it) counts once, up to its path's first wrong step (later steps are wrong by
    inheritance). `positive_share` is the accuracy of always answering "correct"."""
    seen: dict[tuple, tuple[int, bool, bool]] = {}
    for question, steps, scores, labels, difficulty in paths:
        end = first_error(labels)
        for k in range(len(labels) if end is None else end + 1):
            seen.setdefault((question, tuple(steps[: k + 1])), (difficulty - k - 1, scores[k] >= threshold, labels[k]))
    tally: dict[int, list[int]] = {}  # left -> [right, Positive, steps]
    for left, predicted, label in seen.values():
        counts = tally.setdefault(left, [0, 0, 0])
        counts[0] += predicted == label
        counts[1] += label
        counts[2] += 1
    return {left: {"accuracy": r / t, "positive_share": p / t, "steps": t} for left, (r, p, t) in sorted(tally.items(), reverse=True)}


def within_problem_auroc(groups: Sequence[tuple[Sequence[float], Sequence[bool]]]) -> tuple[float | None, int]:
    """AUROC of a PRM's scores between solved and unsolved candidates of the same problem: over
    every (solved, unsolved) pair of candidates that share a problem, the fraction the solved
    one outscores (ties count half). Returns (AUROC or None, problems with both kinds)."""
    wins = pairs = 0.0
    problems = 0
    for scores, solved in groups:
        good = [s for s, ok in zip(scores, solved) if ok]
        bad = [s for s, ok in zip(scores, solved) if not ok]
        if good and bad:
            problems += 1
            for g in good:
                for b in bad:
                    wins += 1.0 if g > b else 0.5 if g == b else 0.0
                    pairs += 1
    return (wins / pairs if pairs else None), problems


def sibling_metrics(rows: Sequence[dict], scores: Sequence[Sequence[float]], difficulty: Callable[[str], int]) -> dict[int, dict]:
    """How a PRM ranks the moves from one state, what beam search asks of it. rows are sibling
    sets (countdown.sibling_paths: stepwise rows sharing a question and all but their last step);
    by how much is left after the last step (difficulty(question) - steps): the last step's
    accuracy, the share of Positive labels (always-yes accuracy), and the within-set AUROC
    between its Positive and Negative last steps."""
    by_left: dict[int, list] = {}
    sets: dict[int, dict[tuple, tuple[list, list]]] = {}  # left -> (question, the steps before) -> (scores, labels)
    for row, s in zip(rows, scores, strict=True):
        left = difficulty(row["question"]) - len(row["completions"])
        by_left.setdefault(left, []).append((s[-1], row["labels"][-1]))
        group = sets.setdefault(left, {}).setdefault((row["question"], tuple(row["completions"][:-1])), ([], []))
        group[0].append(s[-1])
        group[1].append(row["labels"][-1])
    report = {}
    for left in sorted(by_left, reverse=True):
        pairs = by_left[left]
        auroc, _ = within_problem_auroc(list(sets[left].values()))
        report[left] = {"accuracy": sum((p >= 0.5) == y for p, y in pairs) / len(pairs), "positive_share": sum(y for _, y in pairs) / len(pairs),
                        "sibling_auroc": auroc, "steps": len(pairs)}
    return report
