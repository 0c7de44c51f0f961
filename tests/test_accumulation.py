"""Gradient accumulation and DDP do not change what the PRM and KTO trainers optimize.

Batch 2 x accumulation 1 and batch 1 x accumulation 2 must make the same first update. With
plain SGD (no clipping, constant lr) the update is -lr * gradient, so a gradient scaled by
the accumulation steps (the bug this guards against) shows as a twice larger update.
"""

import json

import pytest
import torch
from safetensors.torch import load_file

from engine.models import DEFAULT_POLICY
from trainers import kto, prm
from trainers.losses import kto_reference_point

SGD = dict(max_steps=1, learning_rate=0.1, optim="sgd", lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0,
           max_grad_norm=0.0, logging_steps=1, save_steps=100, disable_tqdm=True, report_to=[], seed=0)


def first_update(train, config_class, out_dir, batch: int, accumulation: int, **kwargs) -> dict[str, torch.Tensor]:
    train(config_class(output_dir=str(out_dir), per_device_train_batch_size=batch, gradient_accumulation_steps=accumulation, **SGD, **kwargs))
    before, after = load_file(str(DEFAULT_POLICY / "model.safetensors")), load_file(str(out_dir / "model.safetensors"))
    return {k: after[k] - before[k] for k in before}


def assert_same_update(a: dict, b: dict) -> None:
    norm = sum(v.norm() ** 2 for v in a.values()) ** 0.5
    assert norm > 1e-4  # the step did move the weights
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-6 * float(norm))


def write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_prm_update_is_the_mean_over_all_steps_whatever_the_accumulation(tmp_path):
    # rows of different lengths: a per-micro-batch mean would weight the 1-step row's step 3x
    rows = [{"question": "3+4*5-2", "completions": ["3+20-2", "23-2", "21"], "labels": [True, False, False]},
            {"question": "7*8", "completions": ["55"], "labels": [False]}]
    data = write(tmp_path / "rows.jsonl", rows)
    kw = dict(init_model=str(DEFAULT_POLICY), train_file=data)
    one = first_update(prm.train, prm.PRMConfig, tmp_path / "b2", 2, 1, **kw)
    two = first_update(prm.train, prm.PRMConfig, tmp_path / "b1", 1, 2, **kw)
    assert_same_update(one, two)

    # and both are -lr * the gradient of the mean loss over the 4 labelled steps, by hand
    from transformers import AutoModelForCausalLM, AutoTokenizer, DataCollatorForSeq2Seq

    from engine.encoding import StepEncoder
    from engine.format import ARITH_FORMAT
    from trainers.data import prm_dataset
    from trainers.losses import prm_loss

    tok = AutoTokenizer.from_pretrained(str(DEFAULT_POLICY))
    enc = StepEncoder(tok, ARITH_FORMAT, labels=True)
    batch = DataCollatorForSeq2Seq(tok, padding=True)(list(prm_dataset(rows, enc, 512)))
    model = AutoModelForCausalLM.from_pretrained(str(DEFAULT_POLICY), dtype=torch.float32)
    labels = batch.pop("labels")
    prm_loss(model(**batch).logits, labels, enc.positive_id, enc.negative_id).backward()
    by_hand = {k: -SGD["learning_rate"] * p.grad for k, p in model.named_parameters()}
    assert_same_update({k: one[k] for k in by_hand}, by_hand)


def test_kto_update_is_the_same_whatever_the_accumulation(tmp_path):
    rows = [{"question": "3+4*5-2", "completion": "3+20-2<sep>23-2<sep>21<sep></s>", "label": True},
            {"question": "7*8", "completion": "55<sep></s>", "label": False}]
    kw = dict(init_model=str(DEFAULT_POLICY), train_file=write(tmp_path / "rows.jsonl", rows), beta=1.0)
    one = first_update(kto.train, kto.KTOConfig, tmp_path / "b2", 2, 1, **kw)
    two = first_update(kto.train, kto.KTOConfig, tmp_path / "b1", 1, 2, **kw)
    assert_same_update(one, two)


def _reference_point_rank(rank: int, world: int, init: str, out: str) -> None:
    torch.distributed.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    # rank 0 holds log-ratios 1, 2 (mean 1.5); rank 1 holds 6 (mean 6): the shared point is 3, not either
    policy = torch.tensor([[1.0, 2.0], [6.0]][rank])
    z = kto_reference_point(policy, torch.zeros_like(policy))
    torch.save(z, f"{out}/z{rank}.pt")
    torch.distributed.destroy_process_group()


def test_kto_reference_point_is_shared_across_ranks(tmp_path):
    import torch.multiprocessing as mp

    mp.spawn(_reference_point_rank, args=(2, f"file://{tmp_path}/rendezvous", str(tmp_path)), nprocs=2)
    assert [torch.load(tmp_path / f"z{r}.pt").item() for r in range(2)] == [pytest.approx(3.0)] * 2
    # one process: the plain clamped mean
    assert kto_reference_point(torch.tensor([-1.0, -2.0]), torch.zeros(2)).item() == 0.0
    assert kto_reference_point(torch.tensor([]), torch.tensor([])).item() == 0.0
