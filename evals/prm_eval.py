"""How well a PRM judges steps: step accuracy, F1 on Negative steps, first-error-step accuracy.

    python -m evals.prm_eval --prm models/prm --data processbench.jsonl
    python -m evals.prm_eval --prm DIR --data steps.jsonl --sep "\n\n" --positive + --negative - --prompt-template "{question}\n"
    python -m evals.prm_eval --recipe recipes/smollm2-qwen-prm.yaml --data champ    # any recipe's PRM, CHAMP's annotations
    python -m evals.prm_eval --run runs/cd-bon16 --dataset countdown-test   # within-problem AUROC of a run's final candidates
    python -m evals.prm_eval --recipe recipes/countdown.yaml --siblings 200   # how it ranks sibling steps, by numbers left

--data rows are any layout problems.step_data reads: stepwise `{"question", "completions",
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
from pathlib import Path

from problems.metrics import accuracy_by_left, prm_metrics, sibling_metrics, within_problem_auroc


def run_auroc(run_dir: str, dataset: str, aggregation: str = "last") -> dict:
    """within_problem_auroc over the final candidates of an evals.run directory (best_of_n, say):
    each candidate graded by the dataset's grader, scored by its aggregated step scores. On an
    embedded world the report adds prm_metrics over the distinct candidates of each problem
    (held-out rollouts, labelled by the world's exact step labels) and their step accuracy by
    how much is left after each step (accuracy_by_left)."""
    from engine.types import StepPath
    from evals.run import read_results
    from problems.datasets import load_problems
    from problems.worlds import get_world
    from strategies import aggregate

    problems = {p.id: p for p in load_problems(dataset)}
    groups, states = [], []  # states: (question, steps, scores, labels, difficulty) of each distinct candidate
    for row in read_results(Path(run_dir) / "results.jsonl"):
        p = problems[row["id"]]
        cands = [c for c in row["candidates"] if c["scores"]]
        solved = [p.grade(None, StepPath(p.question, tuple(c["steps"]), c.get("finished", True))) for c in cands]
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
    from engine import HFPRM, StepFormat, StepPath
    from engine.models import DEFAULT_PRM, ModelDirError
    from problems import countdown
    from problems.datasets import DatasetError
    from problems.step_data import load_step_labels, parse_row
    from recipes import RecipeError, load_recipe

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prm", default=None, help="PRM model directory (default: the recipe's, else models/prm)")
    parser.add_argument("--recipe", default=None, help="score with a recipe's PRM (its format and kind, served by vLLM)")
    parser.add_argument("--data", default=None, help="step-labelled paths: a file in any layout problems.step_data reads, or 'champ'")
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
    paths = [StepPath(r.question, tuple(r.steps)) for r in rows]
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
