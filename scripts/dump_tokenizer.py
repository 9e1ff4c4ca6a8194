#!/usr/bin/env python3
"""Dump a GGUF file's tokenizer metadata to JSON in the shape of graft's TokenizerMetadata.

usage: dump_tokenizer.py MODEL.gguf OUT.json
"""
import json
import sys

from gguf import GGUFReader


def field(r, key):
    f = r.fields.get(key)
    if f is None:
        return None
    # scalar
    if len(f.types) == 1 and f.types[0].name != "ARRAY":
        v = f.parts[f.data[0]]
        if f.types[0].name == "STRING":
            return bytes(v).decode("utf-8")
        return v.tolist()[0]
    # array
    if f.types[1].name == "STRING":
        return [bytes(f.parts[i]).decode("utf-8") for i in f.data]
    return [f.parts[i].tolist()[0] for i in f.data]


def main():
    r = GGUFReader(sys.argv[1])
    out = {
        "model": field(r, "tokenizer.ggml.model"),
        "pre": field(r, "tokenizer.ggml.pre"),
        "tokens": field(r, "tokenizer.ggml.tokens"),
        "scores": field(r, "tokenizer.ggml.scores"),
        "token_types": field(r, "tokenizer.ggml.token_type"),
        "merges": field(r, "tokenizer.ggml.merges"),
        "bos": field(r, "tokenizer.ggml.bos_token_id"),
        "eos": field(r, "tokenizer.ggml.eos_token_id"),
        "eot": field(r, "tokenizer.ggml.eot_token_id"),
        "unk": field(r, "tokenizer.ggml.unknown_token_id"),
        "pad": field(r, "tokenizer.ggml.padding_token_id"),
        "add_bos": field(r, "tokenizer.ggml.add_bos_token"),
        "add_eos": field(r, "tokenizer.ggml.add_eos_token"),
        "add_space_prefix": field(r, "tokenizer.ggml.add_space_prefix"),
    }
    with open(sys.argv[2], "w") as fh:
        json.dump(out, fh, ensure_ascii=False)


if __name__ == "__main__":
    main()
