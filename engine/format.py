"""The step format: how a question, its reasoning steps and the PRM labels become text.

A response is `step1 SEP step2 SEP ... stepK SEP EOS`: every step, the last one
included, ends in SEP, so the PRM has a SEP position to score for every step, and
EOS says the path is finished. The PRM reads P(step correct) from its logits at a
step's SEP, restricted to the Positive/Negative label tokens.

The embedded arithmetic world uses special tokens for all four; a real model can use
`StepFormat(sep="\\n\\n", eos="<|im_end|>", positive="+", negative="-")`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence


@dataclass(frozen=True)
class StepFormat:
    sep: str = "<sep>"
    eos: str = "</s>"
    positive: str = "<pos>"
    negative: str = "<neg>"
    prompt_template: str = "{question}="

    def __post_init__(self) -> None:
        if not self.sep:
            raise ValueError("StepFormat.sep must be a non-empty string")
        if self.positive == self.negative:
            raise ValueError(f"positive and negative label tokens must differ, both are {self.positive!r}")
        if "{question}" not in self.prompt_template:
            raise ValueError(f"prompt_template must contain '{{question}}': {self.prompt_template!r}")

    def prompt(self, question: str) -> str:
        return self.prompt_template.format(question=question)

    def join_steps(self, steps: Sequence[str], finished: bool = False) -> str:
        """Steps as response text: each step followed by SEP, then EOS if the path is finished."""
        for step in steps:
            if self.sep in step:
                raise ValueError(f"step {step!r} contains the separator {self.sep!r}")
        return "".join(step + self.sep for step in steps) + (self.eos if finished else "")

    def split_steps(self, response: str) -> list[str]:
        """Inverse of join_steps: the steps of a response (text after EOS is ignored)."""
        if self.eos and self.eos in response:
            response = response[: response.index(self.eos)]
        steps = response.split(self.sep)
        if steps and steps[-1] == "":  # the response ended with SEP
            steps.pop()
        return steps

    def is_finished(self, response: str) -> bool:
        return bool(self.eos) and self.eos in response

    def extract_answer(self, steps: Sequence[str]) -> str | None:
        """The final answer text: the last non-empty step, stripped. Tasks parse it further."""
        for step in reversed(steps):
            if step.strip():
                return step.strip()
        return None


ARITH_FORMAT = StepFormat()
