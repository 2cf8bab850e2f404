"""Times two parts of the training step on one GPU, in this tree and in an older checkout: Muon's step over
the record's hidden matrices (one GPU's whole share) and the FP8 head with its softcapped loss (forward and
backward over one 48K-token micro-batch). Checks that the two trees compute the same thing, then prints
the median wall clock over --repeats calls, the profiler's kernel time per call and its largest kernels.

    python records/2026-12-01_fused_head_muon/step_parts.py --old DIR [--repeats 20]

DIR is a checkout of the older commit (its train_gpt.py is imported under another name).
"""
import argparse
import importlib.util
import re
import statistics
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "records"))
from bench_mot import PATTERNS, milliseconds  # noqa: E402
# the record's hidden matrices: 12 MLP pairs, 11 attention layers' stacked q, k, v and their projections
MUON_SHAPES = [(3072, 768)] * 12 + [(768, 3072)] * 12 + [(3, 768, 768)] * 11 + [(768, 768)] * 11
TOKENS, DIM, VOCAB, CAP = 49152, 768, 50304, 15.0
SCALES = (2.0, 2.0 ** 9, 2.0 ** 19)


def load_tree(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path / "train_gpt.py")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path))
    spec.loader.exec_module(module)
    sys.path.pop(0)
    return module


def timed(fn, repeats: int) -> tuple[float, float, str]:
    """Median ms of fn() over repeats calls (CUDA events), kernel ms per call and the largest kernels."""
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        for _ in range(3):
            fn()
        torch.cuda.synchronize()
    table = prof.key_averages().table(sort_by="self_device_time_total", row_limit=12, max_name_column_width=70)
    kernel_ms = milliseconds(re.search(PATTERNS["kernel_total"], table)[1]) / 3
    return statistics.median(times), kernel_ms, table


def muon_setup(tree, new: bool, seed: int = 0):
    g = torch.Generator(device="cuda").manual_seed(seed)
    params = [torch.nn.Parameter(torch.randn(s, device="cuda", generator=g) * 0.02) for s in MUON_SHAPES]
    grads = [torch.randn(s, device="cuda", generator=g) * 1e-3 for s in MUON_SHAPES]
    for p, grad in zip(params, grads):
        p.grad = grad
    if new:
        muon = tree.Muon(params, lr=0.05, momentum=0.95, ns_steps=5, compiled=True)
    else:
        muon = tree.Muon(params, lr=0.05, momentum=0.95, ns_steps=5, orthogonalize=torch.compile(tree.newton_schulz))
    return params, muon


def head_setup(seed: int = 0):
    g = torch.Generator(device="cuda").manual_seed(seed)
    x = F.rms_norm(torch.randn(TOKENS, DIM, device="cuda", generator=g), (DIM,)).bfloat16().requires_grad_()
    w = (torch.randn(VOCAB, DIM, device="cuda", generator=g) * 0.02).requires_grad_()
    targets = torch.randint(0, VOCAB, (TOKENS,), device="cuda", generator=g)
    return x, w, targets


def old_head_loss(tree):
    @torch.compile(dynamic=False)
    def loss(x, w, targets):
        logits = tree.fp8_mm(x, w, *SCALES)[0].float()
        return F.cross_entropy(2 * CAP * torch.sigmoid(logits * (2 / CAP)), targets)
    return loss


def new_head_loss(tree):
    @torch.compile(dynamic=False)
    def loss(x, w, targets):
        return tree.fp8_head_loss(x, w, targets, CAP, *SCALES)[0]
    return loss


def head_step(loss_fn, x, w, targets):
    def step():
        x.grad = w.grad = None
        loss_fn(x, w, targets).backward()
    return step


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--old", type=Path, required=True, help="checkout of the older commit")
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    new, old = load_tree(ROOT, "train_gpt_new"), load_tree(args.old.resolve(), "train_gpt_old")
    rows = []

    # the same three Muon steps from the same matrices and gradients in both trees
    moved = []
    for tree, is_new in ((old, False), (new, True)):
        params, muon = muon_setup(tree, is_new)
        start = [p.detach().clone() for p in params]
        for _ in range(3):
            muon.step()
        moved.append([p.detach() - s for p, s in zip(params, start)])
        ms, kernel_ms, table = timed(muon.step, args.repeats)
        rows.append((f"Muon step, {'this tree' if is_new else 'old'}", ms, kernel_ms))
        print(f"--- Muon, {'this tree' if is_new else 'old'}\n{table}")
    diff = max(((a - b).norm() / b.norm()).item() for a, b in zip(*moved))
    print(f"Muon: largest relative difference of a matrix's movement over 3 steps, this tree vs old: {diff:.2e}")

    results = []
    for tree, make in ((old, old_head_loss), (new, new_head_loss)):
        x, w, targets = head_setup()
        loss_fn = make(tree)
        loss = loss_fn(x, w, targets)
        loss.backward()
        results.append((loss.item(), x.grad.float(), w.grad.clone()))
        ms, kernel_ms, table = timed(head_step(loss_fn, x, w, targets), args.repeats)
        label = "this tree" if tree is new else "old"
        rows.append((f"FP8 head + loss, fwd + bwd, {label}", ms, kernel_ms))
        print(f"--- head, {label}\n{table}")
        del x, w, targets, loss_fn
        torch.cuda.empty_cache()
    (old_loss, old_gx, old_gw), (new_loss, new_gx, new_gw) = results
    print(f"head: loss {old_loss:.6f} (old) {new_loss:.6f} (this tree); relative difference of grad_x "
          f"{((new_gx - old_gx).norm() / old_gx.norm()).item():.2e}, of grad_w "
          f"{((new_gw - old_gw).norm() / old_gw.norm()).item():.2e}")

    print("\n| part | ms (median) | kernel ms |\n| --- | --- | --- |")
    for label, ms, kernel_ms in rows:
        print(f"| {label} | {ms:.3f} | {kernel_ms:.3f} |")


if __name__ == "__main__":
    main()
