"""Newton-Schulz as Muon runs it at one micro-step per step on one GPU: every group of the baseline's hidden
matrices, 5 steps, each compiled as Muon compiles it, this tree's newton_schulz against another tree's (read
from its train_gpt.py); then the symmetric products alone against cuBLAS's, over tilings.

    python records/2026-12-07_step/ns_kernels.py --against .devdata/at0ffb [--reps 20]

Prints two Markdown tables: microseconds per group and how far the two trees' results are apart (the
difference's Frobenius norm over the other tree's); microseconds per product with its dense-equivalent
TFLOP/s (a full product's FLOPs over the time) and its largest difference from the float64 product.
Times are mlp_kernels.py's: calls back to back between two CUDA events.
"""
import argparse
import ast
import functools
import sys
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import train_gpt as T  # noqa: E402
from mlp_kernels import median_us  # noqa: E402

TILINGS = {  # name: tiling, each a change of GRAM_TILES
    "default": T.GRAM_TILES,
    "3 stages": replace(T.GRAM_TILES, stages=3),
    "4 warps": replace(T.GRAM_TILES, warps=4),
    "128 deep, 3 stages": replace(T.GRAM_TILES, block_k=128, stages=3),
    "64 x 64, 4 warps": replace(T.GRAM_TILES, block_m=64, block_n=64, warps=4),
}


def other_newton_schulz(tree: Path):
    """newton_schulz as another tree's train_gpt.py defines it (its source alone: importing that file would
    register this file's ops a second time)."""
    source = (tree / "train_gpt.py").read_text()
    found = [node for node in ast.parse(source).body
             if isinstance(node, ast.FunctionDef) and node.name == "newton_schulz"]
    if not found:
        raise SystemExit(f"error: {tree}/train_gpt.py defines no newton_schulz")
    scope = {"torch": torch, "Tensor": torch.Tensor, **{name: getattr(T, name) for name in ("gram", "gram_polynomial")}}
    exec(ast.get_source_segment(source, found[0]), scope)
    return scope["newton_schulz"]


def muon_groups() -> list[tuple[int, ...]]:
    """(count, *shape) of each Muon group of the default model at world size 1 (built without storage)."""
    cfg = T.Hyperparameters(device="cpu")
    runtime = T.select_runtime(cfg)
    with torch.device("meta"):
        model = T.GPT(cfg, T.attention_backend(runtime, cfg), cfg.seq_len, False, None)
    muon = T.build_optimizers(model, cfg, runtime)[1]
    return [(len(group["params"]), *group["params"][0].shape) for group in muon.param_groups]


def relative(got: torch.Tensor, want: torch.Tensor) -> float:
    return ((got.double() - want.double()).norm() / want.double().norm()).item()


def group_rows(other, reps: int) -> list[str]:
    gen = torch.Generator(device="cuda").manual_seed(0)
    mine, theirs = (torch.compile(fn, dynamic=False) for fn in (T.newton_schulz, other))
    rows, totals = [], [0.0, 0.0]
    for shape in muon_groups():
        grads = torch.randn(shape, device="cuda", generator=gen)
        times = [median_us(lambda: fn(grads, 5), reps) for fn in (mine, theirs)]
        totals = [total + t for total, t in zip(totals, times)]
        rows.append(f"| {' x '.join(map(str, shape))} | {times[0]:.0f} | {times[1]:.0f} | {times[0] / times[1]:.3f} "
                    f"| {relative(mine(grads, 5), theirs(grads, 5)):.4f} |")
    rows.append(f"| all | {totals[0]:.0f} | {totals[1]:.0f} | {totals[0] / totals[1]:.3f} | |")
    return rows


def product_rows(reps: int) -> list[str]:
    gen = torch.Generator(device="cuda").manual_seed(1)
    b, c = -4.7750, 2.0315
    rows = []
    for count, size, depth in [(12, 768, 3072), (44, 768, 768)]:  # the MLP's groups; the square ones together
        x = torch.randn(count, size, depth, device="cuda", generator=gen)
        x = (x / x.norm(dim=(-2, -1), keepdim=True)).bfloat16()
        g = x @ x.mT
        products = {  # name: FLOPs, the float64 result, cuBLAS's call, this file's call with a tiling
            "x x^T": (2 * count * size * size * depth, x.double() @ x.double().mT, lambda: x @ x.mT,
                      lambda tiles: T.symmetric_product(x, tiles=tiles)),
            "b g + c g g": (2 * count * size ** 3, b * g.double() + c * g.double() @ g.double(),
                            lambda: torch.baddbmm(g, g, g, beta=b, alpha=c),
                            lambda tiles: T.symmetric_product(g, product_scale=c, input_scale=b, tiles=tiles))}
        for product, (flop, want, cublas, mine) in products.items():
            runs = {"cuBLAS": cublas, **{name: functools.partial(mine, tiles) for name, tiles in TILINGS.items()}}
            for name, run in runs.items():
                cells = f"| {count} x {size} x {depth} | {product} | {name} |"
                try:
                    us = median_us(run, reps)
                    error = (run().double() - want).abs().max().item() / want.abs().max().item()
                except Exception as failure:  # a tiling that does not fit the chip fails to compile or launch
                    rows.append(f"{cells} error: {str(failure).splitlines()[0][:100]} | | |")
                    continue
                rows.append(f"{cells} {us:.0f} | {flop / us / 1e6:.0f} | {error:.1e} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description="Time Muon's Newton-Schulz and its symmetric products.")
    parser.add_argument("--against", type=Path, required=True, help="a tree whose train_gpt.py's newton_schulz to time")
    parser.add_argument("--reps", type=int, default=20, help="calls back to back in each of the 5 timed trials")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("error: no CUDA GPU; the symmetric products run on one (compute capability 9.0 and newer)")
    other = other_newton_schulz(args.against)
    print(f"\n{torch.cuda.get_device_name()}: Newton-Schulz, 5 steps, each group compiled\n")
    print(f"| group | this tree us | {args.against} us | ratio | results apart |")
    print("| --- | --- | --- | --- | --- |")
    print("\n".join(group_rows(other, args.reps)))
    print("\n| batch | product | kernel | us | TFLOP/s (dense) | largest difference / largest entry |")
    print("| --- | --- | --- | --- | --- | --- |")
    print("\n".join(product_rows(args.reps)))


if __name__ == "__main__":
    main()
