import pytest
import torch

from engine import ARITH_FORMAT
from engine.encoding import StepEncoder
from evals.prm_eval import prm_metrics
from trainers.data import DataError, load_prm_jsonl, tokenize_prm
from trainers.losses import IGNORE_INDEX, prm_loss
from trainers.prm import step_labels
from trainers.tokenizer import build_char_tokenizer


def test_labels_sit_exactly_at_the_sep_positions():
    enc = StepEncoder(build_char_tokenizer(), ARITH_FORMAT, labels=True)
    ex = tokenize_prm({"question": "2*3+1", "completions": ["6+1", "8"], "labels": [True, False]}, enc)
    # <s> 2 * 3 + 1 = | 6 + 1 <sep> | 8 <sep>
    assert len(ex["input_ids"]) == 7 + 4 + 2
    assert ex["input_ids"][10] == enc.sep_id and ex["input_ids"][12] == enc.sep_id
    expected = [IGNORE_INDEX] * 13
    expected[10], expected[12] = enc.positive_id, enc.negative_id
    assert ex["labels"] == expected


def test_prm_loss_by_hand():
    pos, neg = 1, 2
    logits = torch.zeros(1, 3, 4)
    logits[0, 0] = torch.tensor([9.0, 2.0, 0.0, 5.0])  # labelled Positive: only logits 1 and 2 count
    logits[0, 2] = torch.tensor([0.0, 1.0, 3.0, -4.0])  # labelled Negative
    labels = torch.tensor([[pos, IGNORE_INDEX, neg]])
    # -log softmax([2, 0])[0] and -log softmax([1, 3])[1], averaged
    expected = (torch.log1p(torch.exp(torch.tensor(-2.0))) + torch.log1p(torch.exp(torch.tensor(-2.0)))) / 2
    assert torch.allclose(prm_loss(logits, labels, pos, neg), expected)
    assert prm_loss(logits, torch.full((1, 3), IGNORE_INDEX), pos, neg).item() == 0.0
    with pytest.raises(ValueError, match="Positive"):
        prm_loss(logits, torch.tensor([[3, IGNORE_INDEX, neg]]), pos, neg)


def test_verifier_labels_mark_the_first_error_and_everything_after():
    assert step_labels("3+4*5-2", ["3+20-2", "23-2", "21"]) == [True, True, True]
    assert step_labels("3+4*5-2", ["3+20-2", "24-2", "22"]) == [True, False, False]  # "22" is a valid step of a wrong state
    assert step_labels("3+4*5-2", ["7*5-2", "35-2", "33"]) == [False, False, False]


def test_prm_metrics_by_hand():
    m = prm_metrics([[0.9, 0.2, 0.1], [0.8, 0.7]], [[True, False, False], [True, False]])
    assert m["step_accuracy"] == pytest.approx(4 / 5)
    assert m["negative_precision"] == 1.0 and m["negative_recall"] == pytest.approx(2 / 3)
    assert m["first_error_accuracy"] == 0.5


def test_malformed_stepwise_rows_name_the_line(tmp_path):
    f = tmp_path / "s.jsonl"
    f.write_text('{"prompt": "1+1=", "completions": ["2"], "labels": [true]}\n{"prompt": "x", "completions": ["a", "b"], "labels": [true]}\n')
    with pytest.raises(DataError, match="s.jsonl: row 2: 2 completions but 1 labels"):
        load_prm_jsonl(f)
