"""Where the layouts part with the MoT front end and the hashed bigram (the rehearsal's open result): each
feature alone, one process (8 micro-steps) against 2 ranks (4 each) over 30 steps; then the weights after
steps 1 and 2 of both features together, compared tensor by tensor between two one-process runs (the
kernels' own noise), between one process and 2 ranks, and, for the baseline, between one process and 2
ranks (what a layout changes where the result holds). The tensor whose gap to 2 ranks stands out from
both references is where the layouts part.

    python records/2026-12-06_rehearsal/features.py --data DIR --out OUT [--deadline 400]
"""
import argparse
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rehearse import command, run  # noqa: E402

FEATURES = {"base": [], "bigram": ["--bigram_hash_rows=251520"], "mot": ["--use_mot=1"],
            "mot_bigram": ["--use_mot=1", "--bigram_hash_rows=251520"]}
TWO_STEPS = ["--stop_step=2", "--save_every=1"]


def weights(out: Path, name: str, step: int) -> dict[str, torch.Tensor]:
    path = next((out / name).glob(f"*/state_step{step:06d}.pt"))
    return {key: value.float() for key, value in torch.load(path, map_location="cpu", weights_only=False)["model"].items()}


def gaps(a: dict, b: dict) -> dict[str, float]:
    """Per tensor, the norm of the difference over the norm of a (0 where both are zero)."""
    return {key: ((a[key] - b[key]).norm() / a[key].norm().clamp_min(1e-30)).item() for key in a}


def compare(out: Path, step: int, rows: int = 14) -> None:
    one_a, one_b, two = (weights(out, name, step) for name in ("one_a_mot_bigram", "one_b_mot_bigram", "r2_mot_bigram"))
    noise, layout = gaps(one_a, one_b), gaps(one_a, two)
    base = gaps(weights(out, "one_base", step), weights(out, "r2_base", step))
    print(f"\nafter step {step}: |w - w'| / |w| per tensor, the {rows} largest gaps between one process and 2 ranks")
    print("| tensor | 1 process, run a vs b | 1 process vs 2 ranks | baseline: 1 process vs 2 ranks |")
    print("| --- | --- | --- | --- |")
    for key in sorted(layout, key=layout.get, reverse=True)[:rows]:
        print(f"| {key} | {noise[key]:.2e} | {layout[key]:.2e} | {base[key]:.2e} |" if key in base else
              f"| {key} | {noise[key]:.2e} | {layout[key]:.2e} | |")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--deadline", type=float, default=400)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.time()
    left = lambda: args.deadline - (time.time() - start)  # noqa: E731

    def phase(jobs):
        with ThreadPoolExecutor(len(jobs)) as pool:
            return list(pool.map(lambda job: run(args, job[0], job[1], left()), jobs))

    def job(ranks: int, feature: str, name: str, *flags: str):
        return name, command(args, ranks, "baseline", name, *FEATURES[feature], *flags)

    two_steps = phase([job(1, "mot_bigram", "one_a_mot_bigram", *TWO_STEPS),
                       job(1, "mot_bigram", "one_b_mot_bigram", *TWO_STEPS),
                       job(2, "mot_bigram", "r2_mot_bigram", *TWO_STEPS)])
    two_steps += phase([job(1, "base", "one_base", *TWO_STEPS), job(2, "base", "r2_base", *TWO_STEPS)])
    if all(r["rc"] == 0 for r in two_steps):
        for step in (1, 2):
            compare(args.out, step)
    alone = phase([job(ranks, feature, f"{'one' if ranks == 1 else 'r2'}_{feature}")
                   for feature in ("bigram", "mot") for ranks in (1, 2)])
    print("\n| run | exit | wall s | step 1 train loss | final val loss |")
    print("| --- | --- | --- | --- | --- |")
    for r in alone:
        print(f"| {r['name']} | {r['rc']} | {r['wall_s']} | {r.get('first_loss', '')} | {r.get('val', '')} |")


if __name__ == "__main__":
    main()
