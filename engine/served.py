"""A running vLLM server as the engine's LLM: Policy and VLLMPRM drive a `vllm serve` deployment
(its OpenAI-compatible completions endpoint) with the very requests they give an in-process
engine: token-id prompts, one request per prompt, `n` samples, per-request seeds, SEP/EOS
stops, and for the PRM a one-token generation restricted to the two label tokens.

    vllm serve models/policy --port 8000 --seed 0 --enable-prompt-tokens-details ...   # README: Served models
    policy = Policy("models/policy", url="http://localhost:8000")

`ServedLLM.generate` takes what `vllm.LLM.generate` takes (TokensPrompts and SamplingParams),
sends the requests all at once (a thread pool), and returns objects shaped like vLLM's
RequestOutput, so the policy and the PRM scorer run unchanged on top of it, with the same
batching and the same Cost books (cached prompt tokens from the usage details, when the server
reports them: `--enable-prompt-tokens-details`). The model directory still gives the tokenizer
(prompts are encoded here, as in-process); the server must serve that model.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path


class ServedEngineError(RuntimeError):
    """The server cannot be reached, serves another model, lacks a setting, or timed out."""


@dataclass
class Logprob:
    logprob: float


@dataclass
class CompletionOutput:  # the part of vllm.CompletionOutput the engine reads
    token_ids: list[int]
    logprobs: list[dict[int, Logprob]] | None


@dataclass
class RequestOutput:  # the part of vllm.RequestOutput the engine reads
    prompt_token_ids: list[int]
    outputs: list[CompletionOutput]
    num_cached_tokens: int | None


class ServedLLM:
    def __init__(self, url: str, model_dir: str | Path, role: str, timeout: float = 600.0, max_in_flight: int = 64):
        import openai

        self.url = url.rstrip("/")
        self.client = openai.OpenAI(base_url=f"{self.url}/v1", api_key="EMPTY", timeout=timeout, max_retries=0)
        self.role, self.timeout = role, timeout
        self.pool = ThreadPoolExecutor(max_workers=max_in_flight, thread_name_prefix="vllm-serve")  # the requests in flight
        card = self._models()
        self.model, self.max_model_len = card.id, getattr(card, "max_model_len", None) or 1 << 30
        served = {card.id, getattr(card, "root", None) or card.id}
        if not any(_same_model(name, model_dir) for name in served):
            raise ServedEngineError(f"the server at {self.url} serves {sorted(served)}, not the {role} {model_dir}: "
                                    f"start it with `vllm serve {model_dir}` (the tokenizer here must be the server's)")

    def _models(self):
        try:
            cards = self.client.models.list().data
        except Exception as e:  # openai raises APIConnectionError, APITimeoutError, APIStatusError
            raise self._error(e, "listing its models") from None
        if not cards:
            raise ServedEngineError(f"the server at {self.url} serves no model")
        return cards[0]

    def _error(self, e: Exception, doing: str) -> ServedEngineError:
        import openai

        if isinstance(e, openai.APITimeoutError):
            return ServedEngineError(f"the vLLM server at {self.url} ({self.role}) did not answer within {self.timeout:g} s while {doing}")
        if isinstance(e, openai.APIConnectionError):
            return ServedEngineError(f"cannot reach a vLLM server at {self.url} ({self.role}) while {doing}: is `vllm serve` running there? ({e})")
        return ServedEngineError(f"the vLLM server at {self.url} ({self.role}) refused a request while {doing}: {str(e)[:300]}")

    def generate(self, prompts, params, use_tqdm: bool = False) -> list[RequestOutput]:
        """One completions request per prompt, all in flight together; outputs in prompt order."""
        params = params if isinstance(params, list) else [params] * len(prompts)
        return list(self.pool.map(self._complete, prompts, params))

    def _complete(self, prompt, params) -> RequestOutput:
        ids = list(prompt["prompt_token_ids"])
        body = {
            "stop_token_ids": list(params.stop_token_ids or []), "include_stop_str_in_output": params.include_stop_str_in_output,
            "skip_special_tokens": params.skip_special_tokens, "return_token_ids": True, "return_tokens_as_token_ids": True,
        }
        if params.allowed_token_ids:
            body["allowed_token_ids"] = list(params.allowed_token_ids)
        try:
            response = self.client.completions.create(
                model=self.model, prompt=ids, max_tokens=params.max_tokens, temperature=params.temperature, top_p=params.top_p,
                n=params.n, seed=params.seed, stop=list(params.stop or []) or None, logprobs=params.logprobs, extra_body=body,
            )
        except Exception as e:
            raise self._error(e, "generating") from None
        outputs = [CompletionOutput(list(choice.token_ids), _logprobs(choice.logprobs)) for choice in sorted(response.choices, key=lambda c: c.index)]
        details = getattr(response.usage, "prompt_tokens_details", None)
        return RequestOutput(ids, outputs, getattr(details, "cached_tokens", None))

    def reset_prefix_cache(self) -> None:
        """vLLM's /reset_prefix_cache, where the server offers it (VLLM_SERVER_DEV_MODE=1); else nothing."""
        import httpx

        try:
            httpx.post(f"{self.url}/reset_prefix_cache", timeout=self.timeout)
        except httpx.HTTPError as e:
            raise self._error(e, "resetting its prefix cache") from None


def _same_model(served: str, model_dir: str | Path) -> bool:
    if str(served) == str(model_dir):
        return True
    served_path, local = Path(str(served)).expanduser(), Path(str(model_dir)).expanduser()
    return served_path.exists() and local.exists() and served_path.resolve() == local.resolve()


def _logprobs(logprobs) -> list[dict[int, Logprob]] | None:
    """The completions endpoint's top_logprobs ({"token_id:123": -0.1, ...} per generated token)."""
    if logprobs is None or not getattr(logprobs, "top_logprobs", None):
        return None
    return [{int(token.removeprefix("token_id:")): Logprob(value) for token, value in top.items()} for top in logprobs.top_logprobs]


def check_processed_logprobs(llm: ServedLLM, prompt_ids: list[int], positive_id: int, negative_id: int) -> None:
    """A served PRM's two label logprobs must be the log-softmax over those two tokens alone
    (`--logprobs-mode processed_logprobs`); a server started without it reports the model's
    full-vocabulary logprobs, whose two probabilities do not add up to 1."""
    from vllm import SamplingParams, TokensPrompt

    params = SamplingParams(max_tokens=1, temperature=0.0, logprobs=2, allowed_token_ids=[positive_id, negative_id])
    (out,) = llm.generate([TokensPrompt(prompt_token_ids=prompt_ids)], params)
    top = (out.outputs[0].logprobs or [{}])[0]
    total = sum(math.exp(top[t].logprob) for t in (positive_id, negative_id) if t in top)
    if abs(total - 1.0) > 1e-3:
        raise ServedEngineError(f"the PRM server at {llm.url} reports raw logprobs (P(+) + P(-) = {total:.4f}, not 1): "
                                "start it with `vllm serve ... --logprobs-mode processed_logprobs`")
