import pytest

from engine.answers import answers_match, extract_answer, last_boxed
from problems.datasets import DatasetError, load_problems


@pytest.mark.parametrize(
    "pred, ref, same",
    [
        ("\\boxed{\\frac{1}{2}}", "0.5", True),
        ("so the total is #### 1,234", "1234", True),
        ("42", "#### 42", True),
        ("\\boxed{3}", "\\boxed{4}", False),
        ("\\dfrac12", "1/2", True),
        ("$-7$", "-7.0", True),
        ("\\boxed{\\text{(B)}}", "(B)", True),
        ("x^2+1", "\\boxed{x^2 + 1}", True),
        ("", "3", False),
        (None, "3", False),
        ("1/0", "1", False),
    ],
)
def test_answers_match(pred, ref, same):
    assert answers_match(pred, ref) is same


def test_extract_answer():
    assert last_boxed("a \\boxed{1} then \\boxed{\\frac{2}{3}} end") == "\\frac{2}{3}"
    assert last_boxed("\\boxed{unclosed") is None
    assert extract_answer("Natalia sold 48/2 = 24 clips.\n#### 72") == "72"


def test_datasets(tmp_path):
    arith = load_problems("arith-test")
    assert len(arith) == 500 and arith[0].grade(str(arith[0].answer)) and not arith[0].grade("garbage")
    f = tmp_path / "gsm.jsonl"
    f.write_text('{"question": "1+1?", "answer": "#### 2"}\n{"problem": "half?", "solution": "\\\\boxed{\\\\frac12}", "id": "m1"}\n')
    problems = load_problems(str(f))
    assert [p.id for p in problems] == ["gsm-1", "m1"]
    assert problems[0].grade("2") and problems[1].grade("0.5") and not problems[1].grade("2")
    f.write_text('{"question": "1+1?", "answer": "2"}\n[1, 2]\n')
    with pytest.raises(DatasetError, match="gsm.jsonl:2: expected a JSON object"):
        load_problems(str(f))
    f.write_text('{"question": "1+1?", "answer": "2"}\nnot json\n')
    with pytest.raises(DatasetError, match="gsm.jsonl:2: not valid JSON"):
        load_problems(str(f))
    with pytest.raises(DatasetError, match="unknown dataset"):
        load_problems("nope")


def test_datasets_through_the_datasets_library(tmp_path):
    import datasets

    rows = [{"problem": "What is 6*7?", "answer": "42", "id": "a"}, {"problem": "Half of one?", "answer": "\\frac{1}{2}", "id": "b"}]
    ds = datasets.Dataset.from_list(rows)
    ds.to_parquet(str(tmp_path / "m.parquet"))
    ds.save_to_disk(str(tmp_path / "saved"))
    for spec in (tmp_path / "m.parquet", tmp_path / "saved"):
        problems = load_problems(str(spec))
        assert [p.id for p in problems] == ["a", "b"] and problems[0].grade("42") and problems[1].grade("0.5")
    datasets.Dataset.from_list([{"problem": "x"}]).to_parquet(str(tmp_path / "bad.parquet"))
    with pytest.raises(DatasetError, match="bad.parquet:1: needs a string or number 'answer'"):
        load_problems(str(tmp_path / "bad.parquet"))
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(DatasetError, match="unknown dataset"):
        load_problems(str(tmp_path / "x.txt"))
