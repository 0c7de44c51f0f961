"""Benchmarks: speed ratios against the baselines a user would otherwise use.

    python -m evals.bench                                   # everything (~60 minutes on 2 CPU cores)
    python -m evals.bench --quick                           # every comparison at CI size (checks they run, not the ratios)
    python -m evals.bench --only sal-8x,notebook-smollm2 --output runs/bench

Three model pairs ("settings"):
  arith     the shipped, trained 3.4M-parameter policy and PRM (PRM:policy 1:1)
  8x        the same policy with `local:arith-prm-8x`, a 27M PRM built to the arith PRM's
            conventions (8:1, as users pair a 1B policy with an 8B PRM; random weights: timing only)
  smollm2   SmolLM2-135M-Instruct (real weights) with `local:shepherd-prm-135m`, a Math-Shepherd-
            style PRM of the same size (random weights), on CHAMP's competition problems
Comparisons (--only), both sides in this one process, on the same models and problems; the
reports are ratios (these machines are noisy):
  overhead           (arith) tokens/s of a full beam search (PRM time taken out) vs raw vLLM
                     `generate` replaying the very same batches;
  prefix, prefix-8x  scoring every step of a depth-8 beam search (9-operand problems) with the
                     prefix-cached scorers vs recomputing every path in full, tokens and wall time
                     (the two sides interleaved call by call, --trials times, the median reported);
  notebook           (arith) the course notebook's greedy PRM search (transformers, one token per
                     full forward pass, the PRM re-reading the whole sequence after every step, one
                     problem at a time) vs our greedy_retry, each searching for itself (equal accuracy);
  notebook-smollm2   the same loop doing exactly our greedy_retry's work: every step we proposed,
                     re-derived token by token (teacher-forced: a forward pass per token, as sampling
                     it would cost), every path we scored re-read whole, problem after problem;
  sal                (arith) a search-and-learn-style beam search (vLLM generation, a transformers
                     PRM re-scoring full paths every step) vs ours, each searching (equal accuracy);
  sal-8x, sal-smollm2  the same baseline doing exactly our beam search's work: our generate calls
                     replayed on raw vLLM, our score requests re-scored in full by a plain batched
                     transformers forward; both sides score identical sets of paths (checked);
  scaling            (countdown, trained models) beam search's tokens and wall time per problem
                     against n (up to 256) and the number of problems (up to 800).
Writes bench.md, bench.json and scaling.png to --output.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import torch

from engine import HFPRM, VLLMPRM, Cost, EngineConfig, Policy, StepPath
from engine.prm import RecordingPRM
from problems import arith
from problems.datasets import Problem, load_problems
from recipes import load_recipe
from strategies import SearchConfig, get_strategy

RECIPES = Path(__file__).resolve().parent.parent / "recipes"
COMPARISONS = ("overhead", "prefix", "prefix-8x", "notebook", "notebook-smollm2", "sal", "sal-8x", "sal-smollm2", "scaling")


def accuracy(problems, results) -> float:
    return sum(p.grade(r.answer, r.path) for p, r in zip(problems, results)) / len(problems)


def fresh(policy: Policy, *scorers) -> None:
    """Forget every cache, so each side of a comparison starts cold."""
    for engine in (policy, *scorers):
        engine.reset_caches()


class FullRecompute:
    """A PRM that recomputes every path in full every call, as search-and-learn-style loops do.

    Wraps a scorer whose caches are cleared before each call and that keeps no KV: for
    transformers `HFPRM(..., reuse_kv=False)`, for vLLM one built with prefix caching off
    (`no_cache_vllm_prm`), since vLLM would otherwise reuse the blocks of one call's shorter
    prefixes for its longer ones."""

    def __init__(self, scorer):
        self.scorer, self.fmt = scorer, scorer.fmt

    def score(self, paths):
        self.scorer.reset_caches()
        return self.scorer.score(paths)


def no_cache_vllm_prm(model_dir) -> VLLMPRM:
    return VLLMPRM(model_dir, config=EngineConfig(extra={"enable_prefix_caching": False}))


# -- 1. search overhead -------------------------------------------------------------------


def bench_overhead(problems, policy, prm, cfg, repeats: int = 3) -> dict:
    """Search vs raw replay of its generate calls, `repeats` times in turn; the median trial is reported."""
    get_strategy("beam").search(problems[:4], policy, prm, cfg)  # warm both engines up first: the timed runs are steady-state
    trials = []
    for _ in range(repeats):
        fresh(policy, prm)
        with policy.recording() as calls:
            t0 = time.perf_counter()
            results = get_strategy("beam").search(problems, policy, prm, cfg)
            wall = time.perf_counter() - t0
        prm_seconds = sum(r.cost.prm_seconds for r in results)
        tokens = sum(r.cost.generated_tokens for r in results)
        fresh(policy, prm)
        t0 = time.perf_counter()
        raw_tokens = policy.replay(calls)
        raw = time.perf_counter() - t0
        search_tps, raw_tps = tokens / (wall - prm_seconds), raw_tokens / raw
        trials.append({"generate_calls": len(calls), "search_tokens": round(tokens), "raw_tokens": raw_tokens, "search_seconds_without_prm": wall - prm_seconds,
                       "prm_seconds": prm_seconds, "raw_seconds": raw, "search_tokens_per_s": search_tps, "raw_tokens_per_s": raw_tps,
                       "ratio": search_tps / raw_tps, "target": ">= 0.9"})
    trials.sort(key=lambda t: t["ratio"])
    return {**trials[len(trials) // 2], "ratios": [t["ratio"] for t in trials]}


# -- 2. PRM prefix caching -----------------------------------------------------------------


def recorded_score_calls(problems, policy, prm, cfg) -> list[list[StepPath]]:
    recorder = RecordingPRM(prm)
    get_strategy("beam").search(problems, policy, recorder, cfg)
    return recorder.calls


def bench_prefix(problems, policy, scorers: dict, cfg, trials: int = 3) -> dict:
    """scorers: name -> (prefix-cached scorer, the same model keeping no KV). The two sides run
    the recorded requests interleaved call by call (`paired_rescore`), `trials` times; the trial
    with the median wall ratio is reported, with every trial's share of the token ratio."""
    calls = recorded_score_calls(problems, policy, scorers["vllm"][0], cfg)
    report = {"score_calls": len(calls), "max_depth": max(len(p.steps) for c in calls for p in c), "trials": trials}
    for name, (scorer, uncached) in scorers.items():
        runs = []
        for _ in range(trials):
            cached, full = paired_rescore(calls, scorer, uncached)
            theory = full["tokens_computed"] / max(cached["tokens_computed"], 1)
            gain = full["seconds"] / cached["seconds"]
            runs.append({"cached": cached, "full": full, "token_ratio": theory, "wall_ratio": gain,
                         "share": (gain - 1) / (theory - 1) if theory > 1 else None})
        median = sorted(runs, key=lambda r: r["wall_ratio"])[len(runs) // 2]
        report[f"{name}_cached"], report[f"{name}_full"] = median["cached"], median["full"]
        report[f"{name}_token_ratio"], report[f"{name}_wall_ratio"] = median["token_ratio"], median["wall_ratio"]
        report[f"{name}_wall_gain_share_of_theory"] = median["share"]
        report[f"{name}_trial_shares"] = [r["share"] for r in runs]
    report["target"] = "wall-time gain >= 70% of the theoretical token ratio"
    return report


# -- 3. the classic notebook greedy PRM search ----------------------------------------------


@torch.no_grad()
def notebook_search(problem, model, prm_model, encoder, prm_encoder, threshold: float, max_retries: int, max_steps: int, max_step_tokens: int,
                    temperature: float) -> str | None:
    """The course notebook's loop, faithfully naive: one problem, one token per full forward pass,
    and after each step the PRM re-reads the whole sequence."""
    steps: list[str] = []
    for _ in range(max_steps):
        for attempt in range(max_retries + 1):
            ids, _ = encoder.path_ids(problem.question, steps)
            new: list[int] = []
            while len(new) < max_step_tokens:
                logits = model(torch.tensor([ids + new], device=model.device)).logits[0, -1]  # no KV cache
                token = torch.multinomial(torch.softmax(logits / temperature, -1), 1).item()
                new.append(token)
                if token in (encoder.sep_id, encoder.eos_id):
                    break
            if new and new[-1] == encoder.eos_id:
                return steps[-1] if steps else None
            step = encoder.decode([t for t in new if t != encoder.sep_id])
            full, seps = prm_encoder.path_ids(problem.question, steps + [step])
            logits = prm_model(torch.tensor([full], device=prm_model.device)).logits[0, seps[-1]]  # the PRM re-reads everything
            p = torch.softmax(logits[[prm_encoder.positive_id, prm_encoder.negative_id]], -1)[0].item()
            if p >= threshold or attempt == max_retries:
                steps.append(step)
                break
    return steps[-1] if steps else None


def bench_notebook(problems, policy, prm, hf_prm, cfg) -> dict:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(policy.model_dir)).to(hf_prm.device).eval()
    torch.manual_seed(0)
    t0 = time.perf_counter()
    answers = [notebook_search(p, model, hf_prm.model, policy.encoder, hf_prm.encoder, cfg.threshold, cfg.max_retries_per_step, cfg.max_steps,
                               cfg.max_step_tokens, cfg.temperature) for p in problems]
    notebook = time.perf_counter() - t0
    fresh(policy, prm)
    t0 = time.perf_counter()
    results = get_strategy("greedy_retry").search(problems, policy, prm, cfg)
    ours = time.perf_counter() - t0
    return {"problems": len(problems), "notebook_seconds": notebook, "ours_seconds": ours, "speedup": notebook / ours,
            "notebook_accuracy": sum(p.grade(a) for p, a in zip(problems, answers)) / len(problems),
            "ours_accuracy": accuracy(problems, results), "target": "none at 1:1 (>= 20x is at the SmolLM2 size)"}


# -- 4. a search-and-learn-style loop ---------------------------------------------------------


def bench_sal(problems, policy, prm, hf_prm, sal_prm, cfg) -> dict:
    report = {}
    for name, scorer in (("sal_full_hf", FullRecompute(sal_prm)), ("ours_vllm", prm), ("ours_hf", hf_prm)):
        fresh(policy, prm, hf_prm)
        t0 = time.perf_counter()
        results = get_strategy("beam").search(problems, policy, scorer, cfg)
        report[name] = {"seconds": time.perf_counter() - t0, "accuracy": accuracy(problems, results)}
    report["speedup_vllm"] = report["sal_full_hf"]["seconds"] / report["ours_vllm"]["seconds"]
    report["speedup_hf"] = report["sal_full_hf"]["seconds"] / report["ours_hf"]["seconds"]
    report["target"] = "none at 1:1 (>= 4x is at 8:1)"
    return report


# -- 5. equal work by construction: the baselines replay exactly what our search did ----------


def timed_search(strategy: str, problems, policy, prm, cfg) -> dict:
    """Our search, timed whole, recording its generate calls and score requests; where its time went."""
    get_strategy(strategy).search(problems[:2], policy, prm, cfg)  # warm both engines up: the timed run is steady-state
    fresh(policy, prm)
    recorder = RecordingPRM(prm)
    with policy.recording() as calls:
        t0 = time.perf_counter()
        results = get_strategy(strategy).search(problems, policy, recorder, cfg)
        wall = time.perf_counter() - t0
    policy_s, prm_s = sum(r.cost.policy_seconds for r in results), sum(r.cost.prm_seconds for r in results)
    return {"results": results, "generate_calls": calls, "score_calls": recorder.calls, "seconds": wall,
            "breakdown": {"policy": policy_s, "prm": prm_s, "bookkeeping": wall - policy_s - prm_s},
            "generated_tokens": round(sum(r.cost.generated_tokens for r in results)),
            "prm_tokens_requested": round(sum(r.cost.prm_tokens_requested for r in results)),
            "prm_tokens_computed": round(sum(r.cost.prm_tokens_computed for r in results))}


def rescore(score_calls: list[list[StepPath]], scorer, full: bool) -> dict:
    """Send the recorded score requests to `scorer` in order (full: forgetting everything before
    each), timed in steady state: a cached scorer runs the whole sequence once first (in a long
    run its KV memory is mapped once, then reused), a full one its first two calls."""
    return rescore_interleaved(score_calls, [(scorer, full)])[0]


def paired_rescore(score_calls: list[list[StepPath]], cached, full) -> tuple[dict, dict]:
    """`rescore` of a cached scorer and a full one at once, alternating call by call, so that this
    shared machine's slow spells fall on both sides alike rather than on whichever ran during them."""
    return tuple(rescore_interleaved(score_calls, [(cached, False), (full, True)]))


def rescore_interleaved(score_calls: list[list[StepPath]], sides: list[tuple]) -> list[dict]:
    """`rescore` for each (scorer, full) side, each warmed up first, then timed call by call in turn."""
    def send(scorer, full: bool, call) -> Cost:
        if full:
            scorer.reset_caches()
        return scorer.score(call).cost

    for scorer, full in sides:
        scorer.reset_caches()
        for call in score_calls[:2] if full else score_calls:
            send(scorer, full, call)
        scorer.reset_caches()
    totals = [{"seconds": 0.0, "score_calls": len(score_calls), "paths": 0, "tokens_requested": 0, "tokens_computed": 0} for _ in sides]
    for call in score_calls:
        for (scorer, full), total in zip(sides, totals):
            t0 = time.perf_counter()
            cost = send(scorer, full, call)
            total["seconds"] += time.perf_counter() - t0
            total["paths"] += len(call)
            total["tokens_requested"] += cost.prm_tokens_requested
            total["tokens_computed"] += cost.prm_tokens_computed
    return totals


def bench_sal_replay(problems, policy, prm, sal_prm: HFPRM, cfg, cached_hf: HFPRM | None = None, target: str = ">= 4x, identical work") -> dict:
    """Our beam search vs a search-and-learn-style loop doing identical work: our generate calls
    replayed on raw vLLM, then our score requests re-scored in full by `sal_prm` (transformers,
    reuse_kv=False: every path whole, batched). With `cached_hf`, the same requests through our
    prefix-cached transformers scorer too."""
    ours = timed_search("beam", problems, policy, prm, cfg)
    fresh(policy, prm)
    t0 = time.perf_counter()
    policy.replay(ours["generate_calls"])
    generation = time.perf_counter() - t0
    scoring = rescore(ours["score_calls"], sal_prm, full=True)
    assert scoring["tokens_requested"] == ours["prm_tokens_requested"]  # the baseline scored exactly our paths
    report = {"problems": len(problems), "ours_seconds": ours["seconds"], "ours_breakdown": ours["breakdown"],
              "ours_accuracy": accuracy(problems, ours["results"]), "generated_tokens": ours["generated_tokens"],
              "ours_prm_tokens_computed": ours["prm_tokens_computed"],
              "sal_seconds": generation + scoring["seconds"], "sal_breakdown": {"policy": generation, "prm": scoring["seconds"]},
              "sal_scoring": scoring, "speedup": (generation + scoring["seconds"]) / ours["seconds"], "target": target}
    if cached_hf is not None:
        report["hf_cached_scoring"] = rescore(ours["score_calls"], cached_hf, full=False)
    return report


@torch.no_grad()
def notebook_replay(score_calls, policy_model, policy_encoder, prm: HFPRM) -> dict:
    """The notebook's loop doing our greedy_retry's work, problem after problem: each scored path's
    last step re-derived token by token (one full forward pass per token, no KV cache, as
    sampling it costs), then the PRM re-reading the whole path."""
    by_problem: dict[str, list[StepPath]] = {}
    for call in score_calls:
        for path in call:
            by_problem.setdefault(path.question, []).append(path)
    device = policy_model.device
    forwards = policy_tokens = 0
    t0 = time.perf_counter()
    for paths in by_problem.values():
        for path in paths:
            before, _ = policy_encoder.path_ids(path.question, path.steps[:-1])
            ids, _ = policy_encoder.path_ids(path.question, path.steps)
            assert ids[: len(before)] == before, "the path's encoding must extend its parent's"
            for t in range(len(before), len(ids)):  # the token at t is sampled from a forward over ids[:t]
                policy_model(torch.tensor([ids[:t]], device=device)).logits[0, -1]
                forwards += 1
                policy_tokens += t
            prm_ids, _ = prm.encoder.path_ids(path.question, path.steps)
            prm.model(torch.tensor([prm_ids], device=device))  # the PRM re-reads everything
    return {"seconds": time.perf_counter() - t0, "problems": len(by_problem), "policy_forwards": forwards, "policy_tokens_run": policy_tokens,
            "paths_scored": sum(len(p) for p in by_problem.values())}


def bench_notebook_replay(problems, policy, prm, hf_prm: HFPRM, cfg) -> dict:
    from transformers import AutoModelForCausalLM

    ours = timed_search("greedy_retry", problems, policy, prm, cfg)
    model = AutoModelForCausalLM.from_pretrained(str(policy.model_dir), dtype=torch.float32).to(hf_prm.device).eval()
    notebook = notebook_replay(ours["score_calls"], model, policy.encoder, hf_prm)
    return {"problems": len(problems), "ours_seconds": ours["seconds"], "ours_breakdown": ours["breakdown"], "generated_tokens": ours["generated_tokens"],
            "score_calls": len(ours["score_calls"]), "notebook": notebook, "speedup": notebook["seconds"] / ours["seconds"],
            "target": ">= 20x, identical work"}


# -- 6. scaling ------------------------------------------------------------------------------


def bench_scaling(problems, policy, prm, cfg, ns, counts) -> dict:
    """Beam search at each n in `ns` on the first counts[0] problems, then at n = cfg.n on each count."""
    rows = []
    for n, count in dict.fromkeys([(n, counts[0]) for n in ns] + [(cfg.n, c) for c in counts]):
        fresh(policy, prm)
        subset = problems[:count]
        t0 = time.perf_counter()
        results = get_strategy("beam").search(subset, policy, prm, replace(cfg, n=n, beam_width=min(cfg.beam_width, n)))
        seconds = time.perf_counter() - t0
        tokens, prm_tokens = sum(r.cost.generated_tokens for r in results), sum(r.cost.prm_tokens_computed for r in results)
        rows.append({"n": n, "problems": len(subset), "seconds": seconds, "seconds_per_problem": seconds / len(subset),
                     "generated_tokens": round(tokens), "tokens_per_problem": tokens / len(subset), "prm_tokens_computed": round(prm_tokens),
                     "prm_tokens_per_problem": prm_tokens / len(subset), "accuracy": accuracy(subset, results)})
    return {"rows": rows}


def plot_scaling(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, fixed, base in ((axes[0], "n", "problems", rows[0]["problems"]), (axes[1], "problems", "n", rows[-1]["n"])):
        pts = sorted((r[key], r["seconds_per_problem"], r["tokens_per_problem"]) for r in rows if r[fixed] == base)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label="wall s / problem")
        ax2 = ax.twinx()
        ax2.plot([p[0] for p in pts], [p[2] for p in pts], marker="s", color="tab:orange", label="generated tokens / problem")
        ax.set_xscale("log", base=2)
        ax.set_xlabel(f"{key} ({fixed}={base})")
        ax.set_ylabel("wall seconds per problem")
        ax2.set_ylabel("generated tokens per problem")
    fig.suptitle("countdown beam search")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


# -- the settings -----------------------------------------------------------------------------


class Settings:
    """The model pairs, each built the first time a comparison asks for it and kept for the
    process (tearing down an in-process vLLM engine breaks the others)."""

    def __init__(self, device: str):
        self.device, self.built = device, {}

    def get(self, name: str):
        if name not in self.built:
            self.built[name] = getattr(self, name.replace("-", "_"))()
        return self.built[name]

    def arith(self):
        recipe = load_recipe(RECIPES / "arith.yaml")
        path, fmt = recipe.prm_spec.path(), recipe.prm_spec.format
        return (recipe, recipe.policy(), recipe.prm(), HFPRM(path, fmt, device=self.device),
                HFPRM(path, fmt, device=self.device, reuse_kv=False))

    def arith_no_cache_vllm_prm(self):
        return no_cache_vllm_prm(load_recipe(RECIPES / "arith.yaml").prm_spec.path())

    def eight_x(self, model: str = "local:arith-prm-8x"):
        recipe, policy, _, _, _ = self.get("arith")
        spec = replace(recipe.prm_spec, model=model)
        path = spec.path()
        return (policy, VLLMPRM(path, spec.format, recipe.engine_config()), HFPRM(path, spec.format, device=self.device),
                HFPRM(path, spec.format, device=self.device, reuse_kv=False))

    def eight_x_no_cache_vllm_prm(self):
        return no_cache_vllm_prm(replace(load_recipe(RECIPES / "arith.yaml").prm_spec, model="local:arith-prm-8x").path())

    def smollm2(self):
        recipe = load_recipe(RECIPES / "smollm2-shepherd.yaml")
        spec = replace(recipe.prm_spec, model="local:shepherd-prm-135m")
        return (recipe, recipe.policy(), VLLMPRM(spec.path(), spec.format, recipe.engine_config()),
                HFPRM(spec.path(), spec.format, device=self.device, reuse_kv=False))

    def countdown(self):
        recipe = load_recipe(RECIPES / "countdown.yaml")
        return recipe, recipe.policy(), recipe.prm()


def spread(problems: list, count: int) -> list:
    """`count` problems spread over the list (every difficulty, not just the first)."""
    return problems[:: max(1, len(problems) // count)][:count]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(COMPARISONS), help=f"comma-separated subset of {', '.join(COMPARISONS)}")
    parser.add_argument("--quick", action="store_true", help="every comparison at CI size (a few problems, small n): checks it runs, not the ratios")
    parser.add_argument("--problems", type=int, default=48, help="arith problems per comparison (spread over the test split)")
    parser.add_argument("--notebook-problems", type=int, default=48, help="arith problems for the notebook comparison (it runs them one at a time)")
    parser.add_argument("--smollm2-problems", type=int, default=16, help="CHAMP problems for the SmolLM2 comparisons")
    parser.add_argument("--smollm2-notebook-problems", type=int, default=16, help="of those, how many the notebook's greedy search does (about a minute each on 2 CPU cores)")
    parser.add_argument("--prefix-operands", type=int, default=9, help="prefix and 8x comparisons: fresh problems of this many operands (9: depth-8 paths)")
    parser.add_argument("--trials", type=int, default=3, help="prefix comparisons: interleaved trials per side (the median is reported)")
    parser.add_argument("--n", type=int, default=16)
    parser.add_argument("--beam-width", type=int, default=4)
    parser.add_argument("--scaling-n", default="4,16,64,256")
    parser.add_argument("--scaling-problems", default="64,256,800", help="problem counts swept at --n; the first is also the count of the n sweep")
    parser.add_argument("--output", default="runs/bench")
    args = parser.parse_args(argv)
    only = args.only.split(",")
    unknown = sorted(set(only) - set(COMPARISONS))
    if unknown:
        parser.error(f"unknown comparison(s) {', '.join(unknown)}; choose from {', '.join(COMPARISONS)}")
    if args.quick:
        args.problems = args.notebook_problems = 4
        args.smollm2_problems, args.smollm2_notebook_problems, args.prefix_operands, args.trials = 2, 1, 5, 1
        args.n, args.beam_width, args.scaling_n, args.scaling_problems = 4, 2, "2,4", "4,8"

    device = "cuda" if torch.cuda.is_available() else "cpu"  # the transformers sides run where vLLM does
    settings = Settings(device)
    report = {"device": torch.cuda.get_device_name(0) if device == "cuda" else "CPU", "quick": args.quick, "n": args.n, "beam_width": args.beam_width}
    cfg = SearchConfig(n=args.n, beam_width=args.beam_width, max_steps=args.prefix_operands + 3)
    test = load_problems("arith-test")
    problems = spread(test, args.problems)
    deep = [Problem(p.id, p.question, str(p.answer), p.difficulty, "arith")  # depth = operands - 1
            for p in arith.fresh_problems(args.problems, seed=9, n_operands=args.prefix_operands)]
    if "overhead" in only:
        _, policy, prm, _, _ = settings.get("arith")
        report["overhead"] = bench_overhead(problems, policy, prm, cfg)
    if "prefix" in only:
        _, policy, prm, hf_prm, hf_full = settings.get("arith")
        report["prefix"] = bench_prefix(deep, policy, {"vllm": (prm, settings.get("arith-no-cache-vllm-prm")), "hf": (hf_prm, hf_full)}, cfg, args.trials)
    if "prefix-8x" in only:
        policy, prm, hf_prm, hf_full = settings.get("eight-x")
        report["prefix-8x"] = bench_prefix(deep, policy, {"vllm": (prm, settings.get("eight-x-no-cache-vllm-prm")), "hf": (hf_prm, hf_full)}, cfg, args.trials)
    if "notebook" in only:
        _, policy, prm, hf_prm, _ = settings.get("arith")
        report["notebook"] = bench_notebook(spread(test, args.notebook_problems), policy, prm, hf_prm, cfg)
    if "sal" in only:
        _, policy, prm, hf_prm, hf_full = settings.get("arith")
        report["sal"] = bench_sal(problems, policy, prm, hf_prm, hf_full, cfg)
    if "sal-8x" in only:
        policy, prm, hf_prm, sal_prm = settings.get("eight-x")
        report["sal-8x"] = bench_sal_replay(deep, policy, prm, sal_prm, cfg, cached_hf=hf_prm)
    if {"notebook-smollm2", "sal-smollm2"} & set(only):
        recipe, policy, prm, sal_prm = settings.get("smollm2")
        champ = spread(load_problems("champ-numeric"), args.smollm2_problems)
        # short searches (the notebook side costs a quarter of a second per token at this size on 2 CPU
        # cores), over as many problems as ours batches at nearly the cost of one (a vLLM decoding step
        # took 77, 80 and 91 ms for 4, 8 and 16 sequences here)
        steps, step_tokens = (2, 16) if args.quick else (3, 48)
        smol_cfg = replace(SearchConfig(**recipe.search), n=min(args.n, 4), beam_width=min(args.beam_width, 2), max_steps=steps,
                           max_step_tokens=step_tokens, max_retries_per_step=1)
        report["smollm2_config"] = {k: getattr(smol_cfg, k) for k in ("n", "beam_width", "max_steps", "max_step_tokens", "max_retries_per_step")}
        if "sal-smollm2" in only:
            report["sal-smollm2"] = bench_sal_replay(champ, policy, prm, sal_prm, smol_cfg, target="none (PRM 1:1; the 4x target is at 8:1)")
        if "notebook-smollm2" in only:
            report["notebook-smollm2"] = bench_notebook_replay(champ[: args.smollm2_notebook_problems], policy, prm, sal_prm, smol_cfg)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    if "scaling" in only:
        recipe, policy, prm = settings.get("countdown")
        ns = [int(x) for x in args.scaling_n.split(",")]
        counts = [int(x) for x in args.scaling_problems.split(",")]
        pool = spread(load_problems(recipe.dataset), max(counts))
        report["scaling"] = bench_scaling(pool, policy, prm, replace(SearchConfig(**recipe.search), n=args.n, beam_width=args.beam_width), ns, counts)
        plot_scaling(report["scaling"]["rows"], out / "scaling.png")
    (out / "bench.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "bench.md").write_text(markdown(report) + "\n")
    print(markdown(report))


def seconds(breakdown: dict) -> str:
    return ", ".join(f"{k} {v:.1f}" for k, v in breakdown.items())


def trial_note(shares: list | None) -> str:
    if not shares or len(shares) < 2 or None in shares:
        return ""
    return f"; median of {len(shares)} trials: {', '.join(f'{x:.0%}' for x in shares)}"


def row(*cells) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def markdown(report: dict) -> str:
    lines = [f"device: {report['device']}{' (--quick: sizes for CI, not ratios)' if report['quick'] else ''}; beam n={report['n']}, M={report['beam_width']}", "",
             row("setting", "comparison", "ours", "baseline", "ratio", "target"), row(*["---"] * 6)]
    if "overhead" in report:
        o = report["overhead"]
        lines.append(row("arith 1:1", f"search overhead (gen tokens/s, median of {len(o['ratios'])})", f"{o['search_tokens_per_s']:.0f}", f"raw vLLM {o['raw_tokens_per_s']:.0f}",
                         f"{o['ratio']:.2f} (all: {', '.join(f'{r:.2f}' for r in o['ratios'])})", o["target"]))
    for key, setting in (("prefix", "arith 1:1"), ("prefix-8x", "arith 8:1")):
        for name in ("vllm", "hf") if key in report else ():
            p = report[key]
            c, f, share = p[f"{name}_cached"], p[f"{name}_full"], p[f"{name}_wall_gain_share_of_theory"]
            lines.append(row(setting, f"PRM prefix caching, {name} (tokens computed; s)", f"{c['tokens_computed']}; {c['seconds']:.2f}s", f"{f['tokens_computed']}; {f['seconds']:.2f}s",
                             f"tokens {p[f'{name}_token_ratio']:.2f}x, wall {p[f'{name}_wall_ratio']:.2f}x ({'' if share is None else f'{share:.0%} of theory'}"
                             f"{trial_note(p.get(f'{name}_trial_shares'))})", p["target"]))
    if "notebook" in report:
        nb = report["notebook"]
        lines.append(row("arith 1:1", f"vs notebook greedy PRM search, each searching ({nb['problems']} problems)", f"{nb['ours_seconds']:.1f}s, acc {nb['ours_accuracy']:.0%}",
                         f"{nb['notebook_seconds']:.1f}s, acc {nb['notebook_accuracy']:.0%}", f"{nb['speedup']:.1f}x", nb["target"]))
    if "notebook-smollm2" in report:
        nb = report["notebook-smollm2"]
        lines.append(row("SmolLM2-135M + 135M PRM", f"vs notebook greedy PRM search, identical work ({nb['problems']} CHAMP problems, {nb['notebook']['paths_scored']} paths scored)",
                         f"{nb['ours_seconds']:.1f}s ({seconds(nb['ours_breakdown'])})", f"{nb['notebook']['seconds']:.1f}s", f"{nb['speedup']:.1f}x", nb["target"]))
    if "sal" in report:
        s = report["sal"]
        for side, what in (("vllm", "vLLM PRM"), ("hf", "HF cached PRM")):
            lines.append(row("arith 1:1", f"vs search-and-learn-style beam, each searching ({what})", f"{s[f'ours_{side}']['seconds']:.1f}s, acc {s[f'ours_{side}']['accuracy']:.0%}",
                             f"{s['sal_full_hf']['seconds']:.1f}s, acc {s['sal_full_hf']['accuracy']:.0%}", f"{s[f'speedup_{side}']:.1f}x", s["target"]))
    for key, setting, what in (("sal-8x", "arith 8:1", "9-operand problems"), ("sal-smollm2", "SmolLM2-135M + 135M PRM", "CHAMP problems")):
        if key in report:
            s = report[key]
            sc = s["sal_scoring"]
            lines.append(row(setting, f"vs search-and-learn-style beam, identical work ({s['problems']} {what}; both scored the same {sc['paths']} paths in {sc['score_calls']} calls)",
                             f"{s['ours_seconds']:.1f}s ({seconds(s['ours_breakdown'])})", f"{s['sal_seconds']:.1f}s ({seconds(s['sal_breakdown'])})", f"{s['speedup']:.1f}x", s["target"]))
            if "hf_cached_scoring" in s:
                h = s["hf_cached_scoring"]
                lines.append(row(setting, "the same score requests: our prefix-cached transformers scorer vs full recompute (tokens computed; s)",
                                 f"{h['tokens_computed']}; {h['seconds']:.1f}s", f"{sc['tokens_computed']}; {sc['seconds']:.1f}s",
                                 f"tokens {sc['tokens_computed'] / max(h['tokens_computed'], 1):.2f}x, wall {sc['seconds'] / h['seconds']:.2f}x", ""))
    if "scaling" in report:
        lines += ["", "Countdown beam search, scaling (per problem):", "",
                  row("n", "problems", "wall s", "s / problem", "generated tokens / problem", "PRM tokens computed / problem", "accuracy"), row(*["---"] * 7)]
        for r in report["scaling"]["rows"]:
            lines.append(row(r["n"], r["problems"], f"{r['seconds']:.1f}", f"{r['seconds_per_problem']:.3f}", f"{r['tokens_per_problem']:.0f}",
                             f"{r['prm_tokens_per_problem']:.0f}", f"{r['accuracy']:.0%}"))
    return "\n".join(lines)


if __name__ == "__main__":
    main()
