"""Every strategy end to end on the shipped models (real vLLM), plus the pieces by hand."""

import json
import subprocess
import sys

import pytest

import strategies
from evals.run import run_one
from problems.datasets import load_problems
from strategies import SearchConfig, aggregate, get_strategy

SMALL = SearchConfig(n=4, beam_width=2, mcts_iterations=6, mcts_expand=2, max_steps=12)


@pytest.fixture(scope="module")
def problems():
    return load_problems("arith-dev")[:6]


def test_registry():
    assert {"greedy_retry", "beam", "best_of_n", "dvts", "dfs", "mcts", "majority", "greedy"} <= set(strategies.STRATEGIES)
    assert get_strategy("beam").name == "beam"
    with pytest.raises(KeyError, match="unknown strategy 'nope'.*beam"):
        get_strategy("nope")


@pytest.mark.parametrize("name", ["greedy_retry", "beam", "best_of_n", "dvts", "dfs", "mcts", "majority", "greedy"])
def test_each_strategy_end_to_end(name, problems, policy, vllm_prm):
    calls = policy.generate_calls
    results = get_strategy(name).search(problems, policy, vllm_prm, SMALL)
    calls = policy.generate_calls - calls
    assert [r.question for r in results] == [p.question for p in problems]
    for r in results:
        assert r.path is not None and r.answer == r.path.steps[-1].strip()
        assert r.candidates and r.cost.generated_tokens > 0 and r.cost.policy_calls > 0
        if name not in ("majority", "greedy"):
            assert len(r.scores) == len(r.path.steps) and all(0.0 <= s <= 1.0 for s in r.scores)
            assert r.cost.prm_calls > 0
    # batched across problems: one policy call per search step for all six problems together
    depth_bound = {"mcts": SMALL.mcts_iterations + 1, "dfs": SMALL.n + 1, "greedy_retry": SMALL.max_steps + SMALL.max_retries_per_problem}
    assert calls <= depth_bound.get(name, SMALL.max_steps + 1)
    assert sum(p.grade(r.answer) for p, r in zip(problems, results)) >= 4  # the shipped models solve most dev problems


@pytest.mark.parametrize("name", ["greedy", "greedy_retry", "beam", "best_of_n", "dvts", "dfs", "mcts"])
def test_real_models_give_a_problem_the_same_result_in_any_batch(name, problems, policy, vllm_prm):
    """Batch invariance with the real engines: greedy decoding, and sampling under the
    per-request seeds the strategies derive from each problem."""
    p, q, r = problems[:3]

    def search(batch):
        return get_strategy(name).search(batch, policy, vllm_prm, SMALL)

    alone = search([p])[0]
    for other in (search([p, q])[0], search([q, r, p])[2]):
        assert (other.answer, other.path) == (alone.answer, alone.path)
        assert [c.path for c in other.candidates] == [c.path for c in alone.candidates]
        assert other.scores == pytest.approx(alone.scores, abs=1e-5)


def test_greedy_retry_stops_when_retries_run_out(problems, policy, vllm_prm):
    cfg = SearchConfig(threshold=1.01, max_retries_per_step=2, max_retries_per_problem=3, max_steps=10)  # nothing is ever accepted
    results = get_strategy("greedy_retry").search(problems[:3], policy, vllm_prm, cfg)
    for r in results:
        assert r.path is not None
        # every position costs at most 1 + 2 tries, and the problem at most 3 retries in all
        assert len(r.candidates) <= len(r.path.steps) + 1 + cfg.max_retries_per_problem


def test_mcts_out_of_budget_finishes_the_most_visited_path(problems, policy, vllm_prm):
    cfg = SearchConfig(mcts_iterations=1, mcts_expand=2, max_steps=12)  # one expansion: no path can finish
    calls = policy.generate_calls
    results = get_strategy("mcts").search(problems, policy, vllm_prm, cfg)
    assert policy.generate_calls - calls == 2  # the expansion, then one rollout for every problem together
    for r in results:
        assert r.path.finished and r.answer is not None and len(r.scores) == len(r.path.steps)
    assert sum(p.grade(r.answer) for p, r in zip(problems, results)) >= 4


def test_aggregation_by_hand():
    s = [0.9, 0.5, 0.8]
    assert aggregate(s, "last") == 0.8 and aggregate(s, "min") == 0.5
    assert aggregate(s, "prod") == pytest.approx(0.36) and aggregate(s, "mean") == pytest.approx(2.2 / 3)
    assert aggregate([], "min") == 0.0
    with pytest.raises(ValueError, match="unknown aggregation"):
        aggregate(s, "max")


def test_run_resumes_after_a_kill(tmp_path, policy, vllm_prm):
    problems = load_problems("arith-dev")[:6]
    out = tmp_path / "run"
    rows = run_one(problems, "beam", SMALL, policy, vllm_prm, out, batch_size=2)
    assert sorted(r["id"] for r in rows) == sorted(p.id for p in problems)
    # a kill after 3 problems, in the middle of writing the 4th line
    lines = (out / "results.jsonl").read_text().splitlines()
    (out / "results.jsonl").write_text("\n".join(lines[:3]) + "\n" + lines[3][:40])
    calls = policy.generate_calls
    rows = run_one(problems, "beam", SMALL, policy, vllm_prm, out, batch_size=2)
    assert policy.generate_calls > calls  # the missing problems ran again
    assert sorted(r["id"] for r in rows) == sorted(p.id for p in problems)  # each exactly once
    rerun_calls = policy.generate_calls
    run_one(problems, "beam", SMALL, policy, vllm_prm, out, batch_size=2)
    assert policy.generate_calls == rerun_calls  # nothing left to do


def cli(*args):
    return subprocess.run([sys.executable, "-m", "evals.run", *args], capture_output=True, text=True)


def test_cli_errors(tmp_path):
    run = cli("--strategy", "nope")
    assert run.returncode == 2 and "unknown strategy 'nope'" in run.stderr
    run = cli("--policy", str(tmp_path / "missing"), "--limit", "1", "--output", str(tmp_path / "o"))
    assert run.returncode != 0 and "policy directory not found" in run.stderr
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"question": "1+1", "answer": "2"}) + "\n" + json.dumps({"question": "2+2"}) + "\n")
    run = cli("--dataset", str(bad), "--output", str(tmp_path / "o"))
    assert run.returncode != 0 and "bad.jsonl:2: needs a string or number 'answer'" in run.stderr


def test_shards_split_the_dataset_and_merge_back(tmp_path, policy, vllm_prm):
    from evals.merge import merge
    from evals.run import parse_shard, shard

    problems = load_problems("arith-dev")[:7]
    parts = [shard(problems, f"{i}/3") for i in range(3)]
    assert sorted(p.id for part in parts for p in part) == sorted(p.id for p in problems)  # disjoint, complete
    for i, part in enumerate(parts):
        run_one(part, "greedy", SMALL, policy, None, tmp_path / f"s{i}", batch_size=4)
    summary = merge([tmp_path / f"s{i}" for i in range(3)] + [tmp_path / "s0"], tmp_path / "all")  # a shard twice: kept once
    rows = [json.loads(line) for line in (tmp_path / "all" / "results.jsonl").read_text().splitlines()]
    assert sorted(r["id"] for r in rows) == sorted(p.id for p in problems) and summary["problems"] == 7
    assert (tmp_path / "all" / "summary.md").is_file()
    run_one(parts[0], "majority", SMALL, policy, None, tmp_path / "other", batch_size=4)
    with pytest.raises(ValueError, match="different strategies"):
        merge([tmp_path / "s1", tmp_path / "other"], tmp_path / "bad")
    for bad in ("3/3", "1", "a/b"):
        with pytest.raises(ValueError, match="--shard"):
            parse_shard(bad)
    run = cli("--shard", "2/2")
    assert run.returncode == 2 and "0 <= i < k" in run.stderr


def test_cli_passes_vllm_parallelism_through():
    from evals.run import DEFAULT_RECIPE, engine_config, parse_args
    from recipes import load_recipe

    recipe = load_recipe(DEFAULT_RECIPE)

    cfg = engine_config(parse_args(["--tensor-parallel-size", "2", "--data-parallel-size", "4", "--seed", "3"]), recipe)
    kwargs = cfg.llm_kwargs()
    assert kwargs["tensor_parallel_size"] == 2 and kwargs["data_parallel_size"] == 4 and kwargs["seed"] == 3
    assert "data_parallel_size" not in engine_config(parse_args([]), recipe).llm_kwargs()


def test_cli_search_flags_override_the_recipe_which_overrides_the_defaults(tmp_path):
    """A recipe's search block sets the search; a flag given on the command line overrides it (no
    'multiple values' crash), and a flag left off never does."""
    from evals.run import DEFAULT_RECIPE, parse_args, search_config
    from recipes import load_recipe

    text = DEFAULT_RECIPE.read_text()
    assert "\nsearch:" not in text  # the default recipe leaves the search to SearchConfig
    recipe_file = tmp_path / "r.yaml"
    recipe_file.write_text(text + "\nsearch: {aggregation: prod, temperature: 0.5, n: 16, beam_width: 2, max_steps: 7, seed: 5}\n")
    recipe = load_recipe(recipe_file)
    cfg = search_config(parse_args([]), 16, recipe)
    assert (cfg.aggregation, cfg.temperature, cfg.n, cfg.beam_width, cfg.max_steps, cfg.seed, cfg.selection) == ("prod", 0.5, 16, 2, 7, 5, "weighted")
    args = parse_args(["--aggregation", "min", "--temperature", "1.0", "--beam-width", "4", "--seed", "0"])
    cfg = search_config(args, 16, recipe)
    assert (cfg.aggregation, cfg.temperature, cfg.beam_width, cfg.max_steps, cfg.seed) == ("min", 1.0, 4, 7, 0)
    plain = search_config(parse_args([]), 8, load_recipe(DEFAULT_RECIPE))  # no search block: SearchConfig's defaults
    assert (plain.aggregation, plain.temperature, plain.beam_width, plain.seed) == ("last", 0.8, 4, 0)
