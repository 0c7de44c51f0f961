"""The step format: how a question, its reasoning steps and the PRM labels become text.

A response is `step1 SEP step2 SEP ... stepK SEP EOS`: every step, the last one
included, ends in SEP, so the PRM has a SEP position to score for every step, and
EOS says the path is finished. The PRM reads P(step correct) from its logits at a
step's SEP, restricted to the Positive/Negative label tokens.

The embedded arithmetic world uses special tokens for all four; a real chat model can use
`StepFormat(sep="\\n\\n", eos="<|im_end|>", chat_template=True, answer_format="boxed")`, a
Math-Shepherd-style PRM `StepFormat(sep="ки", positive="+", negative="-")`, an RLHFlow-style PRM
`StepFormat(sep="<|im_end|>", positive="+", negative="-", step_turns=True)`. The policy and the
PRM may use different formats: steps travel between them as text, and each re-encodes them.
The recipes under recipes/ hold one format per known setup.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

ANSWER_FORMATS = ("last_step", "boxed", "last_number", "auto")


@dataclass(frozen=True)
class StepFormat:
    sep: str = "<sep>"
    eos: str = "</s>"
    positive: str = "<pos>"
    negative: str = "<neg>"
    prompt_template: str = "{question}="
    # The prompt goes through the tokenizer's chat template as a user turn (after the system
    # prompt, if any); the steps are the assistant's reply. None: if the tokenizer has one.
    chat_template: bool | None = None
    system_prompt: str | None = None
    # How the final answer is read from a path: "last_step" (the last step's text), "boxed"
    # (the last \\boxed{...}), "last_number" (the last number in the last step), "auto" (the
    # last \\boxed{...}, else what follows GSM8K's "####", else the last number).
    answer_format: str = "last_step"
    # PRMs only (RLHFlow's): each step is a user turn of the chat (the first one after the
    # question and a space), the score is read where the assistant's reply starts, and the reply
    # to every earlier step is `positive`. `sep` is then the chat's end-of-turn token (a step
    # may not contain it); the turn markers come from the tokenizer's chat template.
    step_turns: bool = False

    def __post_init__(self) -> None:
        if not self.sep:
            raise ValueError("StepFormat.sep must be a non-empty string")
        if self.positive == self.negative:
            raise ValueError(f"positive and negative label tokens must differ, both are {self.positive!r}")
        if "{question}" not in self.prompt_template:
            raise ValueError(f"prompt_template must contain '{{question}}': {self.prompt_template!r}")
        if self.step_turns and self.chat_template is False:
            raise ValueError("step_turns writes the steps as chat turns: it needs chat_template true (or unset)")
        if self.answer_format not in ANSWER_FORMATS:
            raise ValueError(f"answer_format must be one of {ANSWER_FORMATS}, got {self.answer_format!r}")

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


ARITH_FORMAT = StepFormat()
