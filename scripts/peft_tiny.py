"""A tiny random llama for the PEFT golden files: built with transformers, written as an F32 GGUF
file with attn_q / attn_k rows permuted as llama.cpp's converter does (and a byte-level tokenizer),
so graft and PEFT run the same weights. Used by make_peft_fixtures.py and
make_peft_train_fixtures.py.
"""
import numpy as np
import torch
from transformers import LlamaConfig, LlamaForCausalLM
import gguf

H, KV, D, FF, L, V = 4, 2, 64, 96, 2, 257  # 256 byte tokens + one merge (gguf-py drops empty arrays)


def config():
    return LlamaConfig(vocab_size=V, hidden_size=D, intermediate_size=FF, num_hidden_layers=L, num_attention_heads=H,
                       num_key_value_heads=KV, max_position_embeddings=512, rms_norm_eps=1e-5, rope_theta=10000.0,
                       tie_word_embeddings=True, attention_bias=False, mlp_bias=False)


def build(cfg):
    """A model with random weights drawn from torch's global generator (seed it first)."""
    model = LlamaForCausalLM(cfg).eval()
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "norm" in n:
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
            elif "embed" in n:
                p.copy_(0.5 * torch.randn_like(p))
            else:
                p.copy_(0.1 * torch.randn_like(p))
    return model


def permute(w, n_head):
    """llama.cpp's convert_hf_to_gguf permutation of q/k rows."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def byte_token(b):
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    if b in printable:
        return chr(b)
    return chr(256 + [c for c in range(256) if c not in printable].index(b))


def write_gguf(model, path):
    sd = {k: v.detach().numpy().astype(np.float32) for k, v in model.state_dict().items()}
    w = gguf.GGUFWriter(path, "llama")
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
