"""Process reward models: P(step correct) for every step of every path, prefix-cached.

The PRM is a causal LM. The score of step k is read from its logits at step k's SEP
token, restricted to the Positive/Negative label tokens and softmaxed over the two:
    P(correct) = sigmoid(logit[positive] - logit[negative])  at the SEP position.
One forward pass scores all steps of a sequence.

Both scorers remember every prefix they have scored (ids through a SEP -> probability),
so a step is scored once, and neither recomputes the KV of a scored prefix:
  - `VLLMPRM` scores each new step as a one-token generation on prompt = path through
    the step's SEP, with `allowed_token_ids=[pos, neg]` and processed logprobs; vLLM's
    automatic prefix cache supplies the prefix (prompt_logprobs and vLLM's pooling path
    skip cache reads, so they are not used here).
  - `HFPRM` (transformers) keeps the KV cache of scored paths itself and runs only the
    new tokens, in batches of paths whose cached prefixes may differ in length. It is the reference the
    vLLM scorer is tested against, and what the trainers use for evaluation.
Both report tokens requested (the paths' lengths) vs tokens actually computed.

`VLLMClassifierPRM` serves the other kind of PRM, a classification head at each step tag
(Qwen2.5-Math-PRM), through vLLM's pooling runner; it remembers scored prefixes too, but
computes each new path whole. `HFPRM(kind="classifier")` is its transformers twin, with the
same KV reuse as for token PRMs.
"""

from __future__ import annotations

import math
from collections import Counter, OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from engine.encoding import StepEncoder
from engine.format import ARITH_FORMAT, StepFormat
from engine.models import ModelDirError, resolve_model
from engine.policy import EngineConfig, PromptTooLongError
from engine.types import Cost, Scores, StepPath, Timer

PRM_KINDS = ("token", "classifier")  # label tokens read at SEP by the LM head; a two-class head at SEP


class RecordingPRM:
    """Any PRM, passed through, keeping the paths of every score call: the states a search asks
    about (trainers.prm trains on them; the benchmarks replay them)."""

    def __init__(self, prm):
        self.prm, self.fmt = prm, prm.fmt
        self.calls: list[list[StepPath]] = []

    def score(self, paths: Sequence[StepPath]) -> Scores:
        self.calls.append(list(paths))
        return self.prm.score(paths)


class LRU(OrderedDict):
    def __init__(self, capacity: int):
        super().__init__()
        self.capacity = capacity

    def get(self, key, default=None):
        if key in self:
            self.move_to_end(key)
            return self[key]
        return default

    def put(self, key, value) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.capacity:
            self.popitem(last=False)


@dataclass
class Job:
    """One path with steps still to score: ids, SEP positions, and the first unscored step."""

    ids: list[int]
    seps: list[int]
    first: int
    prompt_len: int


def checked(p: float) -> float:
    """A score, refused if NaN."""
    if math.isnan(p):
        raise ValueError("the PRM produced a NaN score (NaN logits: broken weights or inputs?)")
    return p


def p_correct(positive_logit: float, negative_logit: float) -> float:
    """Softmax over {Positive, Negative}, taking the Positive side."""
    return checked(1.0 / (1.0 + math.exp(min(negative_logit - positive_logit, 700.0))))


class PrefixCachedScorer:
    """The shared part: encode, look up scored prefixes, ask the backend for the rest."""

    def __init__(self, encoder: StepEncoder, max_len: int, memo_size: int = 1_000_000):
        self.encoder = encoder
        self.fmt = encoder.fmt  # the step format it reads paths in
        self.max_len = max_len
        self.memo: LRU = LRU(memo_size)  # ids through a SEP -> P(correct) of that step

    def score(self, paths: Sequence[StepPath]) -> Scores:
        cost = Cost(prm_calls=1)
        with Timer() as timer:  # all of it, bookkeeping included, is PRM time
            jobs, encoded = [], []
            for path in paths:
                ids, seps = self.encoder.path_ids(path.question, path.steps)
                if len(ids) > self.max_len:
                    raise PromptTooLongError(f"path of {len(ids)} tokens is longer than the PRM's max length {self.max_len}")
                encoded.append((ids, seps))
                cost.prm_tokens_requested += len(ids)
                first = next((k for k, s in enumerate(seps) if tuple(ids[: s + 1]) not in self.memo), None)
                if first is not None:
                    jobs.append(Job(ids, seps, first, len(self.encoder.prompt_ids(path.question))))
            if jobs:
                cost.prm_tokens_computed += self._compute(jobs)  # fills self.memo
            scores = [[self.memo.get(tuple(ids[: s + 1])) for s in seps] for ids, seps in encoded]
        cost.prm_seconds = timer.seconds
        return Scores(scores, cost)

    def reset_caches(self) -> None:
        """Forget every scored prefix (and the backend's KV), so the next call starts cold."""
        self.memo.clear()

    def _compute(self, jobs: list[Job]) -> int:
        """Score every step of each job from `first` on, into self.memo; return tokens computed."""
        raise NotImplementedError


class VLLMPRM(PrefixCachedScorer):
    """A token PRM on vLLM: in this process, or a running `vllm serve` of the same model at
    `url` started with `--logprobs-mode processed_logprobs` (checked: engine.served)."""

    def __init__(self, model_dir: str | Path, fmt: StepFormat = ARITH_FORMAT, config: EngineConfig | None = None, url: str | None = None):
        self.model_dir = resolve_model(model_dir, "PRM")
        encoder = StepEncoder.load(self.model_dir, fmt, "PRM", labels=True)  # checked before vLLM starts
        if url:
            from engine.served import ServedLLM, check_processed_logprobs

            self.llm = ServedLLM(url, model_dir, "PRM")
            check_processed_logprobs(self.llm, list(encoder.path_ids("1", ["1"])[0]), encoder.positive_id, encoder.negative_id)
            max_len = self.llm.max_model_len
        else:
            from vllm import LLM

            config = config or EngineConfig()
            self.llm = LLM(model=str(self.model_dir), logprobs_mode="processed_logprobs", **config.llm_kwargs())
            max_len = self.llm.llm_engine.model_config.max_model_len
        super().__init__(encoder, max_len - 1)

    def reset_caches(self) -> None:
        super().reset_caches()
        self.llm.reset_prefix_cache()

    def _compute(self, jobs: list[Job]) -> int:
        """One generate call per depth: round d scores the d-th unscored step of every job.

        Requests in the same call cannot reuse each other's KV, so the steps of a path that
        is new to the scorer (a whole rollout, say) go in successive rounds, each finding
        the previous round's prefix in vLLM's cache. In a search, every path has one new
        step and this is a single call.
        """
        from vllm import SamplingParams, TokensPrompt

        pos, neg = self.encoder.positive_id, self.encoder.negative_id
        params = SamplingParams(max_tokens=1, temperature=0.0, logprobs=2, allowed_token_ids=[pos, neg], detokenize=False)
        computed = 0
        for depth in range(max(len(job.seps) - job.first for job in jobs)):
            rounds = [tuple(job.ids[: job.seps[job.first + depth] + 1]) for job in jobs if job.first + depth < len(job.seps)]
            prefixes = [p for p in dict.fromkeys(rounds) if p not in self.memo]
            outputs = self.llm.generate([TokensPrompt(prompt_token_ids=list(p)) for p in prefixes], params, use_tqdm=False)
            for prefix, out in zip(prefixes, outputs):
                logprobs = out.outputs[0].logprobs[0]  # processed: log-softmax over {pos, neg}
                self.memo.put(prefix, p_correct(logprobs[pos].logprob, logprobs[neg].logprob))
                computed += len(prefix) - (out.num_cached_tokens or 0)
        return computed


class VLLMClassifierPRM(PrefixCachedScorer):
    """A PRM with a two-class head read at each step tag (Qwen2.5-Math-PRM style:
    `Qwen2ForProcessRewardModel`, the tag `<extra_0>` as the format's SEP), served by vLLM's
    pooling runner (`token_classify`, STEP pooling: one [P(wrong), P(right)] row per tag).

    vLLM's pooling path reads no prefix cache (see the module doc), so a path with unscored
    steps is run whole, once; the scores of every step in it are remembered, so a search
    still pays each path once, but it pays the whole path: expect `prm_tokens_computed`
    near `prm_tokens_requested` for new paths.
    """

    def __init__(self, model_dir: str | Path, fmt: StepFormat, config: EngineConfig | None = None):
        from vllm import LLM

        self.model_dir = resolve_model(model_dir, "PRM")
        encoder = StepEncoder.load(self.model_dir, fmt, "PRM")
        if len(encoder.sep_ids) != 1:
            raise ModelDirError(f"a classifier PRM's step tag must be one token; {fmt.sep!r} is {len(encoder.sep_ids)} in PRM {self.model_dir}")
        kwargs = {**(config or EngineConfig()).llm_kwargs(), "enable_prefix_caching": False}
        self.llm = LLM(model=str(self.model_dir), runner="pooling", pooler_config={"step_tag_id": encoder.sep_id}, **kwargs)
        super().__init__(encoder, self.llm.llm_engine.model_config.max_model_len)

    def reset_caches(self) -> None:
        super().reset_caches()
        self.llm.reset_prefix_cache()  # off for this scorer; cleared all the same

    def _compute(self, jobs: list[Job]) -> int:
        from vllm import TokensPrompt

        prompts = [job.ids[: job.seps[-1] + 1] for job in jobs]
        outputs = self.llm.encode([TokensPrompt(prompt_token_ids=p) for p in prompts], pooling_task="token_classify", use_tqdm=False)
        for job, out in zip(jobs, outputs):
            probs = out.outputs.data  # one softmaxed row per step tag in the sequence
            if probs.ndim != 2 or len(probs) != len(job.seps):
                raise ValueError(f"the PRM returned {tuple(probs.shape)} scores for {len(job.seps)} step tags "
                                 f"(does the question contain the tag {self.encoder.fmt.sep!r}?)")
            for k in range(job.first, len(job.seps)):
                self.memo.put(tuple(job.ids[: job.seps[k] + 1]), checked(float(probs[k, 1])))
        return sum(len(p) for p in prompts)


def classifier_head(model_dir: Path):
    """The two-class head of a Qwen2.5-Math-PRM-style directory: score = Linear -> ReLU -> Linear,
    its weights `score.0.*` and `score.2.*` found in whichever safetensors shard holds them."""
    import torch
    from safetensors import safe_open

    weights = {}
    for shard in sorted(model_dir.glob("*.safetensors")):
        with safe_open(str(shard), framework="pt") as f:
            weights.update({k.removeprefix("score."): f.get_tensor(k) for k in f.keys() if k.startswith("score.")})
    if not {"0.weight", "2.weight"} <= set(weights):
        raise ModelDirError(f"PRM {model_dir} has no classification head (score.0.weight, score.2.weight): not a Qwen2ForProcessRewardModel directory")
    hidden, labels = weights["0.weight"].shape[1], weights["2.weight"].shape[0]
    head = torch.nn.Sequential(torch.nn.Linear(hidden, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, labels))
    head.load_state_dict({k: v.float() for k, v in weights.items()})
    return head


class HFPRM(PrefixCachedScorer):
    """kind="token": a causal LM, P(correct) from its Positive/Negative logits at each SEP.
    kind="classifier": a trunk plus a two-class head at each step tag (Qwen2.5-Math-PRM); the
    transformers twin of VLLMClassifierPRM, and prefix-cached, which vLLM's pooling path is not.

    The KV of scored paths lives in one preallocated pool of token slots (engine.kv_pool), up to
    `kv_tokens` tokens; `reuse_kv=False` runs every path whole with no KV kept (the plain
    batched forward a search-and-learn-style loop does; scores still remembered per prefix)."""

    def __init__(self, model_dir: str | Path, fmt: StepFormat = ARITH_FORMAT, device: str = "cpu",
                 kv_tokens: int = 1 << 18, batch_size: int = 64, kind: str = "token", reuse_kv: bool = True):
        import torch
        from transformers import AutoModel, AutoModelForCausalLM

        from engine.kv_pool import KVPool

        if kind not in PRM_KINDS:
            raise ValueError(f"kind must be one of {PRM_KINDS}, got {kind!r}")
        self.model_dir = resolve_model(model_dir, "PRM")
        labels = kind == "token"
        encoder = StepEncoder.load(self.model_dir, fmt, "PRM", labels=labels)
        self.head = classifier_head(self.model_dir).to(device) if kind == "classifier" else None
        model_class = AutoModelForCausalLM if labels else AutoModel  # AutoModel: the trunk, weights model.*
        self.model = model_class.from_pretrained(str(self.model_dir), dtype=torch.float32).to(device).eval()
        self.device, self.batch_size, self.reuse_kv = device, batch_size, reuse_kv
        self.pad_id = encoder.tokenizer.pad_token_id if encoder.tokenizer.pad_token_id is not None else 0
        self.kv = KVPool(max_tokens=kv_tokens, device=device)
        max_len = getattr(self.model.config, "max_position_embeddings", 1 << 30)
        super().__init__(encoder, max_len)

    def reset_caches(self) -> None:
        super().reset_caches()
        self.kv.clear()

    def _cached_prefix(self, job: Job):
        """The longest prefix of the job whose KV the pool holds, ending before its first unscored SEP: (length, slots)."""
        if self.reuse_kv:
            for b in [s + 1 for s in reversed(job.seps[: job.first])] + [job.prompt_len]:
                slots = self.kv.lookup(tuple(job.ids[:b]))
                if slots is not None:
                    return b, slots
        return 0, None

    def _compute(self, jobs: list[Job]) -> int:
        """Batches of up to batch_size jobs, each resuming from its own cached prefix."""
        import torch

        # a prompt that several jobs need and the pool lacks is run once, first (siblings in one batch cannot share KV)
        needed = Counter(tuple(job.ids[: job.prompt_len]) for job in jobs if self._cached_prefix(job)[0] < job.prompt_len)
        prompts = [Job(list(ids), [], 0, len(ids)) for ids, count in needed.items() if count > 1 and self.reuse_kv]
        computed = 0
        with torch.no_grad():
            for group in (prompts, jobs):
                group = sorted(group, key=lambda job: len(job.ids) - self._cached_prefix(job)[0])  # similar numbers of new tokens together
                for start in range(0, len(group), self.batch_size):  # prefixes looked up per batch: earlier batches may evict
                    computed += self._forward([(job, *self._cached_prefix(job)) for job in group[start : start + self.batch_size]])
        return computed

    def _forward(self, batch: list) -> int:
        """One forward over the new tokens of jobs (job, cached length b, its slots) with cached prefixes of any lengths.

        Row i reads its b_i cached tokens left-aligned in a past of width B = max b_i, the gap after
        them masked out; its new tokens follow at positions b_i, b_i + 1, ... (explicit
        position_ids, so RoPE matches a plain forward pass), right-padded."""
        import torch

        from engine.kv_pool import PooledBatch

        bs = [b for _, b, _ in batch]
        suffixes = [job.ids[b:] for job, b, _ in batch]
        B, W = max(bs), max(len(x) for x in suffixes)
        input_ids = torch.tensor([x + [self.pad_id] * (W - len(x)) for x in suffixes], device=self.device)
        position_ids = torch.tensor([[b + t for t in range(W)] for b in bs], device=self.device)
        mask = torch.tensor([[1] * b + [0] * (B - b) + [1] * len(x) + [0] * (W - len(x)) for b, x in zip(bs, suffixes)], device=self.device)
        pooled, kwargs = None, {"use_cache": False}
        if self.reuse_kv:
            empty = torch.zeros(0, dtype=torch.long, device=self.device)
            pooled = PooledBatch(self.kv, [empty if slots is None else slots for _, _, slots in batch], [len(x) for x in suffixes])
            kwargs = {"past_key_values": pooled.cache(self.model.config.num_hidden_layers), "use_cache": True}
        trunk = self.model if self.head is not None else self.model.get_decoder()
        hidden = trunk(input_ids=input_ids, attention_mask=mask, position_ids=position_ids, **kwargs).last_hidden_state
        # the head only where a score is read (the new SEPs): the LM head over every position of a
        # large-vocabulary PRM would cost more than its trunk, and the logits tensor more memory
        rows = [(i, s - b) for i, (job, b, _) in enumerate(batch) for s in job.seps[job.first :]]
        scores = iter([])
        if rows:
            at_seps = hidden[torch.tensor(rows, device=self.device).T.unbind()]
            if self.head is None:  # token PRM: the Positive and Negative logits
                logits = self.model.get_output_embeddings()(at_seps)[:, [self.encoder.positive_id, self.encoder.negative_id]].float()
                cap = getattr(self.model.config, "final_logit_softcapping", None)
                logits = torch.tanh(logits / cap) * cap if cap else logits
            else:  # classifier: the head's [wrong, right] logits, as (right, wrong) for p_correct
                logits = self.head(at_seps.float())[:, [1, 0]]
            scores = iter(logits.cpu().tolist())
        for i, (job, b, _) in enumerate(batch):
            for s in job.seps[job.first :]:
                self.memo.put(tuple(job.ids[: s + 1]), p_correct(*next(scores)))
            if pooled is not None:  # the prompt (siblings share it) and every scored step's prefix (children extend them)
                slots = pooled.rows_slots[i]
                for end in dict.fromkeys([job.prompt_len] + [s + 1 for s in job.seps] + [len(job.ids)]):
                    if end > b:
                        self.kv.remember(tuple(job.ids[:end]), slots[:end])
        return sum(len(x) for x in suffixes)
