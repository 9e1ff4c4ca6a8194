"""Writes the PEFT golden files of tests/peft_golden.rs: a tiny random llama (as a GGUF file, with
attn_q / attn_k rows permuted as llama.cpp's converter does, and as HF safetensors), and LoRA,
DoRA and VeRA adapters saved by PEFT itself with random non-zero weights, each with the logits
PEFT computes for a fixed token sequence.

Usage: python scripts/make_peft_fixtures.py tests/data/peft
Needs torch, transformers, peft, gguf, numpy (PyPI). Deterministic for torch's CPU generator.
"""
import json, os, sys
import numpy as np
import torch
from transformers import LlamaConfig, LlamaForCausalLM
from peft import LoKrConfig, LoraConfig, MissConfig, RandLoraConfig, VeraConfig, get_peft_model
import gguf

out = sys.argv[1] if len(sys.argv) > 1 else "tests/data/peft"
os.makedirs(out, exist_ok=True)
torch.manual_seed(1234)
H, KV, D, FF, L, V = 4, 2, 64, 96, 2, 257  # 256 byte tokens + one merge (gguf-py drops empty arrays)
cfg = LlamaConfig(vocab_size=V, hidden_size=D, intermediate_size=FF, num_hidden_layers=L, num_attention_heads=H,
                  num_key_value_heads=KV, max_position_embeddings=512, rms_norm_eps=1e-5, rope_theta=10000.0,
                  tie_word_embeddings=True, attention_bias=False, mlp_bias=False)
model = LlamaForCausalLM(cfg).eval()
with torch.no_grad():
    for n, p in model.named_parameters():
        if "norm" in n:
            p.copy_(1.0 + 0.1 * torch.randn_like(p))
        elif "embed" in n:
            p.copy_(0.5 * torch.randn_like(p))
        else:
            p.copy_(0.1 * torch.randn_like(p))
TOKENS = [(i * 37 + 5) % V for i in range(12)] + [256]
ids = torch.tensor([TOKENS])


def logits_of(m):
    with torch.no_grad():
        return m(input_ids=ids).logits[0].float().numpy()


def permute(w, n_head):
    """llama.cpp's convert_hf_to_gguf permutation of q/k rows."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def byte_token(b):
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    if b in printable:
        return chr(b)
    return chr(256 + [c for c in range(256) if c not in printable].index(b))


# The base as GGUF (F32).
sd = {k: v.detach().numpy().astype(np.float32) for k, v in model.state_dict().items()}
w = gguf.GGUFWriter(os.path.join(out, "tiny-llama.gguf"), "llama")
w.add_block_count(L); w.add_embedding_length(D); w.add_feed_forward_length(FF); w.add_head_count(H)
w.add_head_count_kv(KV); w.add_rope_freq_base(10000.0); w.add_layer_norm_rms_eps(1e-5); w.add_context_length(512)
w.add_tokenizer_model("gpt2"); w.add_tokenizer_pre("gpt-2")
w.add_token_list([byte_token(b) for b in range(256)] + [byte_token(32) * 2]); w.add_token_types([1] * V)
w.add_token_merges([byte_token(32) + " " + byte_token(32)])
w.add_bos_token_id(1); w.add_eos_token_id(2)
w.add_tensor("token_embd.weight", sd["model.embed_tokens.weight"])
for l in range(L):
    p = f"model.layers.{l}."
    w.add_tensor(f"blk.{l}.attn_norm.weight", sd[p + "input_layernorm.weight"])
    w.add_tensor(f"blk.{l}.attn_q.weight", permute(sd[p + "self_attn.q_proj.weight"], H))
    w.add_tensor(f"blk.{l}.attn_k.weight", permute(sd[p + "self_attn.k_proj.weight"], KV))
    w.add_tensor(f"blk.{l}.attn_v.weight", sd[p + "self_attn.v_proj.weight"])
    w.add_tensor(f"blk.{l}.attn_output.weight", sd[p + "self_attn.o_proj.weight"])
    w.add_tensor(f"blk.{l}.ffn_norm.weight", sd[p + "post_attention_layernorm.weight"])
    w.add_tensor(f"blk.{l}.ffn_gate.weight", sd[p + "mlp.gate_proj.weight"])
    w.add_tensor(f"blk.{l}.ffn_up.weight", sd[p + "mlp.up_proj.weight"])
    w.add_tensor(f"blk.{l}.ffn_down.weight", sd[p + "mlp.down_proj.weight"])
w.add_tensor("output_norm.weight", sd["model.norm.weight"])
w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
logits_of(model).astype("<f4").tofile(os.path.join(out, "base.logits.f32"))

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
configs = {
    "lora": LoraConfig(r=4, lora_alpha=8, target_modules=TARGETS, lora_dropout=0.0),
    "rslora": LoraConfig(r=4, lora_alpha=8, target_modules=TARGETS, lora_dropout=0.0, use_rslora=True),
    "dora": LoraConfig(r=4, lora_alpha=8, target_modules=TARGETS, lora_dropout=0.0, use_dora=True),
    "vera": VeraConfig(r=16, target_modules=TARGETS, vera_dropout=0.0, projection_prng_key=7, save_projection=True),
    "vera_noproj": VeraConfig(r=16, target_modules=TARGETS, vera_dropout=0.0, projection_prng_key=11, save_projection=False),
    "miss": MissConfig(r=8, target_modules=TARGETS),
    "lokr": LoKrConfig(r=4, alpha=8, target_modules=TARGETS),
    "randlora": RandLoraConfig(r=16, randlora_alpha=32, target_modules=TARGETS, projection_prng_key=3, save_projection=True),
}
for name, pc in configs.items():
    base = LlamaForCausalLM(cfg).eval()
    base.load_state_dict(model.state_dict())
    pm = get_peft_model(base, pc).eval()
    with torch.no_grad():
        for n, p in pm.named_parameters():
            if p.requires_grad:  # trainable adapter weights: random, non-zero
                if "magnitude" in n:
                    p.mul_(1.0 + 0.2 * torch.rand_like(p))
                elif "lambda" in n:
                    p.copy_(0.5 * torch.randn_like(p))
                else:
                    p.copy_(0.3 * torch.randn_like(p))
    d = os.path.join(out, name)
    pm.save_pretrained(d)
    os.remove(os.path.join(d, "README.md"))  # PEFT's model card: not needed
    logits_of(pm).astype("<f4").tofile(os.path.join(d, "logits.f32"))
    print(name, "saved", sorted(os.listdir(d)))
json.dump({"tokens": TOKENS}, open(os.path.join(out, "tokens.json"), "w"))
