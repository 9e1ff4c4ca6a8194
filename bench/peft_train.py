"""PEFT's training speed and memory on this machine, for the same job graft train runs: the default
model loaded from its GGUF by transformers (dequantized to fp32), VeRA r=256 or LoRA r=16 on all
7 projections, batches of 4 x 256 tokens of the GPL-3 text, AdamW, N timed steps after one warm-up.
Prints one line: `peft: method=M tok_s=X peak_mib=Y steps=N`.

Usage: python bench/peft_train.py --method vera|lora [--steps N] [--threads 2]
Needs torch, transformers, peft, gguf (PyPI).
"""
import argparse, os, resource, time
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from peft import LoraConfig, VeraConfig, get_peft_model

ap = argparse.ArgumentParser()
ap.add_argument("--method", choices=["vera", "lora"], required=True)
ap.add_argument("--steps", type=int, default=5)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--model", default="models/SmolLM2-135M-Instruct.Q4_1.gguf")
ap.add_argument("--data", default="/usr/share/common-licenses/GPL-3")
a = ap.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(0)
d, f = os.path.split(os.path.abspath(a.model))
tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, torch_dtype=torch.float32)
targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
cfg = VeraConfig(r=256, target_modules=targets, vera_dropout=0.0) if a.method == "vera" else \
    LoraConfig(r=16, lora_alpha=16, target_modules=targets, lora_dropout=0.0)
pm = get_peft_model(model, cfg)
pm.train()
ids = tok(open(a.data).read(), return_tensors="pt").input_ids[0]
B, T = 4, 256
batches = [ids[i:i + B * T].view(B, T) for i in range(0, len(ids) - B * T, B * T)]
opt = torch.optim.AdamW([p for p in pm.parameters() if p.requires_grad], lr=1e-3 if a.method == "lora" else 1e-2)


def step(x):
    out = pm(input_ids=x, labels=x)
    out.loss.backward()
    torch.nn.utils.clip_grad_norm_([p for p in pm.parameters() if p.requires_grad], 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)
    return float(out.loss)


step(batches[0])
t0 = time.perf_counter()
for i in range(a.steps):
    step(batches[(i + 1) % len(batches)])
dt = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
print(f"peft: method={a.method} tok_s={a.steps * B * T / dt:.1f} peak_mib={peak} steps={a.steps}")
