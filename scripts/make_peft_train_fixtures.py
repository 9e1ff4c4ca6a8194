"""Writes the golden files of tests/peft_train_golden.rs: one training step of a LoRA and of a VeRA
adapter, computed by PEFT on a tiny random llama, for graft's hand-written backward pass and AdamW
to reproduce.

Out folder: tiny-llama.gguf (the base, F32, q/k rows permuted as llama.cpp's converter does),
model.safetensors + config.json (the same base as transformers saves it), batch.json (token ids and
labels, -100 masked), and per method a PEFT adapter folder with random non-zero trainable weights
plus: logits.f32 (before the step), step.json (loss), grads.safetensors (the gradient of every
trainable tensor, PEFT names) and after.safetensors (the trainable tensors after one
torch.optim.AdamW step: lr 1e-2, weight decay 0.01, no clipping).

Usage: python scripts/make_peft_train_fixtures.py tests/data/peft_train
Needs torch, transformers, peft, gguf, numpy, safetensors (PyPI). Deterministic for torch's CPU
generator.
"""
import json, os, sys
import torch
from peft import LoraConfig, VeraConfig, get_peft_model
from safetensors.torch import save_file
from transformers import LlamaForCausalLM
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peft_tiny as tiny  # noqa: E402

out = sys.argv[1] if len(sys.argv) > 1 else "tests/data/peft_train"
os.makedirs(out, exist_ok=True)
torch.manual_seed(4321)
cfg = tiny.config()
model = tiny.build(cfg)
tiny.write_gguf(model, os.path.join(out, "tiny-llama.gguf"))
model.save_pretrained(out, safe_serialization=True)
for f in ("generation_config.json",):
    if os.path.exists(os.path.join(out, f)):
        os.remove(os.path.join(out, f))

TOKENS = [(i * 53 + 11) % 256 for i in range(14)]
LABELS = [t if i not in (3, 4, 9) else -100 for i, t in enumerate(TOKENS)]
json.dump({"tokens": TOKENS, "labels": LABELS}, open(os.path.join(out, "batch.json"), "w"))
ids = torch.tensor([TOKENS])
labels = torch.tensor([LABELS])

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
configs = {
    "lora": LoraConfig(r=4, lora_alpha=8, target_modules=TARGETS, lora_dropout=0.0),
    "vera": VeraConfig(r=16, target_modules=TARGETS, vera_dropout=0.0, projection_prng_key=7, save_projection=True),
}


def key(n):
    """PEFT's saved name of a parameter: the adapter name removed."""
    return n.replace(".default.", ".").replace(".default", "")


for name, pc in configs.items():
    base = LlamaForCausalLM(cfg).eval()
    base.load_state_dict(model.state_dict())
    pm = get_peft_model(base, pc)
    pm.train()
    with torch.no_grad():
        for n, p in pm.named_parameters():
            if p.requires_grad:
                p.copy_((0.5 if "lambda" in n else 0.3) * torch.randn_like(p))
    d = os.path.join(out, name)
    pm.save_pretrained(d)
    os.remove(os.path.join(d, "README.md"))
    params = [(n, p) for n, p in pm.named_parameters() if p.requires_grad]
    opt = torch.optim.AdamW([p for _, p in params], lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
    o = pm(input_ids=ids, labels=labels)
    o.logits[0].detach().float().numpy().astype("<f4").tofile(os.path.join(d, "logits.f32"))
    o.loss.backward()
    save_file({key(n): p.grad.detach().contiguous() for n, p in params}, os.path.join(d, "grads.safetensors"))
    opt.step()
    save_file({key(n): p.detach().contiguous() for n, p in params}, os.path.join(d, "after.safetensors"))
    json.dump({"loss": float(o.loss)}, open(os.path.join(d, "step.json"), "w"))
    print(name, "loss", float(o.loss), sorted(os.listdir(d)))
