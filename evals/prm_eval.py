"""How well a PRM judges steps: step accuracy, F1 on Negative steps, first-error-step accuracy.

    python -m evals.prm_eval --prm models/prm --data processbench.jsonl
    python -m evals.prm_eval --prm DIR --data steps.jsonl --sep "\n\n" --positive + --negative - --prompt-template "{question}\n"
    python -m evals.prm_eval --recipe recipes/smollm2-qwen-prm.yaml --data champ    # any recipe's PRM, CHAMP's annotations
    python -m evals.prm_eval --run runs/cd-bon16 --dataset countdown-test   # within-problem AUROC of a run's final candidates
    python -m evals.prm_eval --recipe recipes/countdown.yaml --siblings 200   # how it ranks sibling steps, by numbers left

--data rows are any layout evals.step_data reads: stepwise `{"question", "completions",
"labels"}`, ProcessBench `{"problem", "steps", "label": first wrong step or -1}`,
Math-Shepherd, PRM800K; or `champ` (human first-wrong-step annotations, PyPI champ-dataset).
A token PRM directory in this project's convention (label tokens read at each step's
separator) is scored with the transformers reference scorer; with --recipe, the recipe's PRM
(token or classifier) is served by vLLM. The report adds ProcessBench's numbers:
accuracy on the paths with an error (first error found exactly), on the paths without
one, and their harmonic mean.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path as FsPath
from typing import Callable, Sequence


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


def run_auroc(run_dir: str, dataset: str, aggregation: str = "last") -> dict:
    """within_problem_auroc over the final candidates of an evals.run directory (best_of_n, say):
    each candidate graded by the dataset's grader, scored by its aggregated step scores. On an
    embedded world the report adds prm_metrics over the distinct candidates of each problem
    (held-out rollouts, labelled by the world's exact step labels) and their step accuracy by
    how much is left after each step (accuracy_by_left)."""
    from engine.types import Path
    from evals.datasets import load_problems
    from evals.run import read_results
    from evals.tasks import get_world
    from strategies import aggregate

    problems = {p.id: p for p in load_problems(dataset)}
    groups, states = [], []  # states: (question, steps, scores, labels, difficulty) of each distinct candidate
    for row in read_results(FsPath(run_dir) / "results.jsonl"):
        p = problems[row["id"]]
        cands = [c for c in row["candidates"] if c["scores"]]
        solved = [p.grade(None, Path(p.question, tuple(c["steps"]), c.get("finished", True))) for c in cands]
        groups.append(([aggregate(c["scores"], aggregation) for c in cands], solved))
        if p.world is not None:
            for steps, scores in dict((tuple(c["steps"]), c["scores"]) for c in cands).items():
                states.append((p.question, steps, scores, get_world(p.world).step_labels(p.question, list(steps)), p.difficulty))
    auroc, both = within_problem_auroc(groups)
    report = {"within_problem_auroc": auroc, "problems_with_both": both, "problems": len(groups)}
    if states:
        report["steps_of_distinct_candidates"] = prm_metrics([s[2] for s in states], [s[3] for s in states])
        report["step_accuracy_by_left"] = accuracy_by_left(states)
    return report


def main(argv: list[str] | None = None) -> None:
    from engine import HFPRM, Path, StepFormat
    from engine.models import DEFAULT_PRM, ModelDirError
    from evals.datasets import DatasetError
    from evals.recipes import RecipeError, load_recipe
    from evals.step_data import load_step_labels, parse_row
    from evals.tasks import countdown

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prm", default=None, help="PRM model directory (default: the recipe's, else models/prm)")
    parser.add_argument("--recipe", default=None, help="score with a recipe's PRM (its format and kind, served by vLLM)")
    parser.add_argument("--data", default=None, help="step-labelled paths: a file in any layout evals.step_data reads, or 'champ'")
    parser.add_argument("--run", default=None, help="instead: an evals.run directory; report the within-problem AUROC of its final candidates")
    parser.add_argument("--dataset", default=None, help="with --run: the dataset it ran on (grades each candidate)")
    parser.add_argument("--aggregation", default="last", help="with --run: how step scores make a candidate's score")
    parser.add_argument("--siblings", type=int, default=None, help="instead of --data: sibling sets (countdown.sibling_paths, 8 a state, seed 0) of the first N countdown dev problems; report sibling_metrics")
    parser.add_argument("--limit", type=int, default=None, help="first N paths only")
    parser.add_argument("--threshold", type=float, default=0.5, help="a step is judged wrong below this P(correct)")
    parser.add_argument("--sep", default=StepFormat.sep)
    parser.add_argument("--positive", default=StepFormat.positive)
    parser.add_argument("--negative", default=StepFormat.negative)
    parser.add_argument("--prompt-template", default=StepFormat.prompt_template)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    if args.run:
        if not args.dataset:
            parser.error("--run needs --dataset")
        print(json.dumps(run_auroc(args.run, args.dataset, args.aggregation), indent=2))
        return
    if not (args.data or args.siblings):
        parser.error("one of --data, --run or --siblings is required")
    try:
        if args.siblings:
            sibling_rows = countdown.sibling_paths(countdown.load_split("dev")[: args.siblings], per_state=8, seed=0)
            rows = [parse_row(row, f"sibling set {k}") for k, row in enumerate(sibling_rows)]
        else:
            rows = load_step_labels(args.data)[: args.limit]
        if args.recipe:
            scorer = load_recipe(args.recipe).prm(model=args.prm)
        else:
            fmt = StepFormat(sep=args.sep, positive=args.positive, negative=args.negative, prompt_template=args.prompt_template)
            scorer = HFPRM(args.prm or DEFAULT_PRM, fmt, device=args.device)
    except (DatasetError, ModelDirError, RecipeError) as e:
        sys.exit(f"error: {e}")
    paths = [Path(r.question, tuple(r.steps)) for r in rows]
    fits = [len(scorer.encoder.path_ids(p.question, p.steps)[0]) <= scorer.max_len for p in paths]
    if not all(fits):
        print(f"skipping {fits.count(False)} of {len(paths)} paths longer than the PRM's {scorer.max_len} tokens", file=sys.stderr)
    kept = [r for r, ok in zip(rows, fits) if ok]
    scores = scorer.score([p for p, ok in zip(paths, fits) if ok]).scores
    report = {**prm_metrics(scores, [r.labels for r in kept], args.threshold), "skipped_too_long": fits.count(False)}
    if args.siblings:
        kept_rows = [row for row, ok in zip(sibling_rows, fits) if ok]
        report["siblings_by_left"] = sibling_metrics(kept_rows, scores, lambda q: len(countdown.parse_question(q)[1]))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
