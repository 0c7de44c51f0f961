"""How well a PRM judges steps: step accuracy, F1 on Negative steps, first-error-step accuracy.

    python -m evals.prm_eval --prm models/prm --data processbench.jsonl
    python -m evals.prm_eval --prm DIR --data steps.jsonl --sep "\n\n" --positive + --negative - --prompt-template "{question}\n"

--data rows are ProcessBench-style `{"problem", "steps": [...], "label": index of the first
wrong step or -1}` or stepwise `{"question", "completions": [...], "labels": [true/false...]}`.
Any PRM directory in this project's convention (label tokens read at each step's separator)
is scored with the transformers reference scorer; the report adds ProcessBench's numbers:
accuracy on the paths with an error (first error found exactly), on the paths without
one, and their harmonic mean.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence


def first_error(correct: Sequence[bool]) -> int | None:
    return next((k for k, ok in enumerate(correct) if not ok), None)


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


def load_labelled_paths(path: str) -> list[tuple[str, list[str], list[bool]]]:
    """(question, steps, step labels) from ProcessBench-style or stepwise JSONL rows."""
    from evals.datasets import DatasetError, read_jsonl

    out = []
    for lineno, row in read_jsonl(path):
        where = f"{path}:{lineno}"
        question = row.get("problem", row.get("question"))
        steps = row.get("steps", row.get("completions"))
        if not isinstance(question, str):
            raise DatasetError(f"{where}: needs a string 'problem' or 'question'")
        if not isinstance(steps, list) or not steps or not all(isinstance(x, str) for x in steps):
            raise DatasetError(f"{where}: 'steps' (or 'completions') must be a non-empty list of strings")
        if isinstance(row.get("label"), int) and not isinstance(row.get("label"), bool):
            first = row["label"]
            if not -1 <= first < len(steps):
                raise DatasetError(f"{where}: 'label' must be -1 or a step index below {len(steps)}, got {first}")
            labels = [first == -1 or k < first for k in range(len(steps))]
        elif isinstance(row.get("labels"), list) and len(row["labels"]) == len(steps) and all(isinstance(x, bool) for x in row["labels"]):
            labels = row["labels"]
        else:
            raise DatasetError(f"{where}: needs 'label' (first wrong step, -1 for none) or 'labels' (one true/false per step)")
        out.append((question, steps, labels))
    return out


def main(argv: list[str] | None = None) -> None:
    from engine import HFPRM, Path, StepFormat
    from engine.models import ModelDirError
    from evals.datasets import DatasetError

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prm", default="models/prm", help="PRM model directory")
    parser.add_argument("--data", required=True, help="JSONL of labelled paths (ProcessBench-style or stepwise)")
    parser.add_argument("--threshold", type=float, default=0.5, help="a step is judged wrong below this P(correct)")
    parser.add_argument("--sep", default=StepFormat.sep)
    parser.add_argument("--positive", default=StepFormat.positive)
    parser.add_argument("--negative", default=StepFormat.negative)
    parser.add_argument("--prompt-template", default=StepFormat.prompt_template)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    fmt = StepFormat(sep=args.sep, positive=args.positive, negative=args.negative, prompt_template=args.prompt_template)
    try:
        rows = load_labelled_paths(args.data)
        scorer = HFPRM(args.prm, fmt, device=args.device)
    except (DatasetError, ModelDirError) as e:
        sys.exit(f"error: {e}")
    scores = scorer.score([Path(q, tuple(steps)) for q, steps, _ in rows]).scores
    print(json.dumps(prm_metrics(scores, [labels for _, _, labels in rows], args.threshold), indent=2))


if __name__ == "__main__":
    main()
