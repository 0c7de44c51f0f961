import pytest

from engine.answers import final_answer
from engine.format import ARITH_FORMAT, StepFormat


def test_join_and_split_round_trip():
    steps = ["3+20-2", "23-2", "21"]
    text = ARITH_FORMAT.join_steps(steps, finished=True)
    assert text == "3+20-2<sep>23-2<sep>21<sep></s>"
    assert ARITH_FORMAT.split_steps(text) == steps
    assert ARITH_FORMAT.is_finished(text)
    assert not ARITH_FORMAT.is_finished(ARITH_FORMAT.join_steps(steps))
    assert final_answer(steps, ARITH_FORMAT.answer_format) == "21"


def test_split_tolerates_unfinished_and_trailing_text():
    assert ARITH_FORMAT.split_steps("1+2<sep>3") == ["1+2", "3"]  # last step without SEP
    assert ARITH_FORMAT.split_steps("3<sep></s>garbage<sep>") == ["3"]
    assert ARITH_FORMAT.split_steps("") == []
    assert final_answer([], ARITH_FORMAT.answer_format) is None
    assert final_answer(["5", "  "], ARITH_FORMAT.answer_format) == "5"


def test_prompt_template():
    assert ARITH_FORMAT.prompt("3+4") == "3+4="
    fmt = StepFormat(sep="\n\n", eos="<|im_end|>", positive="+", negative="-", prompt_template="Q: {question}\nA: ")
    assert fmt.prompt("1+1?") == "Q: 1+1?\nA: "
    assert fmt.split_steps(fmt.join_steps(["a", "b"], finished=True)) == ["a", "b"]


def test_bad_formats_and_steps_are_refused():
    with pytest.raises(ValueError, match="separator"):
        ARITH_FORMAT.join_steps(["1<sep>2"])
    with pytest.raises(ValueError, match="sep"):
        StepFormat(sep="")
    with pytest.raises(ValueError, match="differ"):
        StepFormat(positive="+", negative="+")
    with pytest.raises(ValueError, match="question"):
        StepFormat(prompt_template="no placeholder")
