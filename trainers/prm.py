"""PRM training: the LM head predicts Positive/Negative at every step's SEP (no new head).

    python -m trainers.prm --output_dir models/prm                       # the default PRM
    python -m trainers.prm --train_file steps.jsonl --eval_file dev.jsonl --init_model DIR

Data, by default, comes from the embedded world: the policy (through engine.Policy, one
batched vLLM call) rolls out solutions, and the exact verifier labels every step. A step
is Positive iff it and every step before it are correct: the first wrong step and
everything after it are Negative (steps after an error build on a wrong state; this is the
Math-Shepherd/PRM800K convention, and what first-error-step evaluation expects). The
reference solutions are added as all-Positive paths. The rollouts are written to
`<output_dir>/rollouts/*.jsonl` and reused on a rerun. Or bring TRL-style stepwise rows
`{"prompt" or "question", "completions": [step, ...], "labels": [bool, ...]}`.

The loss (trainers.losses.prm_loss) is a two-way cross-entropy over {Positive, Negative}
on the logits AT each SEP position: the exact quantity the scorers in engine.prm read.
After training, the transformers scorer reports step accuracy, F1 on Negative steps and
first-error-step accuracy on the held-out rows (`<output_dir>/prm_eval.json`).
"""

from __future__ import annotations

import gc
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, DataCollatorForSeq2Seq, Trainer

from engine.encoding import StepEncoder
from engine.format import StepFormat
from engine.models import DEFAULT_POLICY, ModelDirError, resolve_model
from engine.prm import RecordingPRM
from engine.types import StepPath
from problems import arith
from problems.metrics import prm_metrics
from problems.worlds import get_world
from recipes import load_recipe
from trainers.common import FreshModelArguments, StepTrainingArguments, cli, deepen, fit, fresh_llama
from trainers.data import load_prm_jsonl, prm_dataset, write_jsonl
from trainers.losses import IGNORE_INDEX, prm_loss


@dataclass
class PRMConfig(StepTrainingArguments, FreshModelArguments):
    """PRM options; every transformers TrainingArguments option is accepted too."""

    format_role = "prm"  # --recipe supplies the PRM's step format

    init_model: str = field(default=str(DEFAULT_POLICY), metadata={"help": "HF causal-LM directory to start from (default: the shipped policy), or 'fresh': a new Llama of the size options with the character tokenizer."})
    deepen: int = field(default=1, metadata={"help": "Repeat each layer of --init_model this many times, the copies starting as identity maps (trainers.common.deepen): a deeper PRM that starts as the init model."})
    train_file: str | None = field(default=None, metadata={"help": "Stepwise JSONL {'question'|'prompt', 'completions', 'labels'} (several: comma-separated). Default: verifier-labelled policy rollouts."})
    eval_file: str | None = field(default=None, metadata={"help": "Held-out stepwise JSONL. Default: rollouts on the arith dev split."})
    policy: str = field(default=str(DEFAULT_POLICY), metadata={"help": "Policy directory that makes the rollouts."})
    world: str = field(default="arith", metadata={"help": "Embedded world of the default rollouts and their exact labels: arith or countdown."})
    random_paths: int = field(default=0, metadata={"help": "Countdown: also this many random legal move sequences per rollout problem (and each with a last step that claims the target wrongly), oracle-labelled."})
    rollout_problems: int = field(default=20000, metadata={"help": "Problems (2-6 operands, none from dev/test) to roll out."})
    rollouts_per_problem: int = field(default=4, metadata={"help": "Rollouts per problem."})
    rollout_temperature: float = field(default=1.0, metadata={"help": "Sampling temperature of the rollouts."})
    eval_problems: int = field(default=300, metadata={"help": "Dev problems rolled out for the held-out metrics."})
    search_problems: int = field(default=0, metadata={"help": "Also the states a PRM-guided beam search scores (every partial path it proposes) on this many fresh problems, labelled by the world's exact labels: the states the search has to rank, its own near-misses included. Written to rollouts/search.jsonl and trained on with the rest."})
    search_prm: str | None = field(default=None, metadata={"help": "PRM directory that guides that beam search (e.g. the previous PRM generation); needed with --search_problems."})
    search_n: int = field(default=16, metadata={"help": "Beam search budget n of that search (its other settings: the recipe's search section, temperature included)."})
    sibling_problems: int = field(default=0, metadata={"help": "Countdown: also oracle-labelled sibling sets on this many fresh problems (countdown.sibling_paths: at each state of a walk, a balanced sample of its legal moves, each labelled; no policy needed, --dataset_num_proc processes). Written to rollouts/siblings.jsonl (reused on a rerun) and trained on with the rest."})
    sibling_per_state: int = field(default=8, metadata={"help": "Legal moves kept per state in those sibling sets."})
    corrupted_problems: int = field(default=0, metadata={"help": "Countdown: also oracle-labelled paths with one illegal step inside on this many fresh problems (countdown.corrupted_paths: a wrong result, a number dropped, added or changed, a number used twice, an inexact division rounded, an operand that is not there; the walk goes on after it; no policy needed). Written to rollouts/corrupted.jsonl (reused on a rerun) and trained on with the rest."})
    corrupted_per_problem: int = field(default=2, metadata={"help": "Corrupted walks per problem (also of --inexact_problems)."})
    inexact_problems: int = field(default=0, metadata={"help": "Countdown: also corrupted walks whose slip is always an inexact division, floored or rounded (countdown.inexact_division_paths; `34/6=5`, the policy's commonest illegal step) on this many fresh problems. Written to rollouts/inexact.jsonl (reused on a rerun) and trained on with the rest."})
    slip_pair_problems: int = field(default=0, metadata={"help": "Countdown: also slip pairs on this many fresh problems (countdown.slip_pairs: a walk cut at a near-miss of any kind taken from five or six numbers, and its twin cut at the walk's own legal step there; problems with fewer numbers give none). Written to rollouts/slip_pairs.jsonl (reused on a rerun) and trained on with the rest."})
    legality_problems: int = field(default=0, metadata={"help": "Countdown: also one-step legality rows on this many fresh problems (countdown.legality_steps: each state of a walk posed as a question, its own step Positive and a near-miss of it Negative; labels are legality alone), for a legality model. Written to rollouts/legality.jsonl (reused on a rerun) and trained on with the rest."})
    claimed_problems: int = field(default=0, metadata={"help": "Countdown: also oracle-labelled claim pairs on this many fresh problems (countdown.claimed_walks: a random walk with the target set to where it ends, all Positive, and the same walk claiming a near-miss target, Negative at the end; no policy needed). Written to rollouts/claimed.jsonl (reused on a rerun) and trained on with the rest."})
    claimed_per_problem: int = field(default=1, metadata={"help": "Claim pairs per problem."})
    legality_left: str | None = field(default=None, metadata={"help": "Countdown: at steps that leave this many numbers (comma-separated, e.g. 3,4: what the value model reads), train on legality alone (countdown.legality_labels: Positive iff legal so far), for a PRM served capped by the value model, which judges reachability there. The held-out --eval_file keeps the oracle's labels."})
    data_only: bool = field(default=False, metadata={"help": "Make (or reuse) the rollout files and stop: make the data where vLLM runs, train elsewhere (a GPU) with --train_file/--eval_file."})
    # Defaults that differ from StepTrainingArguments'.
    output_dir: str = field(default="models/prm", metadata={"help": "Where checkpoints, rollouts and the final model go."})
    max_steps: int = field(default=2000, metadata={"help": "Total optimizer steps."})
    per_device_train_batch_size: int = field(default=64, metadata={"help": "Batch size per device."})
    learning_rate: float = field(default=5e-4, metadata={"help": "Peak learning rate."})
    warmup_steps: float = field(default=100, metadata={"help": "Linear warm-up steps."})
    logging_steps: float = field(default=100, metadata={"help": "Log every this many steps."})
    save_steps: float = field(default=500, metadata={"help": "Checkpoint every this many steps."})

    def __post_init__(self):
        super().__post_init__()
        if self.legality_left is not None:
            counts = self.legality_left.split(",")
            if not all(c.strip().isdigit() for c in counts):
                raise ValueError(f"--legality_left takes counts of numbers left, comma-separated (e.g. 3,4); got {self.legality_left!r}")

    @property
    def legality_counts(self) -> set[int]:
        return {int(c) for c in self.legality_left.split(",")} if self.legality_left else set()


def rollout_rows(policy, problems: list, n: int, temperature: float, references: bool, world=arith) -> list[dict]:
    """Rollouts of the problems (one batched vLLM call) labelled by the world's exact labels,
    duplicates dropped; with references, each problem's reference solution too."""
    rollouts = policy.complete([StepPath(p.question) for p in problems], n, temperature=temperature, max_tokens=256).paths
    rows = []
    for problem, paths in zip(problems, rollouts):
        candidates = [path.steps for path in paths] + ([problem.steps] if references else [])
        for steps in dict.fromkeys(s for s in candidates if s):
            rows.append({"question": problem.question, "completions": list(steps), "labels": world.step_labels(problem.question, list(steps))})
    return rows


def negatives(rows: list[dict]) -> str:
    return f"{sum(not x for r in rows for x in r['labels'])}/{sum(len(r['labels']) for r in rows)} Negative steps"


def default_rollouts(cfg: PRMConfig) -> tuple[list[Path], Path]:
    """Make (or reuse) the embedded world's train/eval rollout files and, with --search_problems,
    the search states; one policy engine serves whatever has to be made."""
    out = Path(cfg.output_dir) / "rollouts"
    train_path, eval_path, search_path = out / "train.jsonl", out / "dev.jsonl", out / "search.jsonl"
    make_rollouts = not (train_path.is_file() and eval_path.is_file())
    make_search = cfg.search_problems > 0 and not search_path.is_file()
    if make_search and not cfg.search_prm:
        raise ModelDirError("--search_problems needs --search_prm: the PRM that guides the search")
    train_paths = [train_path, search_path] if cfg.search_problems else [train_path]
    if not (make_rollouts or make_search):
        print(f"reusing rollouts in {out}")
        return train_paths, eval_path
    from engine.policy import Policy

    world = get_world(cfg.world)
    policy = Policy(cfg.policy, cfg.format_of("policy"))  # the rollouts are the policy's, in its format
    prm = None
    if make_search:
        from engine.prm import VLLMPRM

        prm = VLLMPRM(resolve_model(cfg.search_prm, "search PRM"), cfg.format_of("prm"))
        rows = search_states(cfg, policy, prm, world)
        write_jsonl(search_path, rows)
        print(f"search states: {len(rows)} paths ({negatives(rows)}) from {cfg.search_problems} problems")
    if make_rollouts:
        problems = world.fresh_problems(cfg.rollout_problems, seed=cfg.seed + 7)  # arith: 2-6 operands
        # arith adds its reference solutions as all-Positive paths; countdown's policy rollouts hold
        # solutions already, and drawing references costs up to 0.5 s a problem
        train_rows = rollout_rows(policy, problems, cfg.rollouts_per_problem, cfg.rollout_temperature, references=world is arith, world=world)
        eval_rows = rollout_rows(policy, world.load_split("dev")[: cfg.eval_problems], cfg.rollouts_per_problem, cfg.rollout_temperature,
                                 references=False, world=world)
        if cfg.random_paths:
            train_rows += world.random_paths(problems, cfg.random_paths, seed=cfg.seed + 17)
        write_jsonl(train_path, train_rows)
        write_jsonl(eval_path, eval_rows)
        print(f"rollouts: {len(train_rows)} train paths ({negatives(train_rows)}), {len(eval_rows)} held-out paths")
    del policy, prm  # together: tearing one vLLM engine down resets the process-wide state the other uses
    gc.collect()
    return train_paths, eval_path


ORACLE_CHUNK = 500  # problems per work item: the rows depend on the seed, not on the process count
ORACLE_DATA = {  # kind: (world function, seed offset, the config fields of its problem count and its per-item count)
    "siblings": ("sibling_paths", 37_000, "sibling_problems", "sibling_per_state"),
    "corrupted": ("corrupted_paths", 53_000, "corrupted_problems", "corrupted_per_problem"),
    "claimed": ("claimed_walks", 71_000, "claimed_problems", "claimed_per_problem"),
    "inexact": ("inexact_division_paths", 89_000, "inexact_problems", "corrupted_per_problem"),
    "slip_pairs": ("slip_pairs", 97_000, "slip_pair_problems", "corrupted_per_problem"),
    "legality": ("legality_steps", 101_000, "legality_problems", "corrupted_per_problem"),
}


def _oracle_chunk(args: tuple) -> list[dict]:
    name, function, n, seed, per = args
    world = get_world(name)
    return getattr(world, function)(world.fresh_problems(n, seed=seed), per, seed=seed)


def oracle_file(cfg: PRMConfig, kind: str) -> Path:
    """Make (or reuse) rollouts/<kind>.jsonl: oracle-labelled paths on fresh problems that need no
    policy (ORACLE_DATA: sibling sets, corrupted walks, claim pairs), made by --dataset_num_proc processes."""
    function, seed_offset, count_field, per_field = ORACLE_DATA[kind]
    path = Path(cfg.output_dir) / "rollouts" / f"{kind}.jsonl"
    if path.is_file():
        print(f"reusing {kind} paths in {path}")
        return path
    world = get_world(cfg.world)
    if not hasattr(world, function):
        raise ValueError(f"--{count_field} needs a world with {function} (countdown), not {cfg.world!r}")
    world.load_split("dev")  # the held-out questions, computed once before the workers fork
    total = getattr(cfg, count_field)
    jobs = [(cfg.world, function, min(ORACLE_CHUNK, total - start), cfg.seed + seed_offset + start // ORACLE_CHUNK, getattr(cfg, per_field))
            for start in range(0, total, ORACLE_CHUNK)]
    workers = max(1, cfg.dataset_num_proc or 1)
    if workers == 1:
        chunks = [_oracle_chunk(job) for job in jobs]
    else:
        import multiprocessing

        with multiprocessing.get_context("fork").Pool(workers) as pool:
            chunks = pool.map(_oracle_chunk, jobs)
    rows = list({(r["question"], tuple(r["completions"])): r for chunk in chunks for r in chunk}.values())  # chunks may share a problem
    write_jsonl(path, rows)
    print(f"{kind} paths: {len(rows)} ({negatives(rows)}) from {total} problems")
    return path


def search_rows(policy, prm, problems: list, config, world, batch_size: int = 64) -> list[dict]:
    """Every path a beam search (guided by prm) scores on the problems, labelled by the world's
    exact labels; a path that is a prefix of another recorded path adds nothing and is dropped."""
    from tqdm import tqdm

    import strategies

    beam, recorder = strategies.get_strategy("beam"), RecordingPRM(prm)
    for start in tqdm(range(0, len(problems), batch_size), desc=f"beam n={config.n} states", unit="batch"):
        beam.search(problems[start : start + batch_size], policy, recorder, config)
    scored = dict.fromkeys((p.question, p.steps) for call in recorder.calls for p in call)  # an ordered set
    prefixes = {(q, steps[:k]) for q, steps in scored for k in range(len(steps))}
    return [{"question": q, "completions": list(steps), "labels": world.step_labels(q, list(steps))}
            for q, steps in scored if steps and (q, steps) not in prefixes]


def search_states(cfg: PRMConfig, policy, prm, world) -> list[dict]:
    """The states a beam search guided by prm (--search_prm) scores on --search_problems fresh
    problems (the recipe's search settings, budget --search_n), labelled exactly."""
    from strategies import SearchConfig

    search = load_recipe(cfg.recipe).search if cfg.recipe else {}
    config = SearchConfig(**{**search, "n": cfg.search_n, "seed": cfg.seed})
    return search_rows(policy, prm, world.fresh_problems(cfg.search_problems, seed=cfg.seed + 27), config, world)


class PRMTrainer(Trainer):
    """Trainer whose loss is prm_loss at the SEP positions (the model's own shifted LM loss is not used).

    The loss is the mean over every labelled step of the optimizer step's whole batch (all
    micro-batches of a gradient accumulation, all ranks), so batch 2 x accumulation 1 and batch
    1 x accumulation 2 make the same update: each micro-batch returns its summed loss divided
    by that count (transformers' num_items_in_batch: the labelled positions), and the trainer
    then neither divides by the accumulation steps nor averages the ranks away.
    """

    loss_is_scaled_for_ga = True

    def __init__(self, *args, positive_id: int, negative_id: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.positive_id, self.negative_id = positive_id, negative_id

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        labels = inputs.pop("labels")
        outputs = model(**inputs)
        total = prm_loss(outputs.logits, labels, self.positive_id, self.negative_id, reduction="sum")
        if num_items_in_batch is not None:  # training: the steps of the whole accumulated batch, all ranks
            loss = total / num_items_in_batch
            if self.args.average_tokens_across_devices and self.args.world_size > 1:
                loss = loss * self.args.world_size  # DDP averages gradients over ranks; the count already spans them
        else:  # evaluation (or a model that does not count): this batch's mean, split over accumulation steps
            loss = total / (labels != IGNORE_INDEX).sum().clamp(min=1)
            if model.training:
                loss = loss / self.current_gradient_accumulation_steps
        return (loss, outputs) if return_outputs else loss


def evaluate_prm(model_dir: str | Path, fmt: StepFormat, rows: list[dict]) -> dict:
    """Held-out step metrics of a PRM directory, scored with the transformers reference scorer."""
    from engine.prm import HFPRM

    scorer = HFPRM(model_dir, fmt)
    paths = [StepPath(r["question"], tuple(r["completions"])) for r in rows]
    return prm_metrics(scorer.score(paths).scores, [r["labels"] for r in rows])


def legality_rows(rows: list[dict], left: set[int]) -> list[dict]:
    """Countdown rows relabelled by countdown.legality_labels at the steps that leave `left` numbers."""
    from problems import countdown
    from problems.datasets import DatasetError

    out = []
    for k, row in enumerate(rows):
        question = row.get("question", row.get("prompt"))
        if not countdown.is_question(question or ""):
            raise DatasetError(f"--legality_left relabels countdown paths; training row {k} has the question {question!r}")
        out.append({**row, "labels": countdown.legality_labels(question, row["completions"], row["labels"], left)})
    return out


def train(cfg: PRMConfig) -> Trainer | None:
    fmt = cfg.step_format
    # the tokenizer first, so a bad init model fails before minutes of rollouts; the weights last
    model = None
    if cfg.init_model == "fresh":
        model, tokenizer = fresh_llama(cfg, fmt, cfg.seed)
        encoder = StepEncoder(tokenizer, fmt, "the fresh model", labels=True)
    else:
        init = resolve_model(cfg.init_model, "init model")
        encoder = StepEncoder.load(init, fmt, "init model", labels=True)
        tokenizer = encoder.tokenizer
    if cfg.train_file:
        train_paths = [Path(f) for f in cfg.train_file.split(",")]
        eval_path = Path(cfg.eval_file) if cfg.eval_file else None
    else:
        train_paths, eval_path = default_rollouts(cfg)
    train_paths += [oracle_file(cfg, kind) for kind, (_, _, count, _) in ORACLE_DATA.items() if getattr(cfg, count)]
    if cfg.data_only:
        return None
    rows = [row for f in train_paths for row in load_prm_jsonl(f)]
    if cfg.legality_left:
        rows = legality_rows(rows, cfg.legality_counts)
    dataset = prm_dataset(rows, encoder, cfg.max_length, cfg.dataset_num_proc)
    if model is None:
        model = deepen(AutoModelForCausalLM.from_pretrained(str(init), dtype=torch.float32), cfg.deepen)

    trainer = PRMTrainer(
        model=model,
        args=cfg,
        train_dataset=dataset,
        data_collator=DataCollatorForSeq2Seq(tokenizer, padding=True),
        processing_class=tokenizer,
        positive_id=encoder.positive_id,
        negative_id=encoder.negative_id,
    )
    out = fit(trainer, cfg.output_dir)
    if eval_path:
        metrics = evaluate_prm(out, fmt, load_prm_jsonl(eval_path))
        print(f"held-out PRM metrics: {json.dumps(metrics)}")
        (out / "prm_eval.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return trainer


def main(argv: list[str] | None = None) -> None:
    cli(PRMConfig, train, argv)


if __name__ == "__main__":
    main()
