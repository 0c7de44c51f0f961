"""The policy: a vLLM engine that proposes next steps and rolls paths out.

    policy = Policy("models/policy")
    out = policy.propose([StepPath("3+4*5")], n=4, temperature=0.8)
    out.steps[0]   # 4 candidate Steps for the first path;  out.cost: what the call spent

Each call is ONE batched `generate` over every path given (all open paths of all
problems), with `n` samples per path, so vLLM's automatic prefix caching shares the KV of
common prefixes. Prompts go in as token ids built by `StepEncoder`, the same ids the
PRM and the trainers use.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from engine.encoding import StepEncoder
from engine.format import ARITH_FORMAT, StepFormat
from engine.models import resolve_model
from engine.types import Completions, Cost, Proposals, Step, StepPath, Timer


@dataclass
class EngineConfig:
    """vLLM engine knobs, passed through to `vllm.LLM`."""

    dtype: str = "float32"
    max_model_len: int = 1024
    block_size: int = 32  # the CPU backend wants a multiple of 32; prefix caching reuses full blocks only
    enforce_eager: bool = True  # skip graph compilation: much faster start-up for small models
    gpu_memory_utilization: float | None = None  # None: vLLM's default (on CPU use VLLM_CPU_KVCACHE_SPACE)
    tensor_parallel_size: int = 1
    seed: int = 0
    # Seed each request from the seed the caller gives it (strategies derive one from the problem
    # and its own search state), so a problem's samples do not depend on which other requests
    # share the batch. Off: the engine's one random stream serves the whole batch in order.
    request_seeds: bool = True
    extra: dict[str, Any] = field(default_factory=dict)  # any other vllm.LLM argument

    def llm_kwargs(self) -> dict[str, Any]:
        kwargs = dict(
            dtype=self.dtype,
            max_model_len=self.max_model_len,
            block_size=self.block_size,
            enforce_eager=self.enforce_eager,
            tensor_parallel_size=self.tensor_parallel_size,
            seed=self.seed,
            enable_prefix_caching=True,
        )
        if self.request_seeds and on_cpu():
            # On the CPU backend a seeded request whose prompt is split over scheduler steps
            # (chunked prefill) crashes the sampler ("CPU Generator does not use offset"):
            # prefill whole prompts instead.
            kwargs.update(enable_chunked_prefill=False, max_num_batched_tokens=max(self.max_model_len, 4096))
        if self.gpu_memory_utilization is not None:
            kwargs["gpu_memory_utilization"] = self.gpu_memory_utilization
        return {**kwargs, **self.extra}


class PromptTooLongError(ValueError):
    pass


def on_cpu() -> bool:
    from vllm.platforms import current_platform

    return current_platform.is_cpu()


def per_path(value, paths: Sequence, name: str) -> list:
    """One value for every path, or a sequence of one per path (checked)."""
    if isinstance(value, (int, float)):
        return [value] * len(paths)
    values = list(value)
    if len(values) != len(paths):
        raise ValueError(f"{len(values)} values of {name} for {len(paths)} paths")
    return values


class Policy:
    """The vLLM policy: in this process, or a running `vllm serve` of the same model at `url`
    (engine.served: the same requests over HTTP; the model directory gives the tokenizer)."""

    def __init__(self, model_dir: str | Path, fmt: StepFormat = ARITH_FORMAT, config: EngineConfig | None = None, url: str | None = None):
        if fmt.step_turns:
            raise ValueError("step_turns is a PRM format (steps as user turns): a policy writes its steps as one reply")
        self.model_dir = resolve_model(model_dir, "policy")
        self.fmt = fmt
        self.config = config or EngineConfig()
        self.encoder = StepEncoder.load(self.model_dir, fmt, "policy")
        self.text_sep = fmt.sep not in self.encoder.tokenizer.all_special_tokens
        if url:
            from engine.served import ServedLLM

            self.llm = ServedLLM(url, model_dir, "policy")
            self.max_model_len = self.llm.max_model_len
        else:
            from vllm import LLM

            self.llm = LLM(model=str(self.model_dir), **self.config.llm_kwargs())
            self.max_model_len = self.llm.llm_engine.model_config.max_model_len
        self.generate_calls = 0  # how many times vLLM's generate ran (tests count it)
        self.recorded: list | None = None  # while a list: every generate call's (prompts, params) (see `recording`)

    # -- the two services -------------------------------------------------------------

    def propose(self, paths: Sequence[StepPath], n: int | Sequence[int], *, temperature: float | Sequence[float], top_p: float = 1.0,
                max_step_tokens: int = 64, seeds: Sequence[int] | None = None) -> Proposals:
        """n candidate next steps for every path, from one generate call. Each ends in SEP or EOS.

        n and temperature may be one value or one per path (temperature 0 = greedy). seeds, one
        per path, seed each request's sampling (see EngineConfig.request_seeds).
        """
        ns = per_path(n, paths, "n")
        outputs, cost = self._generate(paths, ns, temperature, top_p, max_step_tokens, seeds, stop_at_sep=True)
        return Proposals(
            [[self._to_step(o.token_ids, len(out.prompt_token_ids)) for o in self._samples(out, k)] for out, k in zip(outputs, ns)], cost
        )

    def complete(self, paths: Sequence[StepPath], n: int | Sequence[int], *, temperature: float | Sequence[float], top_p: float = 1.0,
                 max_tokens: int = 512, seeds: Sequence[int] | None = None) -> Completions:
        """n rollouts of every path to EOS (or max_tokens), from one generate call."""
        ns = per_path(n, paths, "n")
        outputs, cost = self._generate(paths, ns, temperature, top_p, max_tokens, seeds, stop_at_sep=False)
        return Completions([[self._to_path(p, o.token_ids) for o in self._samples(out, k)] for p, out, k in zip(paths, outputs, ns)], cost)

    # -- for benchmarks ---------------------------------------------------------------

    def reset_caches(self) -> None:
        """Forget vLLM's prefix cache, so the next call starts cold."""
        self.llm.reset_prefix_cache()

    @contextmanager
    def recording(self):
        """`with policy.recording() as calls:` every generate call's (prompts, params) made meanwhile."""
        self.recorded = []
        try:
            yield self.recorded
        finally:
            self.recorded = None

    def replay(self, calls: Sequence[tuple]) -> int:
        """Run recorded generate calls again, raw (no step parsing, no bookkeeping); the tokens generated."""
        return sum(len(o.token_ids) for prompts, params in calls for out in self.llm.generate(prompts, params, use_tqdm=False) for o in out.outputs)

    # -- internals --------------------------------------------------------------------

    def _generate(self, paths, ns: list[int], temperature, top_p, max_tokens, seeds, stop_at_sep: bool):
        from vllm import SamplingParams, TokensPrompt

        if any(n < 1 for n in ns):
            raise ValueError(f"n must be >= 1, got {min(ns)}")
        if any(p.finished for p in paths):
            raise ValueError("cannot extend a finished path (it already ended with EOS)")
        temperatures = per_path(temperature, paths, "temperature")
        seeds = per_path(seeds, paths, "seed") if seeds is not None and self.config.request_seeds else [None] * len(paths)
        single_sep = len(self.encoder.sep_ids) == 1
        stop_ids = [self.encoder.sep_id, self.encoder.eos_id] if stop_at_sep and single_sep else [self.encoder.eos_id]
        # A SEP that is plain text ("\n\n") may be written in several tokens (BPE writes
        # "\n\n" before a word as two "\n"): stop on the string.
        stop_text = [self.fmt.sep] if stop_at_sep and self.text_sep else []
        prompts, params = [], []
        for path, n, temperature, seed in zip(paths, ns, temperatures, seeds):
            ids, _ = self.encoder.path_ids(path.question, path.steps)
            room = self.max_model_len - len(ids)
            if room <= 0:
                raise PromptTooLongError(
                    f"path of {len(ids)} tokens does not fit max_model_len={self.max_model_len}: {self.fmt.prompt(path.question)[:80]!r}"
                    + (f" + {len(path.steps)} steps" if path.steps else "")
                )
            prompts.append(TokensPrompt(prompt_token_ids=ids))
            params.append(
                SamplingParams(
                    n=1 if temperature == 0 else n,  # greedy: one sample, copied n times (vLLM refuses n > 1)
                    temperature=temperature, top_p=top_p, max_tokens=min(max_tokens, room), seed=seed,
                    stop_token_ids=stop_ids, stop=stop_text, include_stop_str_in_output=True,
                    skip_special_tokens=False, detokenize=bool(stop_text),
                )
            )
        if self.recorded is not None and prompts:
            self.recorded.append((prompts, params))
        with Timer() as timer:
            outputs = self.llm.generate(prompts, params, use_tqdm=False) if prompts else []
        self.generate_calls += 1
        cost = Cost(
            policy_calls=1,
            prompt_tokens=sum(len(p["prompt_token_ids"]) for p in prompts),
            cached_tokens=sum(out.num_cached_tokens or 0 for out in outputs),
            generated_tokens=sum(len(o.token_ids) for out in outputs for o in out.outputs),
            policy_seconds=timer.seconds,
        )
        return outputs, cost

    @staticmethod
    def _samples(out, n: int) -> list:
        return out.outputs if len(out.outputs) == n else out.outputs * n  # greedy: the one sample, n times

    def _to_step(self, ids: Sequence[int], prompt_len: int) -> Step:
        ids = list(ids)
        if ids and ids[-1] == self.encoder.eos_id:
            return Step(self._cut(self.encoder.decode(ids[:-1])), finished=True, num_tokens=len(ids))
        if ids and len(self.encoder.sep_ids) == 1 and ids[-1] == self.encoder.sep_id:
            return Step(self._cut(self.encoder.decode(ids[:-1])), num_tokens=len(ids))
        text = self.encoder.decode(ids)
        if self.fmt.sep in text:  # SEP spelled in ordinary tokens (a text SEP such as "\n\n" usually is)
            return Step(self._cut(text), num_tokens=len(ids))
        if self.fmt.eos and self.fmt.eos in text:
            return Step(self._cut(text), finished=True, num_tokens=len(ids))
        # max_step_tokens ran out before SEP: close the step here, flagged. If the context is
        # full too, the path cannot go on: it ends here.
        out_of_context = prompt_len + len(ids) + 1 >= self.max_model_len
        return Step(text, truncated=True, finished=out_of_context, num_tokens=len(ids))

    def _cut(self, text: str) -> str:
        """The text up to the first SEP or EOS marker in it."""
        for marker in (self.fmt.sep, self.fmt.eos):
            if marker and marker in text:
                text = text[: text.index(marker)]
        return text

    def _to_path(self, path: StepPath, ids: Sequence[int]) -> StepPath:
        ids = list(ids)
        finished = bool(ids) and ids[-1] == self.encoder.eos_id
        text = self.encoder.decode(ids[:-1] if finished else ids)
        if self.fmt.eos and self.fmt.eos in text:  # EOS spelled in ordinary tokens
            text, finished = text[: text.index(self.fmt.eos)], True
        return StepPath(path.question, path.steps + tuple(self.fmt.split_steps(text)), finished)
