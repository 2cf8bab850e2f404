"""Times the MLP's Triton products (train_gpt.relu_square_product) over tilings at the trunk's shape, against
cuBLAS's product with the squared ReLU or its derivative as inductor's separate kernel, and against the bare
cuBLAS product (the floor if the epilogue were free). Each tiling's results are compared with the default
tiling's (MLP_TILES); a tiling that does not compile gets its one-line error.

    python records/2026-12-07_step/mlp_kernels.py [--rows 49152] [--dim 768] [--reps 50]

Prints one Markdown table: microseconds per call (--reps calls back to back between two CUDA events, the
median of 5 such trials), TFLOP/s, and how many entries differ from the default tiling's.
"""
import argparse
import statistics
import sys
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import train_gpt as T  # noqa: E402

BASE = T.MLP_TILES
TILINGS = {  # name: tiling, each a change of the default's
    "default": BASE,
    "128x128, 8 warps": replace(BASE, block_n=128),
    "128x128, 4 warps, 4 stages": replace(BASE, block_n=128, warps=4, stages=4),
    "128x128, 2 stages, 2 per SM": replace(BASE, block_n=128, stages=2, programs_per_sm=2),
    "256x128": replace(BASE, block_m=256, block_n=128),
    "256x128, 2 stages": replace(BASE, block_m=256, block_n=128, stages=2),
    "256x128, warps specialized": replace(BASE, block_m=256, block_n=128, warp_specialize=True),
    "64x256, 4 warps, 4 stages": replace(BASE, block_m=64, warps=4, stages=4),
    "warps specialized": replace(BASE, warp_specialize=True),
    "128x128, warps specialized": replace(BASE, block_n=128, warp_specialize=True),
}


def median_us(run, reps: int, trials: int = 5) -> float:
    """Microseconds per call of run(): reps calls back to back between two CUDA events (a single call's time
    would include its launch's gap), the median of trials such runs, after 5 untimed calls."""
    for _ in range(5):
        run()
    times = []
    for _ in range(trials):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(reps):
            run()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) * 1000 / reps)
    return statistics.median(times)


def differing(got: torch.Tensor, want: torch.Tensor) -> str:
    return f"{(got != want).float().mean().item():.2e}"


def main() -> None:
    parser = argparse.ArgumentParser(description="Time the MLP's Triton products over tilings.")
    parser.add_argument("--rows", type=int, default=49152, help="tokens per micro-step")
    parser.add_argument("--dim", type=int, default=768, help="model width (the hidden layer is 4 times it)")
    parser.add_argument("--reps", type=int, default=50, help="calls back to back in each of the 5 timed trials")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("error: no CUDA GPU; the Triton products run on one (compute capability 9.0 and newer)")
    gen = torch.Generator(device="cuda").manual_seed(0)
    rows, dim, hidden = args.rows, args.dim, 4 * args.dim
    x, grad_out = (torch.randn(rows, dim, device="cuda", generator=gen).bfloat16() for _ in range(2))
    w_fc = (torch.randn(hidden, dim, device="cuda", generator=gen) * dim ** -0.5).bfloat16()
    w_proj = (torch.randn(dim, hidden, device="cuda", generator=gen) * hidden ** -0.5).bfloat16()
    tflop = 2 * rows * dim * hidden / 1e12
    hidden_ref = torch.compile(T.relu_square_hidden)
    grad_ref = torch.compile(T.relu_square_hidden_grad)
    pre = hidden_ref(x, w_fc)[0]
    rows_out = [("cuBLAS product alone", median_us(lambda: x @ w_fc.T, args.reps),
                 median_us(lambda: grad_out @ w_proj, args.reps), "", ""),
                ("cuBLAS + inductor's squared ReLU", median_us(lambda: hidden_ref(x, w_fc), args.reps),
                 median_us(lambda: grad_ref(grad_out, w_proj, pre), args.reps), "", "")]
    want_post, want_pre = T.relu_square_product(x, w_fc)
    want_grad = T.relu_square_product(grad_out, w_proj.T, want_pre)[0]
    for name, tiles in TILINGS.items():
        try:
            post, pre_out = T.relu_square_product(x, w_fc, tiles=tiles)
            grad = T.relu_square_product(grad_out, w_proj.T, want_pre, tiles=tiles)[0]
            forward = median_us(lambda: T.relu_square_product(x, w_fc, tiles=tiles), args.reps)
            backward = median_us(lambda: T.relu_square_product(grad_out, w_proj.T, want_pre, tiles=tiles), args.reps)
        except Exception as error:  # a tiling that does not fit the chip fails to compile or launch
            rows_out.append((name, None, None, str(error).splitlines()[0][:120], ""))
            continue
        rows_out.append((name, forward, backward, differing(pre_out, want_pre) + " / " + differing(post, want_post),
                         differing(grad, want_grad)))
    print(f"\n{torch.cuda.get_device_name()}, {rows} x {dim} by {hidden}: {tflop * 1000:.0f} GFLOP a product\n")
    print("| product | forward us | TFLOP/s | backward us | TFLOP/s | forward differs (pre / post) | backward differs |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, forward, backward, forward_diff, backward_diff in rows_out:
        if forward is None:
            print(f"| {name} | error: {forward_diff} | | | | | |")
            continue
        print(f"| {name} | {forward:.0f} | {tflop / forward * 1e6:.0f} | {backward:.0f} | {tflop / backward * 1e6:.0f} "
              f"| {forward_diff} | {backward_diff} |")


if __name__ == "__main__":
    main()
