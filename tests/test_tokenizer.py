import pytest
from transformers import AutoTokenizer

from engine.encoding import StepEncoder
from engine.format import ARITH_FORMAT, StepFormat
from engine.models import ModelDirError, check_model_dir, token_id
from trainers.tokenizer import build_char_tokenizer


def test_char_tokenizer_round_trip_and_specials(tmp_path):
    tok = build_char_tokenizer()
    text = "3+4*5=3+20<sep>23<sep></s>"
    ids = tok(text)["input_ids"]
    assert ids[0] == tok.bos_token_id  # bos in front, one token per character or special token
    assert len(ids) == 1 + len("3+4*5=3+20") + 1 + 2 + 1 + 1
    assert tok.decode(ids, skip_special_tokens=False) == "<s>" + text
    for special in [ARITH_FORMAT.sep, ARITH_FORMAT.eos, ARITH_FORMAT.positive, ARITH_FORMAT.negative]:
        assert len(tok(special, add_special_tokens=False)["input_ids"]) == 1
    assert tok("é", add_special_tokens=False)["input_ids"] == [tok.unk_token_id]

    tok.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(str(tmp_path))
    assert again(text)["input_ids"] == ids
    assert again.pad_token_id == tok.pad_token_id and again.eos_token_id == tok.eos_token_id


def test_tokenizer_without_sep_is_a_clear_error(tmp_path):
    other = StepFormat(sep="<step>")
    tok = build_char_tokenizer(other)
    with pytest.raises(ModelDirError, match="step separator '<sep>'"):
        token_id(tok, ARITH_FORMAT.sep, "step separator", "policy x")


def test_model_dir_errors(tmp_path):
    with pytest.raises(ModelDirError, match="not found"):
        check_model_dir(tmp_path / "missing", "policy")
    with pytest.raises(ModelDirError, match="no config.json"):
        check_model_dir(tmp_path, "policy")
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelDirError, match="no weights"):
        StepEncoder.load(tmp_path, ARITH_FORMAT, "policy")
