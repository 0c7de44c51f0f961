"""Final answers: extraction, normalization, comparison (grading) and the key votes use. The
one place an answer is read out of text.

`final_answer(steps, answer_format)` reads a path's answer the way its step format says
(StepFormat.answer_format): the last step, the last `\\boxed{...}`, the last number, or "auto".
`extract_answer(text)` pulls the final answer out of a free-form solution or a reference:
`\\boxed{...}` (last one, braces balanced), then GSM8K's `#### 42`, else the text itself.
`answers_match(pred, ref)` compares after normalization: numerically when both sides parse
as numbers or fractions (1/2 == 0.5 == \\frac{1}{2} == \\dfrac12), else as normalized strings.
`answer_key(answer)` is the same equivalence as a hashable key: answers that grade alike
vote alike (majority and PRM-weighted voting group candidates by it).
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Sequence


def last_boxed(text: str) -> str | None:
    """The contents of the last \\boxed{...} in text (braces balanced), or None."""
    start = text.rfind("\\boxed")
    if start < 0:
        return None
    i = text.find("{", start)
    if i < 0:
        return None
    depth = 0
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i + 1 : j]
    return None


def final_answer(steps: Sequence[str], answer_format: str = "last_step") -> str | None:
    """A path's final answer text (engine.format.ANSWER_FORMATS), stripped; None if there is
    none. Votes compare these (through answer_key); graders grade them."""
    last = next((step.strip() for step in reversed(steps) if step.strip()), None)
    if last is None or answer_format == "last_step":
        return last
    if answer_format in ("boxed", "auto"):
        boxed = last_boxed("\n".join(steps))
        if boxed is not None or answer_format == "boxed":
            return boxed.strip() if boxed is not None else None
        after = last.rsplit("####", 1)[1].strip() if "####" in last else ""
        if after:
            return after.splitlines()[0].strip()
    numbers = re.findall(r"-?\d[\d,]*(?:\.\d+)?", last)
    return numbers[-1].replace(",", "") if numbers else None


def extract_answer(text: str | None) -> str | None:
    if text is None:
        return None
    boxed = last_boxed(text)
    if boxed is not None:
        return boxed.strip()
    if "####" in text:
        return text.rsplit("####", 1)[1].strip()
    return text.strip()


def normalize(answer: str) -> str:
    s = answer.strip().strip("$").strip()
    s = re.sub(r"\\text\{([^}]*)\}", r"\1", s)
    s = re.sub(r"\\(?:d|t)?frac\{([^}]*)\}\{([^}]*)\}", r"(\1)/(\2)", s)
    s = re.sub(r"\\(?:d|t)?frac(\d)(\d)", r"\1/\2", s)
    s = s.replace("\\left", "").replace("\\right", "").replace("\\!", "").replace("\\,", "").replace("\\%", "").replace("%", "")
    s = s.replace("^\\circ", "").replace("^{\\circ}", "").replace("\\cdot", "*").replace("\\times", "*")
    s = re.sub(r"(\d),(\d{3})", r"\1\2", s)  # thousands separators
    s = s.replace(" ", "").rstrip(".")
    return s


def to_number(s: str) -> Fraction | None:
    m = re.fullmatch(r"\(?(-?\d+(?:\.\d+)?)\)?/\(?(-?\d+(?:\.\d+)?)\)?", s)
    try:
        if m:
            den = Fraction(m.group(2))
            return Fraction(m.group(1)) / den if den else None
        if re.fullmatch(r"-?\d+(?:\.\d+)?|-?\.\d+", s):
            return Fraction(s)
    except (ValueError, ZeroDivisionError):
        return None
    return None


def answers_match(pred: str | None, ref: str | None) -> bool:
    if pred is None or ref is None:
        return False
    p, r = normalize(extract_answer(pred) or ""), normalize(extract_answer(ref) or "")
    if not p:
        return False
    pn, rn = to_number(p), to_number(r)
    if pn is not None and rn is not None:
        return pn == rn
    return p == r


def answer_key(answer: str | None) -> str | None:
    """The class of answers that `answers_match` treats as equal: a number or fraction as its
    exact reduced value ("1/2" for 0.5, 1/2 and \\frac12; "72" for 72.0), anything else as
    its normalized text. None for no answer (or an empty one)."""
    if answer is None:
        return None
    s = normalize(extract_answer(answer) or "")
    if not s:
        return None
    number = to_number(s)
    return str(number) if number is not None else s
