"""KTO: learn from unpaired good and bad completions (Ethayarajh et al., 2024).

    python -m trainers.kto --output_dir models/kto                     # embedded-world demo data
    python -m trainers.kto --train_file unpaired.jsonl --init_model DIR --output_dir out
    python -m trainers.kto --world countdown --recipe recipes/countdown.yaml --init_model models/countdown-policy \
        --output_dir runs/kto-cd --data_only                           # the countdown policy's own steps, oracle-labelled
    python -m trainers.kto --train_file runs/kto-cd/data/train.jsonl ... --loss_type sft   # the same rows, desirable only

Rows are `{"prompt": str, "completion": str, "label": true|false}` (or `"question"`, which
goes through the step format's prompt template, optionally with `"prefix_steps": [...]`, the
steps already taken, which then belong to the prompt). By default the data comes from the
embedded world (`--world`): the SFT policy samples solutions of fresh problems (through
engine.Policy) and the world's exact labels judge them, per step by default (`--granularity step`: each step up
to the first wrong one is a row, its prompt the question and the steps before it) or per
whole sample (`--granularity completion`: desirable iff every step is right and the answer
is correct). The rows are written to `<output_dir>/data/train.jsonl` and reused on a rerun.

The reference model is a frozen copy of the starting model. Each batch also pairs every
completion with the *next* row's prompt (mismatched pairs): their log-ratio, averaged,
clamped at 0 and detached, is the KL reference point z_ref (trainers.losses.kto_loss).
When the classes are imbalanced and no weights are given, the desirable weight is set so
that lambda_D * n_D / (lambda_U * n_U) lies in [1, 4/3] (the paper's recommendation), with a
warning. Logs rewards/chosen, rewards/rejected, rewards/margins and kl.

`--loss_type sft` is the control at equal data and steps: rejection-sampling fine-tuning, the
token-mean NLL of the desirable rows alone (no reference model).
"""

from __future__ import annotations

import copy
import json
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM, Trainer

from engine.encoding import StepEncoder
from engine.models import DEFAULT_POLICY, resolve_model
from engine.types import StepPath
from problems import arith
from problems.datasets import DatasetError, read_jsonl
from trainers.common import StepTrainingArguments, cli, fit
from trainers.data import row_prompt_ids, write_jsonl
from trainers.losses import IGNORE_INDEX, kto_loss, kto_reference_point, sequence_logps


@dataclass
class KTOConfig(StepTrainingArguments):
    """KTO options; every transformers TrainingArguments option is accepted too."""

    init_model: str = field(default=str(DEFAULT_POLICY), metadata={"help": "Policy to improve (also the frozen reference)."})
    train_file: str | None = field(default=None, metadata={"help": "Unpaired JSONL {'prompt'|'question', 'completion', 'label'}. Default: verifier-labelled policy samples."})
    world: str = field(default="arith", metadata={"help": "Embedded world of the default data and its exact labels: arith or countdown."})
    loss_type: str = field(default="kto", metadata={"help": "'kto', or 'sft': the rejection-sampling fine-tuning control on the same rows (token-mean NLL of the desirable completions; the undesirable rows are dropped): if KTO does not beat it, the undesirable rows taught nothing."})
    nll_weight: float = field(default=0.0, metadata={"help": "alpha > 0: add alpha times the token-mean NLL of the batch's desirable completions to the KTO loss (an anchor, as DPO's rpo_alpha; the clamped KL reference point alone does not keep the policy's likelihood in place)."})
    beta: float = field(default=0.1, metadata={"help": "KTO beta: how far the policy may move from the reference."})
    desirable_weight: float | None = field(default=None, metadata={"help": "lambda_D. Default: 1, or the [1, 4/3] balancing rule when the classes are imbalanced."})
    undesirable_weight: float = field(default=1.0, metadata={"help": "lambda_U."})
    length_normalized: bool = field(default=False, metadata={"help": "Divide sequence log-probs by the number of completion tokens (the course notebook's per-token variant)."})
    sample_problems: int = field(default=5000, metadata={"help": "Default data: fresh problems to sample on (arith: 2-6 operands; countdown: 3-6 numbers)."})
    samples_per_problem: int = field(default=4, metadata={"help": "Default data: samples per problem."})
    sample_temperature: float = field(default=1.0, metadata={"help": "Default data: sampling temperature."})
    granularity: str = field(default="step", metadata={"help": "Default data: 'step' (one row per step: the steps before it are the prompt, desirable iff right; nothing after the first wrong step) or 'completion' (one row per whole sample)."})
    data_only: bool = field(default=False, metadata={"help": "Make (or reuse) the default data and stop: sample where vLLM runs, train elsewhere (a GPU) with --train_file."})
    completion_until: str | None = field(default=None, metadata={"help": "Keep only the part of each completion before this string (countdown: '=' keeps the move 'a op b' and drops its result and the numbers left, which the move determines): the loss then moves the choice, not the shared arithmetic and bookkeeping."})
    keep_desirable: float = field(default=1.0, metadata={"help": "Keep this fraction of desirable rows (e.g. 0.1 to test imbalance)."})
    precompute_ref_log_probs: bool = field(default=True, metadata={"help": "Score every row (and its mismatched pair) under the frozen reference once, before training, instead of two reference forward passes per step (as TRL's option of the same name; the reference never changes, so the loss is the same)."})
    # Defaults that differ from StepTrainingArguments'.
    output_dir: str = field(default="models/kto", metadata={"help": "Where checkpoints, data and the final model go."})
    max_steps: int = field(default=400, metadata={"help": "Total optimizer steps."})
    per_device_train_batch_size: int = field(default=32, metadata={"help": "Batch size per device."})
    learning_rate: float = field(default=2e-5, metadata={"help": "Peak learning rate."})
    warmup_steps: float = field(default=30, metadata={"help": "Linear warm-up steps."})
    logging_steps: float = field(default=50, metadata={"help": "Log every this many steps."})
    save_steps: float = field(default=200, metadata={"help": "Checkpoint every this many steps."})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay."})


# -- data -------------------------------------------------------------------------------


def load_unpaired_jsonl(path: str | Path) -> list[dict]:
    rows = []
    for lineno, row in read_jsonl(path):
        where = f"{path}:{lineno}"
        if not isinstance(row.get("prompt", row.get("question")), str):
            raise DatasetError(f"{where}: needs a string 'prompt' or 'question'")
        if not isinstance(row.get("completion"), str) or not row["completion"]:
            raise DatasetError(f"{where}: needs a non-empty string 'completion'")
        if not isinstance(row.get("label"), bool):
            raise DatasetError(f"{where}: 'label' must be true or false")
        prefix = row.get("prefix_steps", [])
        if not isinstance(prefix, list) or not all(isinstance(x, str) for x in prefix) or (prefix and "question" not in row):
            raise DatasetError(f"{where}: 'prefix_steps' must be a list of strings, with a 'question'")
        rows.append(row)
    return rows


def tokenize_unpaired(row: dict, encoder: StepEncoder) -> dict:
    if row.get("prefix_steps"):  # a step-level row: the steps already taken belong to the prompt
        prompt_ids = encoder.path_ids(row["question"], row["prefix_steps"])[0]
    else:
        prompt_ids = row_prompt_ids(row, encoder)
    fmt, completion = encoder.fmt, row["completion"]
    steps, finished = fmt.split_steps(completion), fmt.is_finished(completion)
    if fmt.join_steps(steps, finished) == completion:  # in the step format: tokens exactly as a path's
        completion_ids = encoder.response_ids(steps, finished)
    else:
        completion_ids = list(encoder.tokenizer(completion, add_special_tokens=False)["input_ids"])
    return {"prompt_ids": prompt_ids, "completion_ids": completion_ids, "label": row["label"]}


def pad(sequences: list[list[int]], value: int) -> torch.Tensor:
    width = max(len(s) for s in sequences)
    return torch.tensor([s + [value] * (width - len(s)) for s in sequences])


def mismatched_prompts(prompts: list[list[int]]) -> list[list[int]]:
    """For each row, the prompt of the next row (cyclically) whose prompt differs: the KL pair's
    prompt. Fixed per row in the dataset, not taken from the batch, so it is a true mismatch at
    any batch size (within a batch of one, the next row would be the row itself)."""
    n = len(prompts)
    out = []
    for i in range(n):
        j = next((j % n for j in range(i + 1, i + n) if prompts[j % n] != prompts[i]), None)
        if j is None:
            raise DatasetError("KTO needs rows with at least two different prompts (its KL reference point pairs a completion with another row's prompt)")
        out.append(prompts[j])
    return out


class KTOCollator:
    """Batches of prompt+completion, plus the mismatched pairs: each completion under its row's
    `kl_prompt_ids` (another row's prompt, see mismatched_prompts)."""

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def _pack(self, prompts: list[list[int]], completions: list[list[int]], prefix: str) -> dict:
        ids = [p + c for p, c in zip(prompts, completions)]
        labels = [[IGNORE_INDEX] * len(p) + c for p, c in zip(prompts, completions)]
        return {
            f"{prefix}input_ids": pad(ids, self.pad_id),
            f"{prefix}attention_mask": pad([[1] * len(x) for x in ids], 0),
            f"{prefix}labels": pad(labels, IGNORE_INDEX),
        }

    def __call__(self, examples: list[dict]) -> dict:
        prompts = [e["prompt_ids"] for e in examples]
        completions = [e["completion_ids"] for e in examples]
        others = [e["kl_prompt_ids"] for e in examples]
        batch = {**self._pack(prompts, completions, ""), **self._pack(others, completions, "kl_")}
        batch["label"] = torch.tensor([bool(e["label"]) for e in examples])
        for key in ("reference_logps", "reference_kl_logps"):  # precomputed (precompute_reference_logps)
            if key in examples[0]:
                batch[key] = torch.tensor([e[key] for e in examples], dtype=torch.float32)
        return batch


def balanced_desirable_weight(n_desirable: int, n_undesirable: int, undesirable_weight: float) -> float:
    """lambda_D such that lambda_D * n_D / (lambda_U * n_U) is in [1, 4/3] (1 if it already is)."""
    if n_desirable == 0 or n_undesirable == 0:
        return 1.0
    ratio = n_desirable / (undesirable_weight * n_undesirable)
    if 1.0 <= ratio <= 4 / 3:
        return 1.0
    target = 1.0 if ratio < 1.0 else 4 / 3
    return target / ratio


# -- the trainer -------------------------------------------------------------------------


def completion_logps(model, batch: dict, prefix: str = "", length_normalized: bool = False) -> torch.Tensor:
    """log p(completion | prompt) of each row of a KTOCollator batch; prefix "kl_" scores each
    completion under its mismatched prompt."""
    logits = model(input_ids=batch[f"{prefix}input_ids"], attention_mask=batch[f"{prefix}attention_mask"]).logits
    return sequence_logps(logits, batch[f"{prefix}labels"], length_normalized)


class KTOTrainer(Trainer):
    """The KTO loss on each micro-batch: the mean over its rows, with z_ref from the mismatched
    pairs of every rank. The trainer divides it by the accumulation steps (micro-batches are
    equal in size: dataloader_drop_last), so batch 2 x accumulation 1 and batch 1 x
    accumulation 2 make the same update."""

    loss_is_scaled_for_ga = False

    def __init__(self, *args, ref_model, beta: float, desirable_weight: float, undesirable_weight: float, length_normalized: bool,
                 loss_type: str = "kto", nll_weight: float = 0.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.ref_model = ref_model.eval().requires_grad_(False) if ref_model is not None else None
        self.loss_type, self.nll_weight = loss_type, nll_weight
        self.beta, self.length_normalized = beta, length_normalized
        self.desirable_weight, self.undesirable_weight = desirable_weight, undesirable_weight
        self._metrics: dict[str, list[float]] = defaultdict(list)

    def _logps(self, model, inputs: dict, prefix: str) -> torch.Tensor:
        return completion_logps(model, inputs, prefix, self.length_normalized)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        label = inputs["label"]
        policy = self._logps(model, inputs, "")
        if self.loss_type == "sft":  # the control: every row is desirable; token-mean NLL of the batch
            loss = self._nll(policy, inputs["labels"], label)
            return (loss, {"losses": loss}) if return_outputs else loss
        with torch.no_grad():  # z_ref is detached: its forward passes need no graph
            policy_kl = self._logps(model, inputs, "kl_")
            if "reference_logps" in inputs:  # scored once before training (precompute_reference_logps)
                reference, reference_kl = inputs["reference_logps"], inputs["reference_kl_logps"]
            else:
                self.ref_model.to(policy.device)
                reference = self._logps(self.ref_model, inputs, "")
                reference_kl = self._logps(self.ref_model, inputs, "kl_")
        losses, chosen_rewards, rejected_rewards, kl = kto_loss(
            policy[label], policy[~label], policy_kl, reference[label], reference[~label], reference_kl,
            beta=self.beta, desirable_weight=self.desirable_weight, undesirable_weight=self.undesirable_weight,
            reference_point=kto_reference_point(policy_kl, reference_kl),  # over every rank's pairs
        )
        if chosen_rewards.numel():
            self._metrics["rewards/chosen"].append(chosen_rewards.mean().item())
        if rejected_rewards.numel():
            self._metrics["rewards/rejected"].append(rejected_rewards.mean().item())
        if chosen_rewards.numel() and rejected_rewards.numel():
            self._metrics["rewards/margins"].append(chosen_rewards.mean().item() - rejected_rewards.mean().item())
        self._metrics["kl"].append(kl.item())
        loss = losses.mean()
        if self.nll_weight > 0 and label.any():
            loss = loss + self.nll_weight * self._nll(policy, inputs["labels"], label)
        return (loss, {"losses": losses}) if return_outputs else loss

    def _nll(self, logps: torch.Tensor, labels: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """Token-mean NLL of the completions of the selected rows (logps: their summed log-probs)."""
        nll = -logps[rows].sum() / (labels[rows][:, 1:] != IGNORE_INDEX).sum().clamp(min=1)
        self._metrics["nll"].append(nll.item())
        return nll

    def log(self, logs: dict, *args, **kwargs) -> None:
        for key, values in self._metrics.items():
            logs[key] = round(sum(values) / len(values), 5)
        self._metrics.clear()
        super().log(logs, *args, **kwargs)


def precompute_reference_logps(model, dataset: Dataset, collator: KTOCollator, batch_size: int, length_normalized: bool = False,
                               device: str | torch.device = "cpu") -> Dataset:
    """The frozen reference's log p(completion | prompt) and log p(completion | KL prompt) of every
    row, as two dataset columns the collator passes on: two forward passes per row in all, instead
    of two per row per step."""
    from tqdm import tqdm

    model = model.to(device).eval()
    reference, reference_kl = [], []
    with torch.no_grad():
        for start in tqdm(range(0, len(dataset), batch_size), desc="reference log-probs", mininterval=10):
            batch = collator([dataset[i] for i in range(start, min(start + batch_size, len(dataset)))])
            batch = {k: v.to(device) for k, v in batch.items()}
            reference.extend(completion_logps(model, batch, "", length_normalized).tolist())
            reference_kl.extend(completion_logps(model, batch, "kl_", length_normalized).tolist())
    return dataset.add_column("reference_logps", reference).add_column("reference_kl_logps", reference_kl)


# -- default data: the embedded world ----------------------------------------------------


def completion_rows(question: str, steps: tuple[str, ...], finished: bool, fmt, world=arith) -> list[dict]:
    """One row for a whole sample: desirable iff it finished, every step's exact label is
    Positive and the world's grader says it is solved."""
    good = finished and all(world.step_labels(question, list(steps))) and world.solved(question, list(steps), True)
    return [{"question": question, "completion": fmt.join_steps(steps, finished=finished), "label": good}]


def step_rows(question: str, steps: tuple[str, ...], finished: bool, fmt, world=arith) -> list[dict]:
    """One row per step up to the first undesirable one: prompt = question + the steps before it,
    completion = the step (+ EOS after the last step of a finished sample), label = the world's
    exact process label (arith: the step is right; countdown: it is legal and the target is
    still reachable), and a finishing step is desirable only if the sample is solved.

    A wrong digit late in a sample then pushes down that step alone, not the right steps it
    shares with good samples (at the whole-sample level it does, and the policy's arithmetic
    degrades); on countdown, the move that loses the target is the row pushed down.
    """
    labels = world.step_labels(question, list(steps))
    rows = []
    for k, step in enumerate(steps):
        ends = finished and k == len(steps) - 1
        good = labels[k] and (not ends or world.solved(question, list(steps), True))
        rows.append({"question": question, "prefix_steps": list(steps[:k]),
                     "completion": fmt.join_steps([step], finished=ends), "label": good})
        if not good:
            break  # later steps build on a wrong state
    return rows


def sampled_rows(cfg: KTOConfig) -> list[dict]:
    """Policy samples on the world's fresh problems (none from dev or test), labelled exactly."""
    from engine.policy import Policy
    from problems.worlds import get_world

    if cfg.granularity not in ("step", "completion"):
        raise ValueError(f"--granularity must be 'step' or 'completion', got {cfg.granularity!r}")
    fmt, world = cfg.step_format, get_world(cfg.world)
    problems = world.fresh_problems(cfg.sample_problems, seed=cfg.seed + 13)
    policy = Policy(cfg.init_model, fmt)
    rollouts = policy.complete([StepPath(p.question) for p in problems], cfg.samples_per_problem, temperature=cfg.sample_temperature, max_tokens=256).paths
    del policy
    make = step_rows if cfg.granularity == "step" else completion_rows
    rows = {}
    for problem, paths in zip(problems, rollouts):
        for path in paths:
            for row in make(problem.question, path.steps, path.finished, fmt, world) if path.steps else []:
                rows.setdefault(json.dumps(row, sort_keys=True), row)  # each distinct row once
    return list(rows.values())


def default_data(cfg: KTOConfig) -> Path:
    path = Path(cfg.output_dir) / "data" / "train.jsonl"
    if not path.is_file():
        write_jsonl(path, sampled_rows(cfg))
    return path


def selected_rows(rows: list[dict], cfg: KTOConfig) -> list[dict]:
    """The rows a run trains on: each completion cut at --completion_until, the desirable rows
    only for --loss_type sft, then --keep_desirable of the desirable rows (seeded)."""
    import random

    if cfg.loss_type not in ("kto", "sft"):
        raise ValueError(f"--loss_type must be 'kto' or 'sft', got {cfg.loss_type!r}")
    if cfg.completion_until:
        rows = [{**r, "completion": r["completion"].split(cfg.completion_until)[0]} for r in rows]
        rows = [r for r in rows if r["completion"]]
    if cfg.loss_type == "sft":
        rows = [r for r in rows if r["label"]]  # rejection sampling: the desirable rows only
    if cfg.keep_desirable < 1.0:
        rng = random.Random(cfg.seed)
        rows = [r for r in rows if not r["label"] or rng.random() < cfg.keep_desirable]
    return rows


def train(cfg: KTOConfig) -> Trainer | None:
    fmt = cfg.step_format
    init = resolve_model(cfg.init_model, "init model")
    encoder = StepEncoder.load(init, fmt, "init model")
    tokenizer = encoder.tokenizer
    data = cfg.train_file or default_data(cfg)
    if cfg.data_only:
        return None
    rows = selected_rows(load_unpaired_jsonl(data), cfg)
    n_d, n_u = sum(r["label"] for r in rows), sum(not r["label"] for r in rows)
    desirable_weight = cfg.desirable_weight
    if desirable_weight is None:
        desirable_weight = balanced_desirable_weight(n_d, n_u, cfg.undesirable_weight)
        if desirable_weight != 1.0:
            warnings.warn(f"imbalanced data ({n_d} desirable, {n_u} undesirable): desirable_weight set to {desirable_weight:.3f}", stacklevel=2)
    print(f"KTO data: {n_d} desirable, {n_u} undesirable rows; lambda_D={desirable_weight:.3f}, lambda_U={cfg.undesirable_weight}")

    dataset = Dataset.from_list([tokenize_unpaired(r, encoder) for r in rows])
    dataset = dataset.filter(lambda ex: len(ex["prompt_ids"]) + len(ex["completion_ids"]) <= cfg.max_length)
    dataset = dataset.add_column("kl_prompt_ids", mismatched_prompts(dataset["prompt_ids"]))
    model = AutoModelForCausalLM.from_pretrained(str(init), dtype=torch.float32)
    collator = KTOCollator(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id)
    ref_model = None
    if cfg.loss_type == "kto" and cfg.precompute_ref_log_probs:  # before training, the policy is the reference
        dataset = precompute_reference_logps(model, dataset, collator, 2 * cfg.per_device_train_batch_size, cfg.length_normalized, cfg.device)
    elif cfg.loss_type == "kto":
        ref_model = copy.deepcopy(model)
    trainer = KTOTrainer(
        model=model,
        args=cfg,
        train_dataset=dataset,
        data_collator=collator,
        processing_class=tokenizer,
        ref_model=ref_model,
        beta=cfg.beta,
        desirable_weight=desirable_weight,
        undesirable_weight=cfg.undesirable_weight,
        length_normalized=cfg.length_normalized,
        loss_type=cfg.loss_type,
        nll_weight=cfg.nll_weight,
    )
    out = fit(trainer, cfg.output_dir)
    (out / "kto_data.json").write_text(json.dumps({"desirable": n_d, "undesirable": n_u, "desirable_weight": desirable_weight}) + "\n")
    return trainer


def main(argv: list[str] | None = None) -> None:
    cli(KTOConfig, train, argv)


if __name__ == "__main__":
    main()
