"""Times causal attention inside each token's 16 byte slots (2 heads of 64, bfloat16), forward and backward,
several ways, at the vocabulary table's size on one GPU (50,304 tokens) and as one rank of 8 (6,288): wall
clock per call and the profiler's GPU kernel time, each way compiled for one shape; and checks each against
float64 attention.

    python records/2026-12-01_within_token_attention/within_token_kernels.py
"""
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from train_gpt import within_token_attention  # noqa: E402

SLOTS, HEADS, HEAD_DIM, SCALE = 16, 2, 64, 0.12


def sdpa(q, k, v):  # (T, heads, slots, 64) each
    return F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=SCALE)


def products(q, k, v):
    scores = (q[:, :, :, None] * k[:, :, None]).sum(dim=-1, dtype=torch.float32) * SCALE  # (T, heads, query, key)
    causal = torch.ones(SLOTS, SLOTS, dtype=torch.bool, device=q.device).tril()
    weights = scores.masked_fill(~causal, float("-inf")).softmax(dim=-1).type_as(v)
    return (weights[..., None] * v[:, :, None]).sum(dim=-2)


def backend(kind):
    def attend(q, k, v):
        with sdpa_kernel(kind):
            return sdpa(q, k, v)
    return attend


WAYS = {
    "sdpa default (cuDNN)": lambda: torch.compile(sdpa, dynamic=False),
    "sdpa flash": lambda: backend(SDPBackend.FLASH_ATTENTION),
    "sdpa memory-efficient": lambda: backend(SDPBackend.EFFICIENT_ATTENTION),
    "products and sums, compiled": lambda: torch.compile(products, dynamic=False),
    "train_gpt.within_token_attention, compiled": lambda: torch.compile(
        lambda q, k, v: within_token_attention(q, k, v, SCALE), dynamic=False),
}


def step(fn, q, k, v, grad):
    out = fn(q, k, v)
    return (out, *torch.autograd.grad(out, (q, k, v), grad))


def wall_ms(fn, inputs, repeats=20):
    for _ in range(3):
        step(fn, *inputs)
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        step(fn, *inputs)
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats * 1e3


def kernel_ms(fn, inputs, repeats=5):
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(repeats):
            step(fn, *inputs)
        torch.cuda.synchronize()
    return prof.key_averages().total_average().self_device_time_total / 1e3 / repeats


def main():
    torch.manual_seed(0)
    print(f"PyTorch {torch.__version__}, {torch.cuda.get_device_name()}")
    print("| tokens | way | wall ms, fwd+bwd | kernel ms | max error / reference scale (out, dq, dk, dv) |")
    print("| --- | --- | --- | --- | --- |")
    for tokens in (50304, 6288):
        q, k, v, grad = (torch.randn(tokens, HEADS, SLOTS, HEAD_DIM, device="cuda") for _ in range(4))
        q, k = F.rms_norm(q, (HEAD_DIM,)), F.rms_norm(k, (HEAD_DIM,))
        inputs = [t.bfloat16().requires_grad_() for t in (q, k, v)] + [grad.bfloat16()]
        reference = step(sdpa, *(t.detach().double().requires_grad_() for t in inputs[:3]), grad.double())
        for name, make in WAYS.items():
            torch._dynamo.reset()
            fn = make()
            try:
                errors = [((g.double() - r).abs().max() / r.abs().max()).item()
                          for g, r in zip(step(fn, *inputs), reference)]
                wall, kernels = wall_ms(fn, inputs), kernel_ms(fn, inputs)
                print(f"| {tokens} | {name} | {wall:.3f} | {kernels:.3f} | {', '.join(f'{e:.1e}' for e in errors)} |",
                      flush=True)
            except RuntimeError as error:
                print(f"| {tokens} | {name} | failed | | {str(error).splitlines()[0][:80]} |", flush=True)


if __name__ == "__main__":
    main()
