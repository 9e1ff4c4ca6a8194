"""Writes the PEFT golden files of tests/peft_golden.rs: a tiny random llama (as a GGUF file, with
attn_q / attn_k rows permuted as llama.cpp's converter does, and as HF safetensors), and LoRA,
rsLoRA, DoRA, VeRA, MiSS, LoKr and RandLoRA adapters saved by PEFT itself with random non-zero
weights, each with the logits PEFT computes for a fixed token sequence. The variants: per-module
rank and alpha (`rank_pattern` / `alpha_pattern`, also with rsLoRA), a LoRA with a bias on lora_B
(`lora_bias`), LoKr with both factors low-rank (`decompose_both`), VeRA and RandLoRA without their
projections (`save_projection=False`), MiSS "mini" and "bat", RandLoRA with sparse and very sparse
bases. New configurations go at the end: the global generator's stream then leaves the earlier
fixtures unchanged.

Usage: python scripts/make_peft_fixtures.py tests/data/peft [NAME ...]   (only those fixtures, the
others' generator draws still made, so every file comes out as a full run writes it)
Needs torch, transformers, peft, gguf, numpy (PyPI). Deterministic for torch's CPU generator.
"""
import json, os, sys
import torch
from transformers import LlamaForCausalLM
from peft import LoKrConfig, LoraConfig, MissConfig, RandLoraConfig, VeraConfig, get_peft_model
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peft_tiny as tiny  # noqa: E402

out = sys.argv[1] if len(sys.argv) > 1 else "tests/data/peft"
only = set(sys.argv[2:])  # empty: every file
os.makedirs(out, exist_ok=True)
torch.manual_seed(1234)
cfg = tiny.config()
V = tiny.V
model = tiny.build(cfg)
TOKENS = [(i * 37 + 5) % V for i in range(12)] + [256]
ids = torch.tensor([TOKENS])


def logits_of(m):
    with torch.no_grad():
        return m(input_ids=ids).logits[0].float().numpy()


# The base as GGUF (F32).
if not only:
    tiny.write_gguf(model, os.path.join(out, "tiny-llama.gguf"))
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
    # Per-module rank and alpha. PEFT takes the first key (in order) whose regex matches the end of the
    # module name at a dot boundary: layer 1's q_proj gets rank 6, layer 0's rank 2.
    "lora_pattern": LoraConfig(r=4, lora_alpha=8, target_modules=TARGETS, lora_dropout=0.0,
                               rank_pattern={"layers.1.self_attn.q_proj": 6, "q_proj": 2, "model.layers.0.mlp.down_proj": 3},
                               alpha_pattern={"self_attn.(k|v)_proj": 3, "layers.1.mlp.up_proj": 20}),
    "rslora_pattern": LoraConfig(r=4, lora_alpha=8, target_modules=TARGETS, lora_dropout=0.0, use_rslora=True,
                                 rank_pattern={"o_proj": 8}, alpha_pattern={"gate_proj": 2.5, "o_proj": 16}),
    "lora_bias": LoraConfig(r=4, lora_alpha=8, target_modules=TARGETS, lora_dropout=0.0, lora_bias=True),
    # r=2 < max(out_l, in_m)/2 = 4 on every projection: w1 = w1_a·w1_b (and w2 = w2_a·w2_b).
    "lokr_both": LoKrConfig(r=2, alpha=4, target_modules=TARGETS, decompose_both=True),
    "randlora_noproj": RandLoraConfig(r=16, randlora_alpha=32, target_modules=TARGETS, projection_prng_key=5, save_projection=False),
    # MiSS "mini": a [r, mini_r] block repeated along the outputs (mini_r divides 32, 64 and 96).
    "miss_mini": MissConfig(r=8, init_weights="mini", mini_r=4, target_modules=TARGETS),
    # RandLoRA with sparse bases: saved (to check graft's regeneration bit for bit), and very sparse
    # without them (graft regenerates them for the logits).
    "randlora_sparse": RandLoraConfig(r=16, randlora_alpha=32, target_modules=TARGETS, projection_prng_key=9, save_projection=True, sparse=True),
    "randlora_vsparse_noproj": RandLoraConfig(r=8, randlora_alpha=16, target_modules=TARGETS, projection_prng_key=13, save_projection=False, very_sparse=True),
    # MiSS "bat": one r×r block per block row, transforming the base weight's own blocks (r=8
    # divides 32, 64 and 96; attn_q / attn_k blocks follow HF rows).
    "miss_bat": MissConfig(r=8, init_weights="bat", target_modules=TARGETS),
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
    if only and name not in only:
        continue
    d = os.path.join(out, name)
    pm.save_pretrained(d)
    os.remove(os.path.join(d, "README.md"))  # PEFT's model card: not needed
    logits_of(pm).astype("<f4").tofile(os.path.join(d, "logits.f32"))
    print(name, "saved", sorted(os.listdir(d)))
if not only:
    json.dump({"tokens": TOKENS}, open(os.path.join(out, "tokens.json"), "w"))
