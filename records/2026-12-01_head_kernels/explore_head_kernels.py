"""The exploration behind train_gpt.py's two head kernels, on one GPU at the training shape (49,152 x 50,304
logits): the backward's row-wise pass as a Triton kernel storing both layouts, over tile shapes, against the
same code in PyTorch (eager, and compiled as before) and against a kernel that only converts and stores (the
memory floor); then the forward's row-wise pass (log-sum-exp and target logit) over block sizes. Counts the
e5m2 gradient entries in which two versions differ, and prints median times (triton.testing.do_bench).

    python records/2026-12-01_head_kernels/explore_head_kernels.py     # from the repository root

It ran (explore2_printed.txt) in a checkout of 2748b1d, whose fp8_head_loss ran both passes as inductor
kernels: its "op backward now" rows time that op; in a later tree they time the tree's own.
explore1_printed.txt is an earlier run with another list of tile shapes and without the forward's pass.
"""
import sys

import torch
import triton
import triton.language as tl

sys.path.insert(0, '.')
import train_gpt as T  # noqa: E402

ROWS, VOCAB, DIM, CAP = 49152, 50304, 768, 15.0
X_SCALE, W_SCALE, G_SCALE = 2.0, 2.0 ** 9, 2.0 ** 19


@triton.jit
def grad_kernel(logits_ptr, lse_ptr, targets_ptr, scale_ptr, out_ptr, out_t_ptr, rows, cols,
                slope, height, grad_scale, BR: tl.constexpr, BC: tl.constexpr, TRANS: tl.constexpr,
                COPY: tl.constexpr):
    r = tl.program_id(0) * BR + tl.arange(0, BR)
    c = tl.program_id(1) * BC + tl.arange(0, BC)
    mask = (r[:, None] < rows) & (c[None, :] < cols)
    raw = tl.load(logits_ptr + r[:, None].to(tl.int64) * cols + c[None, :], mask=mask, other=0.0)
    if COPY:
        g8 = raw.to(tl.float32).to(tl.float8e5)
    else:
        z = raw.to(tl.float32) * slope
        sig = tl.sigmoid(z)
        lse = tl.load(lse_ptr + r, mask=r < rows, other=0.0)
        target = tl.load(targets_ptr + r, mask=r < rows, other=-1)
        probs = tl.exp(height * sig - lse[:, None])
        grad = tl.where(c[None, :] == target[:, None], probs - 1.0, probs) * tl.load(scale_ptr)
        grad = grad * height * (sig * (1.0 - sig)) * slope
        g8 = (grad.to(tl.bfloat16).to(tl.float32) * grad_scale).to(tl.float8e5)
    tl.store(out_ptr + r[:, None].to(tl.int64) * cols + c[None, :], g8, mask=mask)
    if TRANS:
        tl.store(out_t_ptr + c[:, None].to(tl.int64) * rows + r[None, :], tl.trans(g8), mask=tl.trans(mask))
    else:
        tl.store(out_t_ptr + c[None, :].to(tl.int64) * rows + r[:, None], g8, mask=mask)


def run_kernel(logits, lse, targets, grad_loss, br, bc, warps, trans=True, copy=False, stages=1):
    rows, cols = logits.shape
    out = torch.empty((rows, cols), dtype=torch.float8_e5m2, device=logits.device)
    out_t = torch.empty((cols, rows), dtype=torch.float8_e5m2, device=logits.device)
    scale = grad_loss / rows
    grid = (triton.cdiv(rows, br), triton.cdiv(cols, bc))
    grad_kernel[grid](logits, lse, targets, scale, out, out_t, rows, cols, 2 / CAP, 2 * CAP, G_SCALE,
                      BR=br, BC=bc, TRANS=trans, COPY=copy, num_warps=warps, num_stages=stages)
    return out, out_t


def forward_reduction(logits, targets):
    capped = T.softcap(logits, CAP)
    log_sum_exp = 2 * CAP + (capped - 2 * CAP).exp().sum(dim=-1).log()
    return log_sum_exp, capped.gather(1, targets[:, None]).squeeze(1)


@triton.jit
def lse_kernel(logits_ptr, targets_ptr, lse_ptr, tgt_ptr, rows, cols, slope, height,
               BC: tl.constexpr, RPP: tl.constexpr):
    r = tl.program_id(0) * RPP + tl.arange(0, RPP)
    in_rows = r < rows
    acc = tl.zeros((RPP, BC), dtype=tl.float32)
    base = logits_ptr + r[:, None].to(tl.int64) * cols
    for start in range(0, cols, BC):
        c = start + tl.arange(0, BC)
        m = in_rows[:, None] & (c[None, :] < cols)
        z = tl.load(base + c[None, :], mask=m, other=0.0).to(tl.float32)
        capped = height * tl.sigmoid(z * slope)
        acc += tl.where(m, tl.exp(capped - height), 0.0)
    total = tl.sum(acc, axis=1)
    tl.store(lse_ptr + r, height + tl.log(total), mask=in_rows)
    target = tl.load(targets_ptr + r, mask=in_rows, other=0)
    zt = tl.load(logits_ptr + r.to(tl.int64) * cols + target, mask=in_rows, other=0.0).to(tl.float32)
    tl.store(tgt_ptr + r, height * tl.sigmoid(zt * slope), mask=in_rows)


def run_lse(logits, targets, bc, warps, rpp):
    rows, cols = logits.shape
    lse = torch.empty(rows, device=logits.device)
    tgt = torch.empty(rows, device=logits.device)
    lse_kernel[(triton.cdiv(rows, rpp),)](logits, targets, lse, tgt, rows, cols, 2 / CAP, 2 * CAP, BC=bc, RPP=rpp,
                                         num_warps=warps)
    return lse, tgt


def reference(grad_loss, logits, lse, targets):
    probs = (T.softcap(logits, CAP) - lse[:, None]).exp()
    is_target = torch.arange(logits.size(1), device=logits.device) == targets[:, None]
    grad_capped = (probs - is_target.float()) * (grad_loss / logits.size(0))
    sig = torch.sigmoid(logits.float() * (2 / CAP))
    grad_logits = (grad_capped * (2 * CAP) * (sig * (1 - sig)) * (2 / CAP)).bfloat16()
    return grad_logits.mul(G_SCALE).to(torch.float8_e5m2)


def main():
    g = torch.Generator(device="cuda").manual_seed(0)
    x = torch.nn.functional.rms_norm(torch.randn(ROWS, DIM, device="cuda", generator=g), (DIM,)).bfloat16()
    w = torch.randn(VOCAB, DIM, device="cuda", generator=g) * 0.02
    targets = torch.randint(0, VOCAB, (ROWS,), device="cuda", generator=g)
    with torch.no_grad():
        _, logits, lse, x_f8, w_f8 = T.fp8_head_loss(x, w, targets, CAP, X_SCALE, W_SCALE, G_SCALE)
    grad_loss = torch.ones((), device="cuda")
    ref = reference(grad_loss, logits, lse, targets)
    compiled_reference = torch.compile(reference)
    ref_c = compiled_reference(grad_loss, logits, lse, targets)
    def compare(name, a, b):
        af, bf = a.float(), b.float()
        diff = (af != bf)
        n = int(diff.sum())
        au, bu = a.view(torch.uint8).int(), b.view(torch.uint8).int()
        steps = int((au - bu).abs().max())
        print(f"{name}: mismatches {n} of {a.numel()} ({n / a.numel():.2e}), max code distance {steps}, "
              f"nonzero {int((af != 0).sum())}")
    compare("compiled torch vs eager torch", ref_c, ref)
    out, out_t = run_kernel(logits, lse, targets, grad_loss, 64, 128, 4)
    compare("triton vs eager torch", out, ref)
    compare("triton vs compiled torch", out, ref_c)
    compare("triton transposed vs its row-major", out_t.T, out)
    saved = (grad_loss, logits, lse, targets, x_f8, w_f8)
    rows = []
    bench = lambda fn: triton.testing.do_bench(fn, warmup=100, rep=500, return_mode="median")
    rows.append(("op backward now (compiled graph)", bench(lambda: T.fp8_head_loss_backward(*saved, CAP, X_SCALE, W_SCALE, G_SCALE))))
    rows.append(("compiled torch pointwise (row-major only)", bench(lambda: compiled_reference(grad_loss, logits, lse, targets))))
    for br, bc, warps, trans, stages in [(32, 128, 4, True, 1), (32, 128, 8, True, 1), (16, 128, 4, True, 1),
                                         (16, 256, 4, True, 1), (32, 256, 4, True, 1), (32, 256, 8, True, 1),
                                         (64, 128, 8, True, 1), (64, 64, 8, True, 1), (32, 64, 4, True, 1),
                                         (32, 128, 2, True, 1), (16, 128, 2, True, 1), (64, 128, 16, True, 1)]:
        ms = bench(lambda: run_kernel(logits, lse, targets, grad_loss, br, bc, warps, trans, stages=stages))
        rows.append((f"triton {br}x{bc} warps {warps} trans {trans} stages {stages}", ms))
        o, ot = run_kernel(logits, lse, targets, grad_loss, br, bc, warps, trans, stages=stages)
        assert torch.equal(o.view(torch.uint8), out.view(torch.uint8)) and torch.equal(ot.view(torch.uint8), out_t.view(torch.uint8))
    for br, bc, warps in [(64, 128, 4), (128, 128, 8)]:
        rows.append((f"copy floor {br}x{bc} warps {warps}", bench(lambda: run_kernel(logits, lse, targets, grad_loss, br, bc, warps, True, True))))
    inv = lambda s: torch.tensor(1 / s, device="cuda")
    def full_new():
        gf, gt = run_kernel(logits, lse, targets, grad_loss, 64, 128, 4)
        gx = torch._scaled_mm(gf, w_f8.T.contiguous().T, out_dtype=torch.bfloat16, scale_a=inv(G_SCALE), scale_b=inv(W_SCALE))
        gw = torch._scaled_mm(x_f8.T.contiguous(), gt.T, out_dtype=torch.float32, scale_a=inv(X_SCALE), scale_b=inv(G_SCALE))
        return gx, gw.T
    rows.append(("op backward with triton pointwise (eager products)", bench(full_new)))
    fwd = torch.compile(forward_reduction)
    lse_ref, tgt_ref = fwd(logits, targets)
    rows.append(("compiled forward reduction (as the op)", bench(lambda: fwd(logits, targets))))
    for bc, warps, rpp in [(1024, 4, 1), (2048, 8, 1), (4096, 8, 1), (2048, 4, 1), (1024, 8, 1), (8192, 16, 1), (512, 4, 2), (1024, 4, 4), (1024, 8, 4)]:
        l2, t2 = run_lse(logits, targets, bc, warps, rpp)
        print(f"lse {bc} {warps} {rpp}: max abs diff {float((l2 - lse_ref).abs().max()):.3e}, capped target diff {float((t2 - tgt_ref).abs().max()):.3e}")
        rows.append((f"triton lse {bc} warps {warps} rows/program {rpp}", bench(lambda: run_lse(logits, targets, bc, warps, rpp))))
    a, b = T.fp8_head_loss_backward(*saved, CAP, X_SCALE, W_SCALE, G_SCALE), full_new()
    for name, p, q in zip(("grad_x", "grad_w"), a, b):
        print(name, "relative difference", float((p.float() - q.float()).norm() / p.float().norm()))
    print("\n| variant | ms (median) |\n| --- | --- |")
    for name, ms in rows:
        print(f"| {name} | {ms:.3f} |")


if __name__ == "__main__":
    main()
