"""Times the FP8 head and its loss, forward and backward over one 48K-token micro-batch as the trunk's graph
calls them, in one checkout per process (two checkouts register the same op names); saves the loss and the
gradients, and compares two such files.

    python records/2026-12-01_head_kernels/head_parts.py [--tree DIR] --save FILE [--repeats 20]
    python records/2026-12-01_head_kernels/head_parts.py --compare OLD_FILE NEW_FILE

DIR is a checkout whose train_gpt.py has the fp8_head_loss op (this tree by default).
"""
import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "2026-12-01_fused_head_muon"))
from step_parts import ROOT, head_setup, head_step, load_tree, new_head_loss, timed  # noqa: E402


def measure(tree_dir: Path, save: Path, repeats: int) -> None:
    tree = load_tree(tree_dir.resolve(), "train_gpt_measured")
    x, w, targets = head_setup()
    loss_fn = new_head_loss(tree)
    loss = loss_fn(x, w, targets)
    loss.backward()
    torch.save(dict(loss=loss.item(), grad_x=x.grad.float().cpu(), grad_w=w.grad.cpu()), save)
    ms, kernel_ms, table = timed(head_step(loss_fn, x, w, targets), repeats)
    print(f"{table}\n| FP8 head + loss, fwd + bwd, {tree_dir} | {ms:.3f} ms | kernels {kernel_ms:.3f} ms |")


def compare(old: Path, new: Path) -> None:
    a, b = torch.load(old), torch.load(new)
    relative = lambda key: ((b[key] - a[key]).norm() / a[key].norm()).item()  # noqa: E731
    print(f"head: loss {a['loss']:.6f} ({old.name}) {b['loss']:.6f} ({new.name}); relative difference of "
          f"grad_x {relative('grad_x'):.2e}, of grad_w {relative('grad_w'):.2e}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tree", type=Path, default=ROOT)
    parser.add_argument("--save", type=Path)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--compare", type=Path, nargs=2)
    args = parser.parse_args()
    if args.compare:
        compare(*args.compare)
    else:
        measure(args.tree, args.save, args.repeats)


if __name__ == "__main__":
    main()
