"""How well a PRM judges steps: step accuracy, F1 on Negative steps, first-error-step accuracy."""

from __future__ import annotations

from typing import Sequence


def first_error(correct: Sequence[bool]) -> int | None:
    return next((k for k, ok in enumerate(correct) if not ok), None)


def prm_metrics(scores: Sequence[Sequence[float]], labels: Sequence[Sequence[bool]], threshold: float = 0.5) -> dict:
    """scores: P(correct) per step; labels: True for a correct step. Predicted correct iff score >= threshold.

    first_error_accuracy is ProcessBench's question per path: is the first step judged wrong
    the first step that is wrong (both None for a path with no wrong step)?
    """
    tp = fp = fn = right = steps = paths_right = 0
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
        paths_right += first_error(predicted) == first_error(path_labels)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return {
        "steps": steps,
        "paths": len(labels),
        "step_accuracy": right / steps if steps else 0.0,
        "negative_precision": precision,
        "negative_recall": recall,
        "negative_f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        "first_error_accuracy": paths_right / len(labels) if labels else 0.0,
    }
