"""Greedy decoding with transformers (batched `generate`): how a trainer measures the model it
holds in memory. The vLLM engine serves the search strategies; this path encodes prompts
through the same `StepEncoder`, so both see the same prompt ids."""

from __future__ import annotations

from typing import Sequence

import torch

from engine.encoding import StepEncoder
from problems.metrics import accuracy_by_difficulty


@torch.no_grad()
def greedy_steps(model, encoder: StepEncoder, questions: Sequence[str], max_new_tokens: int = 256, batch_size: int = 128) -> list[list[str]]:
    """Greedy responses to the questions, split into steps."""
    pad = encoder.tokenizer.pad_token_id
    pad = encoder.eos_id if pad is None else pad
    results = []
    for start in range(0, len(questions), batch_size):
        prompts = [list(encoder.prompt_ids(q)) for q in questions[start : start + batch_size]]
        width = max(map(len, prompts))  # left padding: generation continues every row at the right edge
        input_ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts], device=model.device)
        attention_mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=model.device)
        out = model.generate(input_ids=input_ids, attention_mask=attention_mask, max_new_tokens=max_new_tokens, do_sample=False,
                             eos_token_id=encoder.eos_id, pad_token_id=pad)
        results.extend(encoder.fmt.split_steps(encoder.decode(row)) for row in out[:, width:])
    return results


def greedy_report(model, encoder: StepEncoder, problems: Sequence, world) -> dict:
    """Greedy accuracy of a transformers model on an embedded world's problems, by difficulty."""
    was_training = model.training
    model.eval()
    steps = greedy_steps(model, encoder, [p.question for p in problems])
    model.train(was_training)
    return accuracy_by_difficulty(problems, [bool(s) and world.solved(p.question, s) for p, s in zip(problems, steps)])
