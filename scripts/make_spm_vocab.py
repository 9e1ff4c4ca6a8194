#!/usr/bin/env python3
"""Train a tiny SentencePiece BPE model (byte fallback) and export it for graft's SPM tokenizer tests.

Writes tests/data/spm_vocab.json (the shape of graft's TokenizerMetadata, as a llama-style GGUF
would hold it) and tests/data/spm_cases.json (strings with the ids sentencepiece gives them).
usage: python3 scripts/make_spm_vocab.py   (needs the `sentencepiece` PyPI package)
"""
import glob
import io
import json
import os

import sentencepiece as spm

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
DATA = os.path.join(ROOT, "tests", "data")

CASES = [
    "Hello world",
    "The GNU General Public License is a free, copyleft license.",
    "naïve café résumé Ærøskøbing",
    "Привет мир",
    "日本語のテキスト 中文",
    "emoji 😀👍🏽 done",
    " leading space",
    "   three leading spaces",
    "trailing spaces   ",
    "multiple    inner     spaces",
    "line one\nline two\n\nline four\n",
    "\n\nstarts with newlines",
    "tabs\tand\r\nCRLF",
    "numbers 2024 3.14159 1,000,000",
    "punctuation!!! ... ??? --- (x) [y] {z} \"quoted\" 'single'",
    "a",
    " ",
    "  ",
    "",
    "x\u00a0y\u2003z",
    "MiXeD CaSe WoRdS and_snake_case and camelCase",
    "\u0000\u0001\u007f",
]


def main():
    text = ""
    for f in sorted(glob.glob("/usr/share/common-licenses/*")):
        if os.path.isfile(f):
            with open(f, encoding="utf-8", errors="ignore") as fh:
                text += fh.read() + "\n"
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(text.splitlines()),
        model_writer=model,
        model_type="bpe",
        vocab_size=800,
        byte_fallback=True,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        add_dummy_prefix=True,
        split_digits=True,
        character_coverage=0.9995,
        num_threads=1,
        minloglevel=2,
    )
    sp = spm.SentencePieceProcessor(model_proto=model.getvalue())
    n = sp.get_piece_size()
    types = []
    for i in range(n):
        if sp.is_unknown(i):
            types.append(2)
        elif sp.is_control(i):
            types.append(3)
        elif sp.is_byte(i):
            types.append(6)
        elif sp.is_unused(i):
            types.append(5)
        else:
            types.append(1)
    vocab = {
        "model": "llama",
        "tokens": [sp.id_to_piece(i) for i in range(n)],
        "scores": [sp.get_score(i) for i in range(n)],
        "token_types": types,
        "bos": sp.bos_id(),
        "eos": sp.eos_id(),
        "unk": sp.unk_id(),
        "add_bos": True,
        "add_eos": False,
        "add_space_prefix": True,
    }
    with open(os.path.join(DATA, "spm_vocab.json"), "w") as fh:
        json.dump(vocab, fh, ensure_ascii=False)
    cases = [{"text": c, "ids": sp.encode(c)} for c in CASES]
    with open(os.path.join(DATA, "spm_cases.json"), "w") as fh:
        fh.write("[\n" + ",\n".join(json.dumps(c, ensure_ascii=False) for c in cases) + "\n]\n")
    print(f"{n} pieces; {len(cases)} cases")


if __name__ == "__main__":
    main()
