"""README's answer table, rebuilt from the committed logs: for each variant on the 400-step short track, its
final validation loss minus the baseline's with a 95 % Welch interval, what one of its steps is worth in
baseline steps (study.py --curve) with its interval, its cost per step as one rank of 8 (a
records/bench_mot.py --ranks 8 table, every row timed at one commit), and its lead at equal time: worth /
cost - 1, in percent of the run's time.

    python records/answer.py [--costs COSTS.md]

Each study below is a set of runs at 400 steps with its own baseline seeds; worth per step reads the
baseline's line through that study's baseline runs and the 360-step baseline runs of 2026-11-30. A row whose
runs are not in the tree yet reads "not run".
"""
import argparse
import math
from pathlib import Path

import study
from short_track import read_costs

RECORDS = Path(__file__).resolve().parent
COSTS = RECORDS / "2026-12-07_gpu_check" / "costs_ranks8.md"
CURVE = RECORDS / "2026-11-30_equal_time" / "steps360"
INPUT, OUTPUT = RECORDS / "2026-12-01_equal_time", RECORDS / "2026-12-06_output_targets"
EARLIER, SEEDS = RECORDS / "2026-11-30_equal_time", RECORDS / "2026-11-30_short_track_seeds"
STUDIES = {  # name: (logs and folders of logs, tables of runs known by their printed row)
    "input": ([*sorted(EARLIER.glob("baseline_seed*.txt")), INPUT / "equal_steps", EARLIER / "equal_steps",
               SEEDS / "cross_seed0.txt", SEEDS / "self_w16_pool4_seed0.txt", SEEDS / "self_w16_seed0.txt",
               SEEDS / "self_w16_seed1.txt"], [INPUT / "call3_printed.txt"]),
    "output": ([OUTPUT / "study"], []),
    "byte structure": ([OUTPUT / "study" / f"baseline_seed{k}.txt" for k in range(7)]
                       + [RECORDS / "2026-12-07_byte_structure" / "study"], []),
}
ROWS = [  # (variant, what it is, study)
    ("cross", "cross-attention to the token's bytes (vocabulary table)", "input"),
    ("self_w1", "within-token byte self-attention", "input"),
    ("self_w1_l2", "within-token, two layers", "input"),
    ("self_w16_pool4", "byte self-attention over 16 tokens, `byte_pool=4`", "input"),
    ("self_w16", "byte self-attention over 16 tokens", "input"),
    ("ssm_pool4", "state-space scan over every earlier byte, `byte_pool=4`", "byte structure"),
    ("ngram", "hashed byte n-grams", "input"),
    ("bigram", "hashed token bigram (no bytes)", "input"),
    ("ngram_bigram", "byte n-grams + bigram", "input"),
    ("prefix", "prefix-token prediction (bytes at the output)", "output"),
    ("mtp", "multi-token prediction (no bytes)", "byte structure"),
    ("bigram_mtp", "bigram + multi-token prediction (no bytes)", "output"),
    ("bigram_mtp_prefix", "bigram + multi-token + prefix", "output"),
    ("bigram_prefix", "bigram + prefix", "byte structure"),
    ("bigram_prefix_bytes4", "bigram + prefix + the next token's first 4 bytes", "byte structure"),
    ("ssm_pool4_bigram_prefix", "state-space scan + bigram + prefix", "byte structure"),
]


def existing(paths: list[Path]) -> list[Path]:
    return [path for path in paths if path.exists()]


def study_runs(name: str) -> dict[str, list[dict]]:
    logs, finals = STUDIES[name]
    return study.read_runs(existing(logs), existing(finals))


def final_losses(arm: list[dict]) -> list[float]:
    """Each run's last validation loss."""
    return [run["points"][-1][2] for run in arm]


def estimate_cell(estimate: list[float], form: str, unit: str = "") -> str:
    """A value as a cell, with its 95 % interval's ends where it has them, else marked as one seed's."""
    head = f"{estimate[0]:{form}}{unit}"
    return f"{head} (one seed)" if len(estimate) == 1 else f"{head} [{estimate[1]:{form}}, {estimate[2]:{form}}]"


def measured_cells(values: list[float], baseline: list[float], line) -> tuple[list[str], list[float]]:
    """An arm's seeds, its difference from the baseline and its worth per step as cells, and the worth with its
    interval's ends (one seed: the value alone, no interval)."""
    if len(values) == 1:
        diff, worth = [values[0] - study.mean_std(baseline)[0]], [line.steps_at(values[0]) / 400]
    else:
        diff, worth = list(study.welch_interval(values, baseline)), list(study.break_even(line, values, 400))
    return [str(len(values)), estimate_cell(diff, "+.4f"), estimate_cell(worth, ".3f")], worth


def answer_rows(costs: dict[str, float], cost_label: str) -> list[str]:
    """The table's Markdown rows: header, then one per variant of ROWS."""
    rows = [f"| variant | seeds | 400 steps: minus baseline [95 %] | worth per step [95 %] | cost per step "
            f"({cost_label}) | ahead at equal time [95 %] |", "| --- | --- | --- | --- | --- | --- |"]
    curve = study.read_runs([CURVE])
    cache = {}
    for variant, label, name in ROWS:
        if name not in cache:
            runs = study_runs(name)
            cache[name] = runs, study.baseline_curve([runs, curve], "baseline")[0]
        runs, line = cache[name]
        cost = costs.get(variant)
        cells = [label, "not run", "", "", f"{cost:.3f}" if cost else "not timed", ""]
        if variant in runs:
            cells[1:4], worths = measured_cells(final_losses(runs[variant]), final_losses(runs["baseline"]), line)
            if cost:
                cells[5] = estimate_cell([100 * (w / cost - 1) for w in worths], "+.1f", " %")
        rows.append("| " + " | ".join(cells) + " |")
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description="README's answer table from the committed logs.")
    parser.add_argument("--costs", type=Path, default=COSTS, help="bench_mot.py --ranks 8 table of the costs")
    args = parser.parse_args(argv)
    costs = read_costs(args.costs)
    if not math.isclose(costs.get("baseline", 0.0), 1.0):
        raise SystemExit(f"error: {args.costs} has no baseline row at 1.000; give a bench_mot.py table with it")
    print("\n".join(answer_rows(costs, "one rank of 8")))


if __name__ == "__main__":
    main()
