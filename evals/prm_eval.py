"""How well a PRM judges steps: step accuracy, F1 on Negative steps, first-error-step accuracy.

    python -m evals.prm_eval --prm models/prm --data processbench.jsonl
    python -m evals.prm_eval --prm DIR --data steps.jsonl --sep "\n\n" --positive + --negative - --prompt-template "{question}\n"
    python -m evals.prm_eval --recipe recipes/smollm2-qwen-prm.yaml --data champ    # any recipe's PRM, CHAMP's annotations
    python -m evals.prm_eval --run runs/cd-bon16 --dataset countdown-test   # within-problem AUROC of a run's final candidates
    python -m evals.prm_eval --recipe recipes/countdown.yaml --siblings 200   # how it ranks sibling steps, by numbers left
    python -m evals.prm_eval --recipe recipes/countdown.yaml --slips 400      # which illegal steps it passes, by kind

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

from problems.metrics import accuracy_by_left, prm_metrics, sibling_metrics, wilson_interval, within_problem_auroc

STEERED_BY_NOTHING = ("best_of_n", "majority", "greedy")  # strategies whose samples do not depend on the PRM


def run_auroc(run_dir: str, dataset: str, aggregation: str = "last", scorer=None, selection: str = "prm", answer_format: str = "last_step") -> dict:
    """within_problem_auroc over the final candidates of an evals.run directory (best_of_n, say):
    each candidate graded by the dataset's grader, scored by its aggregated step scores. On an
    embedded world the report adds prm_metrics over the distinct candidates of each problem
    (held-out rollouts, labelled by the world's exact step labels) and their step accuracy by
    how much is left after each step (accuracy_by_left).

    With a `scorer`, the candidates are scored again by it (each distinct path once) instead of
    read from the run, and the report adds the accuracy of the candidate best_of_n picks by those
    scores (base.select with `selection`; votes compare answers read by `answer_format`): on a run
    whose candidates no PRM steered (best_of_n, majority), what best_of_n with this verifier gets
    on the same samples, without sampling them again."""
    from engine.answers import answer_key, final_answer
    from engine.types import StepPath
    from evals.run import read_results
    from problems.datasets import load_problems
    from problems.worlds import get_world
    from strategies import aggregate
    from strategies.base import Candidate, select

    problems = {p.id: p for p in load_problems(dataset)}
    rows = read_results(Path(run_dir) / "results.jsonl")
    paths = [[StepPath(problems[row["id"]].question, tuple(c["steps"]), c.get("finished", True)) for c in row["candidates"]] for row in rows]
    if scorer is not None:
        distinct = list(dict.fromkeys(p for ps in paths for p in ps))
        scored = dict(zip(distinct, (s for k in range(0, len(distinct), 4096) for s in scorer.score(distinct[k : k + 4096]).scores)))
        step_scores = [[scored[p] for p in ps] for ps in paths]
    else:
        step_scores = [[c["scores"] for c in row["candidates"]] for row in rows]
    groups, states, picked, slips = [], [], [], []  # states: (question, steps, scores, labels, difficulty) of each distinct candidate
    for row, ps, ss in zip(rows, paths, step_scores):
        p = problems[row["id"]]
        cands = [Candidate(path, scores) for path, scores in zip(ps, ss) if scores]
        solved = [p.grade(None, c.path) for c in cands]
        groups.append(([aggregate(c.scores, aggregation) for c in cands], solved))
        if scorer is not None:
            chosen = select(cands, selection, aggregation, lambda path: answer_key(final_answer(path.steps, answer_format)))
            picked.append(chosen is not None and p.grade(None, chosen.path))
        if p.world is not None:
            for steps, scores in dict((c.path.steps, c.scores) for c in cands).items():
                states.append((p.question, steps, scores, get_world(p.world).step_labels(p.question, list(steps)), p.difficulty))
                if p.world == "countdown":
                    slips.append(({"question": p.question, "completions": list(steps)}, scores))
    auroc, both = within_problem_auroc(groups)
    report = {"within_problem_auroc": auroc, "problems_with_both": both, "problems": len(groups)}
    if picked:
        lo, hi = wilson_interval(sum(picked), len(picked))
        report["best_of_n"] = {"selection": selection, "aggregation": aggregation, "accuracy": sum(picked) / len(picked), "ci95": [lo, hi]}
    if states:
        report["steps_of_distinct_candidates"] = prm_metrics([s[2] for s in states], [s[3] for s in states])
        report["step_accuracy_by_left"] = accuracy_by_left(states)
    if slips:
        report["slips_passed"] = slips_passed([r for r, _ in slips], [s for _, s in slips], threshold=0.5)
    return report


def slips_passed(rows: list[dict], scores: list[list[float]], threshold: float) -> dict[str, dict]:
    """Countdown: of each path's first illegal step (the slip), the share a PRM passes (scores at
    least threshold), by what makes it illegal (countdown.slip_kind), by the numbers the path
    had before it, and by both. Paths that share the steps up to their slip count once (a step's score
    depends only on the steps up to it)."""
    from problems import countdown

    tally: dict[str, list[int]] = {}
    seen: set[tuple] = set()
    for row, s in zip(rows, scores, strict=True):
        states = [countdown.parse_question(row["question"])[1], *countdown.states_after(row["question"], row["completions"])]
        k = next((i for i, st in enumerate(states[1:]) if st is None), None)
        if k is None or (key := (row["question"], tuple(row["completions"][: k + 1]))) in seen:
            continue
        seen.add(key)
        kind, before = countdown.slip_kind(states[k], row["completions"][k]), f"{len(states[k])} numbers before"
        for group in (kind, before, f"{before}, {kind}"):
            counts = tally.setdefault(group, [0, 0])
            counts[0] += s[k] >= threshold
            counts[1] += 1
    return {key: {"passed": passed / total, "slips": total} for key, (passed, total) in sorted(tally.items())}


def main(argv: list[str] | None = None) -> None:
    from engine import HFPRM, StepFormat, StepPath
    from engine.models import DEFAULT_PRM, ModelDirError
    from problems import countdown
    from problems.datasets import DatasetError
    from problems.step_data import load_step_labels, parse_row
    from recipes import RecipeError, load_recipe
    from strategies import SELECTIONS, SearchConfig

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prm", default=None, help="PRM model directory (default: the recipe's, else models/prm)")
    parser.add_argument("--recipe", default=None, help="score with a recipe's PRM (its format and kind, served by vLLM)")
    parser.add_argument("--value", default=None, help="with --recipe on countdown: the value model that caps the PRM (default: the recipe's), or 'none': the PRM alone")
    parser.add_argument("--legality", default=None, help="with --recipe on countdown: a legality model that caps the PRM (default: the recipe's), or 'none'")
    parser.add_argument("--data", default=None, help="step-labelled paths: a file in any layout problems.step_data reads, or 'champ'")
    parser.add_argument("--run", default=None, help="instead: an evals.run directory; report the within-problem AUROC of its final candidates")
    parser.add_argument("--dataset", default=None, help="with --run: the dataset it ran on (grades each candidate)")
    parser.add_argument("--aggregation", default=None, help="with --run: how step scores make a candidate's score (default: the recipe's, else last)")
    parser.add_argument("--selection", default=None, choices=SELECTIONS, help="with --rescore: best_of_n's selection (default: the recipe's, else evals.run's)")
    parser.add_argument("--rescore", action="store_true", help="with --run: score its candidates again with --recipe's PRM (or --prm), "
                        "and report the accuracy best_of_n gets by those scores (for a run the PRM did not steer: best_of_n, majority)")
    parser.add_argument("--siblings", type=int, default=None, help="instead of --data: sibling sets (countdown.sibling_paths, 8 a state, seed 0) of the first N countdown dev problems; report sibling_metrics")
    parser.add_argument("--slips", type=int, default=None, help="instead of --data: corrupted walks (countdown.corrupted_paths, 4 a problem) and division pairs "
                        "(countdown.inexact_division_paths, 2 a problem) of the first N countdown dev problems, seed 0; report slips_passed")
    parser.add_argument("--limit", type=int, default=None, help="first N paths only")
    parser.add_argument("--threshold", type=float, default=0.5, help="a step is judged wrong below this P(correct)")
    parser.add_argument("--sep", default=StepFormat.sep)
    parser.add_argument("--positive", default=StepFormat.positive)
    parser.add_argument("--negative", default=StepFormat.negative)
    parser.add_argument("--prompt-template", default=StepFormat.prompt_template)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)

    def make_scorer(recipe):
        """The recipe's PRM (served by vLLM), else the token PRM directory read by the transformers reference scorer."""
        if recipe:
            return recipe.prm(model=args.prm, value=args.value, legality=args.legality)
        fmt = StepFormat(sep=args.sep, positive=args.positive, negative=args.negative, prompt_template=args.prompt_template)
        return HFPRM(args.prm or DEFAULT_PRM, fmt, device=args.device)

    if args.run:
        if not args.dataset:
            parser.error("--run needs --dataset")
        scorer = None
        try:
            recipe = load_recipe(args.recipe) if args.recipe else None
        except RecipeError as e:
            sys.exit(f"error: {e}")
        if args.rescore:
            strategy = json.loads((Path(args.run) / "summary.json").read_text()).get("strategy") if (Path(args.run) / "summary.json").is_file() else None
            if strategy not in STEERED_BY_NOTHING:
                sys.exit(f"error: --rescore needs a run whose candidates no PRM steered ({', '.join(STEERED_BY_NOTHING)}); {args.run} is {strategy!r}")
            try:
                scorer = make_scorer(recipe)
            except (ModelDirError, RecipeError) as e:
                sys.exit(f"error: {e}")
        search = recipe.search if recipe else {}
        aggregation = args.aggregation or search.get("aggregation", "last")
        selection = args.selection or search.get("selection", SearchConfig.selection)
        answer_format = (recipe.policy_spec.format if recipe else StepFormat()).answer_format
        print(json.dumps(run_auroc(args.run, args.dataset, aggregation, scorer, selection, answer_format), indent=2))
        return
    if not (args.data or args.siblings or args.slips):
        parser.error("one of --data, --run, --siblings or --slips is required")
    try:
        if args.siblings or args.slips:
            dev = countdown.load_split("dev")[: args.siblings or args.slips]
            world_rows = (countdown.sibling_paths(dev, per_state=8, seed=0) if args.siblings
                          else countdown.corrupted_paths(dev, 4, seed=0) + countdown.inexact_division_paths(dev, 2, seed=0))
            rows = [parse_row(row, f"path {k}") for k, row in enumerate(world_rows)]
        else:
            rows = load_step_labels(args.data)[: args.limit]
        scorer = make_scorer(load_recipe(args.recipe) if args.recipe else None)
    except (DatasetError, ModelDirError, RecipeError) as e:
        sys.exit(f"error: {e}")
    paths = [StepPath(r.question, tuple(r.steps)) for r in rows]
    fits = [len(scorer.encoder.path_ids(p.question, p.steps)[0]) <= scorer.max_len for p in paths]
    if not all(fits):
        print(f"skipping {fits.count(False)} of {len(paths)} paths longer than the PRM's {scorer.max_len} tokens", file=sys.stderr)
    kept = [r for r, ok in zip(rows, fits) if ok]
    scores = scorer.score([p for p, ok in zip(paths, fits) if ok]).scores
    report = {**prm_metrics(scores, [r.labels for r in kept], args.threshold), "skipped_too_long": fits.count(False)}
    kept_rows = [row for row, ok in zip(world_rows, fits) if ok] if (args.siblings or args.slips) else []
    if args.siblings:
        report["siblings_by_left"] = sibling_metrics(kept_rows, scores, lambda q: len(countdown.parse_question(q)[1]))
    if args.slips:
        report["slips_passed"] = slips_passed(kept_rows, scores, args.threshold)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
