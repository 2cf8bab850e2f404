"""GPU check: compiled FlexAttention with the banded byte mask over a stream that ends in a partial block
(seq_len=144, byte_pool=4: 576 byte positions, 4.5 blocks of 128) equals dense attention, forward and
backward. Run from the repository root: python3 records/2026-11-30_step_h200/check_partial_block.py"""
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.nn.attention.flex_attention import flex_attention

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import train_gpt as T  # noqa: E402

torch.manual_seed(0)
compiled = torch.compile(flex_attention, dynamic=False)
for tokens, slots, window in ((144, 4, 16), (41, 16, 3), (1000, 4, 16)):
    ids = torch.randint(0, 50000, (tokens,), device="cuda")
    ids[torch.rand(tokens, device="cuda") < 0.05] = T.EOT_TOKEN
    docs = T.document_ids(ids)
    n = tokens * slots
    q, k, v = (torch.randn(1, 2, n, 64, device="cuda", requires_grad=True) for _ in range(3))
    out = compiled(q, k, v, block_mask=T.FlexAttentionBackend.byte_mask(docs, slots, window, True), scale=0.12)
    grads = torch.autograd.grad(out.square().sum(), (q, k, v))
    mask = T.DenseAttentionBackend.byte_mask(docs, slots, window, True)
    ref = F.scaled_dot_product_attention(q.double(), k.double(), v.double(), attn_mask=mask, scale=0.12)
    ref_grads = torch.autograd.grad(ref.square().sum(), (q, k, v))
    errors = [((a.double() - b).norm() / b.norm()).item() for a, b in zip((out, *grads), (ref, *ref_grads))]
    print(f"{n} byte positions ({n / 128:.2f} blocks): relative error out/dq/dk/dv "
          + " ".join(f"{e:.1e}" for e in errors), "OK" if max(errors) < 1e-2 else "FAIL")
