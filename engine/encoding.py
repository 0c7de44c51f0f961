"""Token ids of paths: the one place where (question, steps) become tokens.

Policy, PRM scorers and trainers all encode through `StepEncoder`, so the tokens a PRM
was trained on are the tokens it scores, and the KV of a scored prefix is reusable: a
path's ids are the prompt's ids followed by each step's ids and one SEP token, so a
path's ids always start with its parent's ids.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Sequence

from engine.format import StepFormat
from engine.models import ModelDirError, resolve_model, separator_ids, token_id


class UnknownCharactersError(ValueError):
    """A question with characters the tokenizer cannot write (it would map them to its unknown token)."""


class StepEncoder:
    def __init__(self, tokenizer, fmt: StepFormat, where: str = "model", labels: bool = False):
        self.tokenizer = tokenizer
        self.fmt = fmt
        self.where = where
        has_template = bool(getattr(tokenizer, "chat_template", None))
        if fmt.chat_template and not has_template:
            raise ModelDirError(f"the step format asks for a chat template, but the tokenizer of {where} has none")
        self.chat = has_template if fmt.chat_template is None else fmt.chat_template
        self.sep_ids = separator_ids(tokenizer, fmt.sep, where)  # one token, or a whitespace SEP as BPE writes it
        self.sep_id = self.sep_ids[-1]  # a step's score is read here, at SEP's last token
        self.eos_id = token_id(tokenizer, fmt.eos, "end-of-sequence token", where)
        self.positive_id = token_id(tokenizer, fmt.positive, "Positive label", where) if labels else None
        self.negative_id = token_id(tokenizer, fmt.negative, "Negative label", where) if labels else None
        self._prompt_ids = lru_cache(maxsize=65536)(self._encode_prompt)
        self.step_ids = lru_cache(maxsize=262144)(self._encode_step)  # a step's ids, SEP included
        self.turns = self._turn_pieces() if fmt.step_turns else None
        self._turn_ids = lru_cache(maxsize=262144)(self._encode_turn)

    @classmethod
    def load(cls, path, fmt: StepFormat, role: str = "model", labels: bool = False) -> "StepEncoder":
        """The encoder of a model directory: its tokenizer, checked against the step format (SEP,
        EOS, the label tokens with labels=True), with errors that name the directory and role."""
        from transformers import AutoTokenizer

        path = resolve_model(path, role)
        return cls(AutoTokenizer.from_pretrained(str(path)), fmt, f"{role} {path}", labels=labels)

    def _turn_pieces(self) -> tuple[str, str, str, str]:
        """A step-turn format's fixed text, learned from the chat template by rendering a
        conversation of placeholders: (head before the question, the join of question and first
        step, the close of a step's turn through the assistant's header, the reopening of a user
        turn after the assistant's reply)."""
        if not self.chat:
            raise ModelDirError(f"a step-turn format writes steps as chat turns, but the tokenizer of {self.where} has no chat template")
        q, a, b = "\x02Q\x03", "\x02A\x03", "\x02B\x03"
        messages = [{"role": "system", "content": self.fmt.system_prompt}] if self.fmt.system_prompt else []
        messages += [{"role": "user", "content": f"{q} {a}"}, {"role": "assistant", "content": self.fmt.positive}, {"role": "user", "content": b}]
        text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        head, rest = text.split(q)
        join, rest = rest.split(a)
        middle, close = rest.split(b)
        if not middle.startswith(close + self.fmt.positive) or self.fmt.sep not in close:
            raise ModelDirError(f"the chat template of {self.where} does not write a reply {self.fmt.positive!r} between "
                                f"two user turns closed by {self.fmt.sep!r}: not a step-turn PRM format")
        return head, join, close, middle[len(close) + len(self.fmt.positive):]

    def _encode_turn(self, question: str | None, step: str) -> tuple[int, ...]:
        """A step-turn format's ids of one step: the first with the question, a later one after
        the positive reply to the step before it; ends at the assistant's header (the score)."""
        if self.fmt.sep in step:
            raise ValueError(f"step {step!r} contains the end of a turn {self.fmt.sep!r}")
        _, join, close, reopen = self.turns
        text = f"{self.fmt.prompt(question)}{join}{step}{close}" if question is not None else f"{self.fmt.positive}{reopen}{step}{close}"
        return tuple(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def prompt_text(self, question: str) -> str:
        """The prompt as text: through the chat template (a user turn, the assistant's turn
        opened) when the format asks for it or, by default, when the tokenizer has one. A
        step-turn format's prompt is the chat's head alone (the question shares the first step's turn)."""
        if self.turns:
            return self.turns[0]
        if not self.chat:
            return self.fmt.prompt(question)
        messages = [{"role": "system", "content": self.fmt.system_prompt}] if self.fmt.system_prompt else []
        messages.append({"role": "user", "content": self.fmt.prompt(question)})
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def _encode_prompt(self, question: str) -> tuple[int, ...]:
        # a chat template writes its own special tokens (BOS and the turn markers)
        ids = tuple(self.tokenizer(self.prompt_text(question), add_special_tokens=not self.chat)["input_ids"])
        unk = self.tokenizer.unk_token_id
        if unk is not None and unk in ids:
            odd = sorted({ch for ch in question if unk in self.tokenizer(ch, add_special_tokens=False)["input_ids"]})
            raise UnknownCharactersError(f"the tokenizer of {self.where} has no token for the characters {''.join(odd)!r} "
                                         f"of the question {question[:60]!r}: the model would read them as {self.tokenizer.unk_token!r}")
        return ids

    def _encode_step(self, step: str) -> tuple[int, ...]:
        if self.fmt.sep in step:
            raise ValueError(f"step {step!r} contains the separator {self.fmt.sep!r}")
        return tuple(self.tokenizer(step, add_special_tokens=False)["input_ids"]) + self.sep_ids

    def prompt_ids(self, question: str) -> tuple[int, ...]:
        return self._prompt_ids(question)

    def response_ids(self, steps: Sequence[str], finished: bool = False) -> list[int]:
        """step1 SEP ... stepK SEP [EOS]."""
        if self.turns:
            raise ValueError("a step-turn format is for scoring only: its steps are not a response")
        ids = [i for step in steps for i in self.step_ids(step)]
        return ids + [self.eos_id] if finished else ids

    def path_ids(self, question: str, steps: Sequence[str], finished: bool = False) -> tuple[list[int], list[int]]:
        """(ids, sep_positions): prompt + step1 SEP ... stepK SEP [EOS], and where each SEP sits."""
        ids = list(self._prompt_ids(question))
        seps = []
        for k, step in enumerate(steps):
            ids.extend(self._turn_ids(question if k == 0 else None, step) if self.turns else self.step_ids(step))
            seps.append(len(ids) - 1)
        if finished:
            ids.append(self.eos_id)
        return ids, seps

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=False)
