"""A character-level tokenizer for the embedded arithmetic world.

Built with the `tokenizers` library and saved as an ordinary HF tokenizer directory, so
transformers and vLLM load it like any other. Every printable ASCII character is one
token; the special tokens are pad, bos, eos and the step format's sep/positive/negative.
Encoding adds bos in front (like Llama tokenizers), never eos.
"""

from __future__ import annotations

import string

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

from engine.format import ARITH_FORMAT, StepFormat

PAD, BOS, UNK = "<pad>", "<s>", "<unk>"
CHARACTERS = string.digits + string.punctuation + string.ascii_letters + " \n"


def build_char_tokenizer(fmt: StepFormat = ARITH_FORMAT) -> PreTrainedTokenizerFast:
    specials = [PAD, BOS, fmt.eos, UNK, fmt.sep, fmt.positive, fmt.negative]
    if len(set(specials)) != len(specials):
        raise ValueError(f"special tokens must be distinct: {specials}")
    vocab = {tok: i for i, tok in enumerate(specials)}
    for ch in CHARACTERS:
        vocab.setdefault(ch, len(vocab))

    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(""), behavior="isolated")  # one token per character
    tok.decoder = decoders.Fuse()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    tok.post_processor = processors.TemplateProcessing(single=f"{BOS} $A", special_tokens=[(BOS, vocab[BOS])])

    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=fmt.eos,
        pad_token=PAD,
        unk_token=UNK,
        additional_special_tokens=[fmt.sep, fmt.positive, fmt.negative],
        padding_side="right",
        model_max_length=1024,
    )
