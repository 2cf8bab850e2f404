"""Times the FP8 head loss's backward on one GPU two ways: as train_gpt.py runs it (one compiled graph, in
which inductor writes the e5m2 gradient in both layouts from one kernel), and with the transposed copy in
a graph of its own (a pointwise kernel writes the row-major gradient, then a transposing copy). Checks that
both give the same gradients and prints the median wall clock and kernel time of each.

    python records/2026-12-01_fused_head_muon/head_backward_layouts.py [--repeats 20]
"""
import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import train_gpt as T  # noqa: E402
from step_parts import CAP, SCALES, head_setup, timed  # noqa: E402


def split_backward(grad_loss, logits, log_sum_exp, targets, x_f8, w_f8):
    """train_gpt.fp8_head_loss_backward with the transposed copy of the e5m2 gradient compiled apart."""
    cap, x_scale, w_scale, grad_scale = CAP, *SCALES

    @torch.compile(dynamic=False)
    def row_major(grad_loss, logits, log_sum_exp, targets):
        probs = (T.softcap(logits, cap) - log_sum_exp[:, None]).exp()
        is_target = torch.arange(logits.size(1), device=logits.device) == targets[:, None]
        grad_capped = (probs - is_target.float()) * (grad_loss / logits.size(0))
        sig = torch.sigmoid(logits.float() * (2 / cap))
        grad_logits = (grad_capped * (2 * cap) * (sig * (1 - sig)) * (2 / cap)).bfloat16()
        return grad_logits.mul(grad_scale).to(torch.float8_e5m2)

    @torch.compile(dynamic=False)
    def transposed(grad_f8):
        return grad_f8.T.contiguous()

    @torch.compile(dynamic=False)
    def products(grad_f8, grad_f8_t, x_f8, w_f8):
        inv = lambda s: x_f8.new_tensor(1 / s, dtype=torch.float32)  # noqa: E731
        grad_x = torch._scaled_mm(grad_f8, w_f8.T.contiguous().T, out_dtype=torch.bfloat16,
                                  scale_a=inv(grad_scale), scale_b=inv(w_scale))
        grad_w_t = torch._scaled_mm(x_f8.T.contiguous(), grad_f8_t.T, out_dtype=torch.float32,
                                    scale_a=inv(x_scale), scale_b=inv(grad_scale))
        return grad_x, grad_w_t.T

    grad_f8 = row_major(grad_loss, logits, log_sum_exp, targets)
    return products(grad_f8, transposed(grad_f8), x_f8, w_f8)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    x, w, targets = head_setup()
    with torch.no_grad():
        _, logits, log_sum_exp, x_f8, w_f8 = T.fp8_head_loss(x, w, targets, CAP, *SCALES)
    grad_loss = torch.ones((), device="cuda")
    saved = (grad_loss, logits, log_sum_exp, targets, x_f8, w_f8)
    ways = {"one graph (train_gpt.py)": lambda: T.fp8_head_loss_backward(*saved, CAP, *SCALES),
            "transposed copy apart": lambda: split_backward(*saved)}
    grads, rows = [], []
    for label, fn in ways.items():
        grads.append([g.float() for g in fn()])
        ms, kernel_ms, table = timed(fn, args.repeats)
        rows.append((label, ms, kernel_ms))
        print(f"--- {label}\n{table}")
    same = all(torch.equal(a, b) for a, b in zip(*grads))
    print(f"same gradients: {same}")
    print("\n| head backward | ms (median) | kernel ms |\n| --- | --- | --- |")
    for label, ms, kernel_ms in rows:
        print(f"| {label} | {ms:.3f} | {kernel_ms:.3f} |")


if __name__ == "__main__":
    main()
