"""The engine on the shipped models: real vLLM (CPU build) and real transformers."""

import random
import subprocess
import sys

import pytest
import torch

from engine import HFPRM, VLLMPRM, Policy, PromptTooLongError, StepFormat, StepPath
from engine.kv_pool import KVPool
from engine.models import DEFAULT_POLICY, DEFAULT_PRM, ModelDirError
from engine.prm import p_correct
from problems import arith
from strategies.base import check_compatible
from trainers.common import fresh_llama
from trainers.step_sft import StepSFTConfig


def mixed_paths(problems, policy) -> list[StepPath]:
    """Reference prefixes, policy rollouts and corrupted steps: many paths sharing prefixes."""
    rng = random.Random(0)
    paths = []
    for p in problems:
        paths += [StepPath(p.question, p.steps[:k]) for k in range(1, len(p.steps) + 1)]
        paths.append(StepPath(p.question, p.steps[:-1] + (str(p.answer + rng.randint(1, 9)),)))
    rollouts = policy.complete([StepPath(p.question) for p in problems], n=2, temperature=1.0, max_tokens=200).paths
    paths += [r for rs in rollouts for r in rs if r.steps]
    rng.shuffle(paths)
    return paths


def test_vllm_scorer_matches_the_transformers_reference(policy, vllm_prm, hf_prm):
    paths = mixed_paths(arith.load_split("dev")[:40], policy)
    a, b = vllm_prm.score(paths).scores, hf_prm.score(paths).scores
    assert [len(x) for x in a] == [len(p.steps) for p in paths] == [len(x) for x in b]
    diff = max(abs(x - y) for xs, ys in zip(a, b) for x, y in zip(xs, ys))
    assert diff < 1e-4
    # and both equal a plain full forward pass, read at the SEP positions
    model, enc = hf_prm.model, hf_prm.encoder
    for path, scores in list(zip(paths, b))[:30]:
        ids, seps = enc.path_ids(path.question, path.steps)
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0]
        full = torch.softmax(logits[seps][:, [enc.positive_id, enc.negative_id]], -1)[:, 0]
        assert torch.allclose(full, torch.tensor(scores), atol=1e-5)


def test_prefix_caching_computes_only_the_new_step(vllm_prm, hf_prm):
    question = "12*3+7*2-5+9*4-8"  # fresh to both scorers
    steps = arith.reference_steps(question)
    block = 32  # EngineConfig.block_size: vLLM reuses full blocks only
    for k in range(1, len(steps) + 1):
        path = StepPath(question, tuple(steps[:k]))
        new_tokens = len(hf_prm.encoder.path_ids(question, steps[:k])[0]) - len(hf_prm.encoder.path_ids(question, steps[: k - 1])[0])
        hf, vl = hf_prm.score([path]).cost, vllm_prm.score([path]).cost
        if k == 1:
            assert hf.prm_tokens_computed == hf.prm_tokens_requested  # nothing cached yet
            continue
        assert hf.prm_tokens_computed == new_tokens
        assert vl.prm_tokens_computed <= new_tokens + block
        assert vl.prm_tokens_computed < vl.prm_tokens_requested
    # scoring the same path again computes nothing
    assert vllm_prm.score([path]).cost.prm_tokens_computed == 0 == hf_prm.score([path]).cost.prm_tokens_computed


def test_siblings_share_the_parents_kv_in_the_reference_scorer(hf_prm):
    question = "3*17-2*9+4"
    steps = arith.reference_steps(question)
    hf_prm.score([StepPath(question, tuple(steps[:2]))])
    siblings = [StepPath(question, tuple(steps[:2]) + (s,)) for s in [steps[2], "1", "2*9", steps[2] + "0"]]
    cost = hf_prm.score(siblings).cost
    enc = hf_prm.encoder
    parent_len = len(enc.path_ids(question, steps[:2])[0])
    assert cost.prm_tokens_computed == sum(len(enc.path_ids(p.question, p.steps)[0]) - parent_len for p in siblings)


def test_propose_is_one_generate_call_and_every_step_ends_properly(policy):
    paths = [StepPath(p.question) for p in arith.load_split("dev")[:12]] + [StepPath("3+4*5-2", ("3+20-2",))]
    calls = policy.generate_calls
    out = policy.propose(paths, n=4, temperature=1.0, max_step_tokens=64)
    assert policy.generate_calls == calls + 1
    assert [len(c) for c in out.steps] == [4] * len(paths)
    for candidates in out.steps:
        for step in candidates:
            assert step.finished or not step.truncated  # ended in SEP or EOS
            assert "<sep>" not in step.text and "</s>" not in step.text
    assert out.cost.policy_calls == 1 and out.cost.generated_tokens == sum(s.num_tokens for c in out.steps for s in c)
    assert out.cost.prompt_tokens > 0 and out.cost.cached_tokens >= 0
    # a step cut at max_step_tokens without SEP is flagged, never merged into the next one
    short = policy.propose([StepPath("29*28*27+26*25")], n=2, temperature=0.0, max_step_tokens=3).steps[0]
    assert all(s.truncated and s.num_tokens == 3 for s in short)


def test_complete_rolls_out_to_eos(policy):
    problems = arith.load_split("dev")[:6]
    out = policy.complete([StepPath(p.question) for p in problems], n=3, temperature=0.0, max_tokens=256)
    assert all(len(rs) == 3 for rs in out.paths)
    finished = [r for rs in out.paths for r in rs if r.finished]
    assert len(finished) >= 15
    correct = sum(arith.grade(p, rs[0].steps[-1]) for p, rs in zip(problems, out.paths))
    assert correct >= 3  # the shipped policy solves most 2-4 operand dev problems greedily


def test_sampling_is_deterministic_under_the_engine_seed():
    script = (
        "from engine import Policy, StepPath\n"
        f"p = Policy({str(DEFAULT_POLICY)!r})\n"
        "print([s.text for c in p.propose([StepPath('12*13-7+5'), StepPath('3+4')], n=4, temperature=1.0).steps for s in c])\n"
    )
    runs = [subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.splitlines()[-1] for _ in range(2)]
    assert runs[0] == runs[1]


def test_request_seeds_fix_a_paths_samples_in_any_batch(policy):
    """A request's samples depend on its seed, not on its batch. And a batch of seeded requests
    whose prompts overflow one scheduler step runs: 64 six-operand problems x 4 samples is over
    4,096 prompt tokens, which vLLM would split over steps (chunked prefill), and the CPU
    sampler crashes on a seeded request prefilled in chunks ("CPU Generator does not use
    offset"), so the engine turns chunking off."""
    problems = [p for p in arith.load_split("test") if p.n_operands == 6][:64]
    paths = [StepPath(p.question) for p in problems]
    seeds = list(range(len(paths)))
    alone = policy.propose(paths[:1], 4, temperature=1.0, seeds=seeds[:1]).steps[0]
    assert policy.propose(paths[::-1], 4, temperature=1.0, seeds=seeds[::-1]).steps[-1] == alone
    crowd = policy.complete(paths, 4, temperature=0.8, seeds=seeds).paths
    assert crowd[0] == policy.complete(paths[:1], 4, temperature=0.8, seeds=seeds[:1]).paths[0]


def test_prompt_longer_than_the_context_is_a_clear_error(policy):
    with pytest.raises(PromptTooLongError, match="does not fit max_model_len"):
        policy.propose([StepPath("1+" * 600 + "1")], n=1, temperature=0.8)


def test_nan_scores_are_refused():
    with pytest.raises(ValueError, match="NaN"):
        p_correct(float("nan"), 0.0)
    assert p_correct(3.0, 1.0) == pytest.approx(torch.sigmoid(torch.tensor(2.0)).item())


def tiny_model_dir(path, fmt: StepFormat):
    model, tok = fresh_llama(StepSFTConfig(output_dir="unused", hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64), fmt, seed=0)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def test_prm_tokenizer_without_label_tokens_is_a_clear_error(tmp_path):
    d = tiny_model_dir(tmp_path / "m", StepFormat(positive="<good>", negative="<bad>"))
    with pytest.raises(ModelDirError, match="Positive label '<pos>'"):
        HFPRM(d)
    with pytest.raises(ModelDirError, match="Positive label '<pos>'"):
        VLLMPRM(d)


def test_a_prm_with_its_own_step_format_rescores_the_policys_steps(tmp_path, policy):
    from types import SimpleNamespace

    fmt = StepFormat(sep="<step>")
    prm = HFPRM(tiny_model_dir(tmp_path / "m", fmt), fmt)
    check_compatible(policy, prm)  # different separators are fine: steps travel as text
    ids, seps = prm.encoder.path_ids("3+4", ["7"])
    assert prm.encoder.decode(ids).endswith("7<step>") and ids[seps[0]] == prm.encoder.sep_id
    assert len(prm.score([StepPath("3+4", ("7",))]).scores[0]) == 1
    clash = SimpleNamespace(fmt=StepFormat(sep="<"))  # "<" is inside the policy's "<sep>"
    with pytest.raises(ValueError, match="PRM's step separator '<' is part of the policy's '<sep>'"):
        check_compatible(policy, clash)
    with pytest.raises(ModelDirError, match="step separator '<step>'"):
        Policy(DEFAULT_POLICY, fmt)  # the policy's tokenizer has no <step> token


def test_incomplete_model_directories_are_named(tmp_path):
    from engine.models import check_model_dir

    d = tmp_path / "m"
    d.mkdir()
    with pytest.raises(ModelDirError, match="has no config.json"):
        check_model_dir(d, "policy")
    (d / "config.json").write_text("{}")
    with pytest.raises(ModelDirError, match="has no weights"):
        check_model_dir(d, "policy")
    (d / "model.safetensors").write_bytes(b"")
    with pytest.raises(ModelDirError, match="has no tokenizer files"):
        check_model_dir(d, "policy")
    with pytest.raises(ModelDirError, match="directory not found"):
        check_model_dir(tmp_path / "nope", "policy")


def test_the_transformers_scorers_kv_pool_grows_evicts_and_stays_exact():
    """Depth by depth through paths sharing prefixes: scores equal a plain forward pass
    (reuse_kv=False) whether the pool grew to hold everything or had to evict, and a pool
    that holds everything computes only the new tokens."""
    problems = arith.load_split("dev")[:30]
    plain = HFPRM(DEFAULT_PRM, reuse_kv=False)
    small = HFPRM(DEFAULT_PRM, kv_tokens=300, batch_size=8)  # about two depths of these paths: evicts
    grows = HFPRM(DEFAULT_PRM, batch_size=8)
    grows.kv = KVPool(initial_tokens=64)  # starts tiny: doubles as it fills
    computed = {"small": 0, "grows": 0, "new": 0}
    for depth in range(1, max(len(p.steps) for p in problems) + 1):
        paths = [StepPath(p.question, p.steps[:depth]) for p in problems if len(p.steps) >= depth]
        expected = plain.score(paths)
        assert expected.cost.prm_tokens_computed == expected.cost.prm_tokens_requested  # every path whole
        for name, scorer in (("small", small), ("grows", grows)):
            got = scorer.score(paths)
            computed[name] += got.cost.prm_tokens_computed
            assert max(abs(x - y) for xs, ys in zip(expected.scores, got.scores) for x, y in zip(xs, ys)) < 1e-5
        parents = [StepPath(p.question, p.steps[: depth - 1]) for p in problems if len(p.steps) >= depth]
        enc = plain.encoder
        computed["new"] += sum(len(enc.path_ids(p.question, p.steps)[0]) - (len(enc.path_ids(q.question, q.steps)[0]) if depth > 1 else 0)
                               for p, q in zip(paths, parents))
    assert grows.kv.capacity > 64 and computed["grows"] == computed["new"]
    assert computed["small"] > computed["new"]  # it evicted, recomputed, and stayed exact
