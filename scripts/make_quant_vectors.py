"""Write dequantization test vectors for every GGUF weight format graft reads, using the reference
implementation in the `gguf` PyPI package (gguf.quants.dequantize): random blocks (scales forced to
finite, moderate f16 values) and the f32 values gguf-py decodes them to.

Usage: python3 scripts/make_quant_vectors.py [OUT_DIR]   (default tests/data/quant)
Output per format NAME: NAME.blocks (raw block bytes) and NAME.f32 (little-endian f32 values).
Deterministic: numpy's default_rng(1234)."""
import os, sys
import numpy as np
from gguf import GGMLQuantizationType as T, GGML_QUANT_SIZES
from gguf.quants import dequantize

out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "tests", "data", "quant")
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(1234)

def f16_bytes(vals):
    return np.asarray(vals, dtype=np.float16).view(np.uint8)

# (name, type, number of blocks, byte offsets of f16 scale fields inside a block)
FORMATS = [
    ("F16", T.F16, 96, None),
    ("BF16", T.BF16, 96, None),
    ("Q4_0", T.Q4_0, 24, [0]),
    ("Q4_1", T.Q4_1, 24, [0, 2]),
    ("Q5_0", T.Q5_0, 24, [0]),
    ("Q5_1", T.Q5_1, 24, [0, 2]),
    ("Q8_0", T.Q8_0, 24, [0]),
    ("Q4_K", T.Q4_K, 6, [0, 2]),
    ("Q5_K", T.Q5_K, 6, [0, 2]),
    ("Q6_K", T.Q6_K, 6, [208]),
]

for name, qt, nblocks, scale_offs in FORMATS:
    block_size, type_size = GGML_QUANT_SIZES[qt]
    raw = rng.integers(0, 256, size=(nblocks, type_size), dtype=np.uint8)
    if qt == T.F16:
        raw = f16_bytes(rng.standard_normal(nblocks) * 4).reshape(nblocks, 2)
    elif qt == T.BF16:
        v = (rng.standard_normal(nblocks) * 4).astype(np.float32).view(np.uint32) >> 16
        raw = v.astype(np.uint16).view(np.uint8).reshape(nblocks, 2)
    else:
        for off in scale_offs:
            scales = rng.uniform(-0.05, 0.05, size=nblocks)
            raw[:, off:off + 2] = f16_bytes(scales).reshape(nblocks, 2)
    vals = dequantize(raw.reshape(-1), qt).astype(np.float32).reshape(-1)
    assert vals.size == nblocks * block_size and np.all(np.isfinite(vals)), name
    raw.reshape(-1).tofile(os.path.join(out, name + ".blocks"))
    vals.astype("<f4").tofile(os.path.join(out, name + ".f32"))
    print(f"{name}: {nblocks} blocks, {vals.size} values")
