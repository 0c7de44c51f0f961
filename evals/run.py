"""Run a search strategy over a dataset and grade it.

    python -m evals.run --strategy greedy_retry                  # shipped models, arith test split
    python -m evals.run --strategy beam --n 16 --beam-width 4 --limit 100 --output runs/beam16
    python -m evals.run --compare --strategies majority,best_of_n,beam --budgets 4,16,64 --output runs/cmp
    python -m evals.run --strategy beam --shard 0/4 --output runs/beam-0   # machine 0 of 4; then python -m evals.merge
    python -m evals.run --recipe recipes/smollm2-shepherd.yaml --dataset data/gsm8k.jsonl --strategy beam

Each finished problem is appended to <output>/results.jsonl at once (answer, correct, path,
scores, cost); rerunning with the same --output skips the problems already there, so a
kill loses at most the batch in flight. The run ends with a summary table (accuracy with a
95% interval, tokens, PRM tokens computed, calls, time), also written to summary.md/.json.
--compare runs every strategy at every budget n into <output>/<strategy>-n<N>/ (greedy and
greedy_retry once) and writes compare.md and compare.png (accuracy vs generated tokens per
problem) over every run in <output>, so several invocations add up.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import strategies
from engine.encoding import UnknownCharactersError
from engine.models import DEFAULT_POLICY, DEFAULT_PRM, REPO_ROOT, ModelDirError
from engine.served import ServedEngineError
from problems.datasets import DatasetError, Problem, load_problems
from problems.metrics import wilson_interval
from problems.worlds import get_world
from recipes import RecipeError, load_recipe

DEFAULT_RECIPE = REPO_ROOT / "recipes" / "arith.yaml"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    d = strategies.SearchConfig()  # the defaults of the search flags below
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--strategy", default="greedy_retry", help=f"one of: {', '.join(sorted(strategies.STRATEGIES))}")
    # search knobs: left off, each takes the recipe's search value, else strategies.SearchConfig's default (fill_search_flags)
    parser.add_argument("--n", type=int, default=None, help=f"the budget: samples per problem at each sampling point, n whole paths "
                        f"(best_of_n, majority) or n next steps a round (beam, dvts); mcts: 2n expansions; dfs: n expansions (strategies.base); default {d.n}")
    parser.add_argument("--beam-width", type=int, default=None, help=f"M (at most n): beam keeps n/M paths; dvts runs n/M subtrees; default {d.beam_width}")
    parser.add_argument("--temperature", type=float, default=None, help=f"default {d.temperature}")
    parser.add_argument("--aggregation", default=None, choices=sorted(strategies.AGGREGATIONS), help=f"PRM step-score aggregation; default {d.aggregation}")
    parser.add_argument("--selection", default=None, choices=strategies.SELECTIONS, help=f"best_of_n/beam/dvts answer selection; default {d.selection}")
    parser.add_argument("--threshold", type=float, default=None, help=f"greedy_retry acceptance threshold; default {d.threshold}")
    parser.add_argument("--dfs-prune", type=float, default=None, help=f"dfs: a path whose last step scores below this is pruned; default {d.dfs_prune}")
    parser.add_argument("--dfs-accept", type=float, default=None, help=f"dfs: a finished path whose last step scores at least this ends the search; default {d.dfs_accept}")
    parser.add_argument("--dfs-width", type=int, default=None, help="dfs: next steps proposed per expansion (at most n); default: --beam-width")
    parser.add_argument("--mcts-iterations", type=int, default=None, help="mcts expansions per problem; default 2n")
    parser.add_argument("--seed", type=int, default=None, help=f"seeds the search (each problem's requests, see strategies.base) and the vLLM engine; default {d.seed}")
    parser.add_argument("--recipe", default=None, help="a recipes/*.yaml setup: models, step formats, engine and search settings (default: the embedded world)")
    parser.add_argument("--policy", default=None, help=f"policy model directory (default: the recipe's, else {DEFAULT_POLICY.relative_to(DEFAULT_POLICY.parents[1])})")
    parser.add_argument("--prm", default=None, help=f"PRM model directory (default: the recipe's, else {DEFAULT_PRM.relative_to(DEFAULT_PRM.parents[1])}), or 'oracle': an embedded world's exact process labels")
    parser.add_argument("--value", default=None, help="countdown: a value model (state tables, problems.countdown_value) that caps the PRM's scores (default: the recipe's), or 'none': the PRM alone")
    parser.add_argument("--legality", default=None, help="countdown: a legality model (problems.countdown_legality; problems.countdown_value.LegalityCappedPRM) "
                        "that caps the PRM's scores (default: the recipe's), or 'none': without it")
    parser.add_argument("--policy-url", default=None, help="a running `vllm serve` of the policy (http://host:port) instead of an engine in this process")
    parser.add_argument("--prm-url", default=None, help="a running `vllm serve --logprobs-mode processed_logprobs` of the token PRM")
    parser.add_argument("--prm-backend", default="vllm", choices=["vllm", "hf"], help="PRM scorer")
    parser.add_argument("--tensor-parallel-size", type=int, default=1, help="vLLM: GPUs per engine")
    parser.add_argument("--data-parallel-size", type=int, default=1, help="vLLM: engine replicas (GPU)")
    parser.add_argument("--dataset", default=None, help="default: the recipe's, else arith-test. "
                        "arith-train, arith-dev, arith-test, or a .jsonl/.parquet/.csv/.json file (or saved datasets directory) of {question, answer}")
    parser.add_argument("--limit", type=int, default=None, help="first N problems only")
    parser.add_argument("--shard", default=None, help="i/k: run only problems i, i+k, i+2k, ... (k machines split a dataset; combine with python -m evals.merge)")
    parser.add_argument("--batch-size", type=int, default=64, help="problems searched together (and at risk if killed)")
    parser.add_argument("--output", default=None, help="output directory (default runs/<dataset>-<strategy>-n<N>)")
    parser.add_argument("--compare", action="store_true", help="run --strategies x --budgets and plot accuracy vs budget")
    parser.add_argument("--strategies", default="majority,best_of_n,beam,dvts,dfs,greedy_retry,mcts", help="with --compare")
    parser.add_argument("--budgets", default="4,16", help="with --compare: values of --n")
    args = parser.parse_args(argv)
    if args.shard is not None:
        try:
            parse_shard(args.shard)
        except ValueError as e:
            parser.error(str(e))
    names = args.strategies.split(",") if args.compare else [args.strategy]
    for name in names:
        if name not in strategies.STRATEGIES:
            parser.error(f"unknown strategy {name!r}; choose from {', '.join(sorted(strategies.STRATEGIES))}")
    return args


def parse_shard(spec: str) -> tuple[int, int]:
    """'i/k' -> (i, k) with 0 <= i < k."""
    try:
        i, k = (int(x) for x in spec.split("/"))
    except ValueError:
        raise ValueError(f"--shard must look like 0/4, got {spec!r}") from None
    if not 0 <= i < k:
        raise ValueError(f"--shard i/k needs 0 <= i < k, got {spec!r}")
    return i, k


def shard(problems: list, spec: str | None) -> list:
    """Shard i of k: every k-th problem from the i-th, so each shard gets every difficulty."""
    if spec is None:
        return problems
    i, k = parse_shard(spec)
    return problems[i::k]


SEARCH_FLAGS = ("n", "beam_width", "temperature", "aggregation", "selection", "threshold", "dfs_prune", "dfs_accept", "dfs_width", "mcts_iterations", "seed")


def fill_search_flags(args: argparse.Namespace, recipe=None) -> None:
    """Each search flag left off the command line takes the recipe's search value, else
    strategies.SearchConfig's default: the command line overrides the recipe, never the reverse."""
    search, defaults = (recipe.search if recipe else {}), strategies.SearchConfig()
    for name in SEARCH_FLAGS:
        if getattr(args, name) is None:
            setattr(args, name, search.get(name, getattr(defaults, name)))


def search_config(args: argparse.Namespace, n: int, recipe=None):
    """The SearchConfig of one run at budget n: SearchConfig's defaults, then the recipe's
    search settings, then the flags the user passed (fill_search_flags)."""
    fill_search_flags(args, recipe)
    flags = {name: getattr(args, name) for name in SEARCH_FLAGS}
    return strategies.SearchConfig(**{**(recipe.search if recipe else {}), **flags, "n": n})


def budget_of(name: str, n: int) -> int:
    """The n a run records: 1 for a strategy that does not use the budget (greedy, greedy_retry)."""
    return n if strategies.get_strategy(name).uses_budget else 1


def read_results(path: Path) -> list[dict]:
    """Finished problems; a line cut short by a kill is ignored (that problem runs again)."""
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def run_one(problems: list[Problem], strategy_name: str, config, policy, prm, out_dir: Path, batch_size: int) -> list[dict]:
    """Search every problem not yet in out_dir/results.jsonl, appending as batches finish."""
    from tqdm import tqdm

    out_dir.mkdir(parents=True, exist_ok=True)
    results_path = out_dir / "results.jsonl"
    finished = read_results(results_path)
    if results_path.is_file():  # drop a line cut short by a kill, so appends start on a fresh line
        tmp = results_path.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(row) + "\n" for row in finished))
        tmp.replace(results_path)
    done = {row["id"] for row in finished}
    todo = [p for p in problems if p.id not in done]
    strategy = strategies.get_strategy(strategy_name)
    with tqdm(total=len(problems), initial=len(problems) - len(todo), desc=f"{strategy_name} n={config.n}", unit="problem") as bar:
        for start in range(0, len(todo), batch_size):
            batch = todo[start : start + batch_size]
            t0 = time.perf_counter()
            results = strategy.search(batch, policy, prm if strategy.needs_prm else None, config)
            seconds = (time.perf_counter() - t0) / len(batch)
            with results_path.open("a") as f:
                for problem, result in zip(batch, results):
                    row = {**result.as_dict(), "reference": problem.answer, "correct": problem.grade(result.answer, result.path),
                           "difficulty": problem.difficulty, "difficulty_unit": difficulty_unit(problem),
                           "strategy": strategy_name, "n": config.n, "seconds": seconds}
                    f.write(json.dumps(row) + "\n")
                f.flush()
                os.fsync(f.fileno())
            bar.update(len(batch))
    wanted = {p.id for p in problems}
    return [row for row in read_results(results_path) if row["id"] in wanted]


def summarize(rows: list[dict]) -> dict:
    correct, total = sum(r["correct"] for r in rows), len(rows)
    lo, hi = wilson_interval(correct, total)
    cost = lambda key: sum(r["cost"][key] for r in rows)  # noqa: E731
    seconds = sum(r["seconds"] for r in rows)
    return {
        "strategy": rows[0]["strategy"] if rows else "",
        "n": rows[0]["n"] if rows else 0,
        "problems": total,
        "accuracy": correct / total if total else 0.0,
        "ci95": [lo, hi],
        "generated_tokens_per_problem": cost("generated_tokens") / max(total, 1),
        "prm_tokens_computed_per_problem": cost("prm_tokens_computed") / max(total, 1),
        "policy_calls": cost("policy_calls"),
        "prm_calls": cost("prm_calls"),
        "seconds": seconds,
        "generated_tokens_per_second": cost("generated_tokens") / seconds if seconds else 0.0,
        "accuracy_by_difficulty": by_difficulty(rows),
        "generated_tokens_by_difficulty": by_difficulty(rows, lambda r: r["cost"]["generated_tokens"]),
        "problems_by_difficulty": by_difficulty(rows, lambda r: 1, mean=False),
        "difficulty_unit": next((r["difficulty_unit"] for r in rows if r.get("difficulty_unit")), "operands"),
    }


def difficulty_unit(problem) -> str | None:
    return get_world(problem.world).DIFFICULTY if getattr(problem, "world", None) else None


def row_difficulty(row: dict):
    return row.get("difficulty", row.get("n_operands"))  # n_operands: rows written before the worlds had one name for it


def by_difficulty(rows: list[dict], value=lambda r: r["correct"], mean: bool = True) -> dict[str, float]:
    """The mean (or sum) of value(row) per difficulty where the dataset has one: accuracy by default."""
    groups: dict[str, list[float]] = {}
    for r in rows:
        if row_difficulty(r) is not None:
            groups.setdefault(str(row_difficulty(r)), []).append(value(r))
    return {k: sum(v) / len(v) if mean else sum(v) for k, v in sorted(groups.items(), key=lambda kv: int(kv[0]))}


def difficulty_table(summaries: list[dict]) -> str:
    """Accuracy per difficulty (arith: operands, countdown: numbers), one row per run ('' if none)."""
    keys = list(dict.fromkeys(k for s in summaries for k in s.get("accuracy_by_difficulty", {})))
    if not keys:
        return ""
    unit = summaries[0].get("difficulty_unit", "operands")
    lines = ["| strategy | n | " + " | ".join(f"{k} {unit}" for k in keys) + " |", "|---|---|" + "---|" * len(keys)]
    for s in summaries:
        acc = s.get("accuracy_by_difficulty", {})
        lines.append(f"| {s['strategy']} | {s['n']} | " + " | ".join(f"{acc[k]:.0%}" if k in acc else "" for k in keys) + " |")
    return "\n".join(lines)


def report_tables(summaries: list[dict]) -> str:
    """The summary table, then accuracy by difficulty where the dataset has one."""
    by_difficulty = difficulty_table(summaries)
    return markdown_table(summaries) + (f"\n\nAccuracy by difficulty:\n\n{by_difficulty}" if by_difficulty else "")


def markdown_table(summaries: list[dict]) -> str:
    lines = [
        "| strategy | n | problems | accuracy | 95% CI | gen tokens/problem | PRM tokens computed/problem | policy calls | PRM calls | wall s | gen tokens/s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in summaries:
        lines.append(
            f"| {s['strategy']} | {s['n']} | {s['problems']} | {s['accuracy']:.1%} | {s['ci95'][0]:.1%}–{s['ci95'][1]:.1%} "
            f"| {s['generated_tokens_per_problem']:.0f} | {s['prm_tokens_computed_per_problem']:.0f} | {s['policy_calls']:.0f} "
            f"| {s['prm_calls']:.0f} | {s['seconds']:.1f} | {s['generated_tokens_per_second']:.0f} |"
        )
    return "\n".join(lines)


def plot(summaries: list[dict], path: Path, frontier: list[dict] = ()) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name in dict.fromkeys(s["strategy"] for s in summaries):
        points = sorted((s["generated_tokens_per_problem"], s["accuracy"], s["n"]) for s in summaries if s["strategy"] == name)
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=name)
        for x, y, n in points:
            ax.annotate(f"n={n}", (x, y), textcoords="offset points", xytext=(3, 3), fontsize=7)
    if frontier:
        ax.plot([f["generated_tokens_per_problem"] for f in frontier], [f["accuracy"] for f in frontier], "k--", marker="*",
                label="compute-optimal (best strategy per difficulty)")
    ax.set_xscale("log")
    ax.set_xlabel("generated tokens per problem (log)")
    ax.set_ylabel("accuracy")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def engine_config(args: argparse.Namespace, recipe):
    """The vLLM engine settings: the recipe's, then what the CLI passes through."""
    fill_search_flags(args, recipe)  # the seed: the command line's, else the recipe's, else 0
    extra = {"data_parallel_size": args.data_parallel_size} if args.data_parallel_size > 1 else {}
    return recipe.engine_config(seed=args.seed, tensor_parallel_size=args.tensor_parallel_size, extra={**recipe.engine.get("extra", {}), **extra})


def load_models(args: argparse.Namespace, recipe, need_prm: bool, problems: list[Problem] = ()):
    """The recipe's policy and PRM (the shipped models by default); --policy/--prm override the
    directories, and --prm oracle serves the embedded world's exact labels (problems.oracle)."""
    if args.prm == "oracle" and (args.value not in (None, "none") or args.legality not in (None, "none")):
        raise RecipeError("--value and --legality cap a learned PRM's scores; --prm oracle serves the exact labels, so drop one of them")
    policy = recipe.policy(engine_config(args, recipe), model=args.policy, url=args.policy_url)
    if not need_prm:
        return policy, None
    if args.prm == "oracle":
        from problems.oracle import OraclePRM

        worlds = {p.world for p in problems}
        if None in worlds or len(worlds) != 1:
            raise DatasetError("--prm oracle needs the problems of one embedded world (e.g. --dataset countdown-test)")
        return policy, OraclePRM(worlds.pop(), policy.fmt)
    return policy, recipe.prm(engine_config(args, recipe), model=args.prm, backend=args.prm_backend, url=args.prm_url, value=args.value, legality=args.legality)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        recipe = load_recipe(args.recipe or DEFAULT_RECIPE)
        fill_search_flags(args, recipe)
        args.dataset = args.dataset or recipe.dataset or "arith-test"
        problems = shard(load_problems(args.dataset)[: args.limit], args.shard)
        if args.policy is None:  # the recipe's own models: a question they cannot take is an error before any work
            recipe.check_questions(problems)
        names = args.strategies.split(",") if args.compare else [args.strategy]
        budgets = [int(b) for b in args.budgets.split(",")] if args.compare else [args.n]
        policy, prm = load_models(args, recipe, need_prm=any(strategies.get_strategy(name).needs_prm for name in names), problems=problems)
        for problem in problems:  # characters the policy's tokenizer cannot write: an error before any search
            try:
                policy.encoder.prompt_ids(problem.question)
            except UnknownCharactersError as e:
                raise DatasetError(f"{args.dataset} row {problem.id!r}: {e}") from None
    except (DatasetError, ModelDirError, RecipeError, ServedEngineError) as e:
        sys.exit(f"error: {e}")
    dataset_tag = Path(args.dataset).stem if args.dataset.endswith(".jsonl") else args.dataset
    shard_tag = f"-shard{args.shard.replace('/', 'of')}" if args.shard else ""
    out = Path(args.output or f"runs/{dataset_tag}-{'compare' if args.compare else f'{args.strategy}-n{budget_of(args.strategy, args.n)}'}{shard_tag}")

    summaries = []
    for name in names:
        for n in dict.fromkeys(budget_of(name, b) for b in budgets):  # once for a strategy that does not use n
            run_dir = out / f"{name}-n{n}" if args.compare else out
            for engine in (policy, prm):  # each run starts cold: its cost must not depend on what ran before it
                if engine is not None:
                    engine.reset_caches()
            try:
                rows = run_one(problems, name, search_config(args, n, recipe), policy, prm, run_dir, args.batch_size)
            except ServedEngineError as e:  # a server gone or timing out mid-run: what finished is on disk
                sys.exit(f"error: {e}\nthe problems finished so far are in {run_dir / 'results.jsonl'}: the same command goes on from there")
            summary = summarize(rows)
            (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
            (run_dir / "summary.md").write_text(markdown_table([summary]) + "\n")
            summaries.append(summary)
    if args.compare:  # every run in the directory so far, this invocation's and earlier ones'
        summaries = [json.loads(p.read_text()) for p in sorted(out.glob("*-n*/summary.json"))]
    table = report_tables(summaries)
    print(f"\n{args.dataset}, {len(problems)} problems\n{table}")
    if args.compare:
        from evals.compute_optimal import compute_optimal, frontier_table

        optimal = compute_optimal(summaries)
        if optimal["frontier"]:
            table += "\n\n" + frontier_table(optimal)
            print(frontier_table(optimal))
        (out / "compare.md").write_text(table + "\n")
        (out / "compare.json").write_text(json.dumps(summaries, indent=2) + "\n")
        plot(summaries, out / "compare.png", optimal["frontier"])
        print(f"\nwrote {out / 'compare.md'} and {out / 'compare.png'}")


if __name__ == "__main__":
    main()
