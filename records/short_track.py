"""Runs the short track (one GPU, 400 steps of one 48K-token micro-step, schedules scaled) for several
variants and seeds, one train_gpt.py process each (--parallel of them at a time on the GPU, or on each GPU
of --gpus, each taking the next run as one ends; --seeds_per_process K trains up to K consecutive seeds of a
variant in one process, compiled once); copies each log to OUT/<variant>_seed<k>.txt, then draws
OUT/val_loss.png and prints the comparison table (records/plot.py; records/study.py gives the statistics
over seeds).

    python records/short_track.py --data DIR --out records/<date>_<name> [--variants baseline,self_w16] [--seeds 0,1]
    python records/short_track.py ... --equal_time COSTS.md      # each variant gets the baseline's time
    python records/short_track.py ... --gpus 0,1,2,3 --parallel 2  # two runs at a time on each of four GPUs
    python records/short_track.py ... --seeds 0,1,2,3 --seeds_per_process 2  # two processes per variant
    python records/short_track.py ... --deadline 540   # stop at 540 s, keeping every seed that finished

DIR holds shards from data/fineweb.py (NAME_train_*.bin, NAME_val_*.bin and their byte shards). With
--equal_time, COSTS.md holds records/bench_mot.py's table (its "x baseline" column: the variant's wall
clock per step over the baseline's), and each variant runs round(--steps / cost) steps with every schedule
scaled to them: equal time by construction, whatever the machine does during the run. Several runs at a
time, or other work on the machine, leave the losses valid but not the times; the costs come from the
benchmark alone.
"""
import argparse
import os
import queue
import re
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import plot
from bench_mot import (LOG_LINE, ROOT, VARIANTS as BENCH_VARIANTS, check_shards, failure_line, select_variants,
                       train_command)

SHORT_TRACK = ["--global_batch_seqs=1", "--val_loss_every=50", "--val_tokens=262144"]
STEPS, MOMENTUM_WARMUP = 400, 70  # the short track's steps, and Muon's momentum warm-up over them
COST_ROW = re.compile(r"^\| (\w+) \| [^|\n]* \| ([\d.]+) \|", re.M)  # variant | ms | x baseline
VARIANTS = {**BENCH_VARIANTS, "cross_replace": ["--use_mot=1", "--mot_mix=replace"]}  # "cross": residual


def read_costs(path: Path) -> dict[str, float]:
    """Each variant's wall clock per step over the baseline's, from a records/bench_mot.py table."""
    if not path.is_file():
        raise SystemExit(f"error: {path}: no such cost table; write one with records/bench_mot.py --ranks 8 > {path}")
    costs = {name: float(ratio) for name, ratio in COST_ROW.findall(path.read_text())}
    if not costs:
        raise SystemExit(f"error: {path} holds no bench_mot.py table rows (| variant | ms | x baseline | ...)")
    return costs


def schedule(steps: int) -> list[str]:
    """Flags of a short track of this many steps: the learning-rate and window schedules follow
    num_iterations; Muon's momentum warm-up is scaled with it."""
    return [f"--num_iterations={steps}", f"--muon_momentum_warmup_steps={round(MOMENTUM_WARMUP * steps / STEPS)}"]


def steps_for(name: str, args) -> int:
    """--steps, or with --equal_time the steps that take the baseline's time for --steps."""
    if args.costs is None:
        return args.steps
    if name not in args.costs:
        raise SystemExit(f"error: {args.equal_time} has no cost for {name}; run records/bench_mot.py with it")
    return round(args.steps / args.costs[name])


def parse_seeds(text: str) -> list[int]:
    """--seeds: comma-separated whole numbers, each once."""
    try:
        seeds = [int(part) for part in text.split(",")]
    except ValueError:
        raise SystemExit(f"error: --seeds '{text}': give comma-separated whole numbers, such as 0,1,2") from None
    if len(set(seeds)) < len(seeds) or min(seeds) < 0:
        raise SystemExit(f"error: --seeds '{text}': each seed at most once, none negative (a repeated seed would train "
                         "the same run twice and overwrite its log)")
    return seeds


def seed_groups(seeds: list[int], size: int) -> list[list[int]]:
    """The seeds in runs of consecutive values, at most size each: what one train_gpt.py process trains
    (its seed and seed_count)."""
    groups = []
    for seed in seeds:
        if groups and len(groups[-1]) < size and seed == groups[-1][-1] + 1:
            groups[-1].append(seed)
        else:
            groups.append([seed])
    return groups


def seeds_label(name: str, seeds: list[int]) -> str:
    return f"{name} seed {','.join(map(str, seeds))}"


def seconds_left(args) -> float | None:
    """Seconds until --deadline (none without one)."""
    return None if args.deadline_at is None else args.deadline_at - time.monotonic()


def run(name: str, seeds: list[int], args, gpu: str | None = None) -> tuple[list[Path], str | None]:
    """Trains one variant with consecutive seeds in one process, on this process's GPU or, given gpu, on
    that GPU alone (the run sees it as its only device), stopped at --deadline; returns the paths of the
    copied logs of the seeds that finished, and what went wrong with the others (None if nothing)."""
    left = seconds_left(args)
    if left is not None and left <= 0:
        return [], f"{seeds_label(name, seeds)} not started before the deadline"
    command = train_command(args.data, args.name, *SHORT_TRACK, *schedule(steps_for(name, args)),
                            f"--seed={seeds[0]}", f"--seed_count={len(seeds)}", f"--log_dir={args.out / 'logs'}",
                            *VARIANTS[name], *args.extra.split())
    env = None if gpu is None else {**os.environ, "CUDA_VISIBLE_DEVICES": gpu, "LOCAL_RANK": "0"}
    try:
        result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env, timeout=left)
        printed, failed = result.stdout, result.returncode != 0
    except subprocess.TimeoutExpired as stopped:  # its output so far comes as bytes
        printed, failed, result = (stopped.stdout or b"").decode(errors="replace"), True, None
    found = LOG_LINE.findall(printed)[:len(seeds)]
    targets = [args.out / f"{name}_seed{seed}.txt" for seed in seeds[:len(found)]]
    for log, target in zip(found, targets):
        shutil.move(log, target)
    if len(found) == len(seeds) and not failed:
        return targets, None
    unfinished = seeds_label(name, seeds[len(found):] or seeds)
    if result is None:
        return targets, f"{unfinished} stopped at the deadline"
    return targets, f"{unfinished} failed: {failure_line(result.stdout + result.stderr)}"


def run_all(runs: list[tuple[str, list[int], int]], args) -> tuple[list[Path], list[str]]:
    """Runs each (variant, seeds, steps) as one process, --parallel at a time on each GPU of --gpus (or on
    this process's GPU), every worker taking the next from one queue; returns the logs of the seeds that
    finished, in the order of runs and seeds, and what went wrong with the others. A failed process stops
    no other."""
    pending = queue.SimpleQueue()
    for item in enumerate(runs):
        pending.put(item)
    logs, failures = {}, []

    def worker(gpu: str | None) -> None:
        while True:
            try:
                index, (name, seeds, steps) = pending.get_nowait()
            except queue.Empty:
                return
            logs[index], failure = run(name, seeds, args, gpu)
            if failure:
                failures.append(failure)
            where = "" if gpu is None else f" on GPU {gpu}"
            for seed, log in zip(seeds, logs[index]):
                print(f"{name} seed {seed} ({steps} steps){where}: {log}", flush=True)

    gpus = args.gpus.split(",") if args.gpus else [None]
    with ThreadPoolExecutor(len(gpus) * args.parallel) as pool:
        workers = [pool.submit(worker, gpu) for gpu in gpus for _ in range(args.parallel)]
    for done in workers:
        done.result()  # an error in the runner itself, not in a run
    return [log for i in range(len(runs)) for log in logs[i]], failures


def main(argv=None):
    parser = argparse.ArgumentParser(description="Run the one-GPU short track for several variants and seeds.")
    parser.add_argument("--data", required=True, help="directory of token and byte shards")
    parser.add_argument("--name", default="fineweb",
                        help="their name prefix: data/fineweb.py's --name, whose default is fineweb too")
    parser.add_argument("--out", type=Path, required=True, help="records folder for the logs and the plot")
    parser.add_argument("--variants", default="baseline,cross,self_w16",
                        help=f"comma-separated, from {', '.join(VARIANTS)}")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds")
    parser.add_argument("--seeds_per_process", type=int, default=1,
                        help="consecutive seeds of a variant trained in one process (train_gpt.py's seed_count)")
    parser.add_argument("--steps", type=int, default=STEPS, help="steps of the baseline (schedules scaled)")
    parser.add_argument("--equal_time", type=Path, default=None,
                        help="bench_mot.py cost table: each variant runs the steps of the baseline's time")
    parser.add_argument("--parallel", type=int, default=1, help="runs at a time on each GPU (losses valid, times not)")
    parser.add_argument("--gpus", default="", help="comma-separated GPU indices to spread the runs over "
                        "(default: this process's GPU)")
    parser.add_argument("--extra", default="", help="more train_gpt.py arguments for every run, after its own (a name "
                        "given twice takes the later value); write it with '=', as --extra='--a=1 --b=2'")
    parser.add_argument("--deadline", type=float, default=None,
                        help="seconds from now: runs still training then are stopped (their finished seeds kept), "
                        "later ones not started")
    args = parser.parse_args(argv)
    args.deadline_at = None if args.deadline is None else time.monotonic() + args.deadline
    if args.seeds_per_process < 1:
        raise SystemExit(f"error: --seeds_per_process {args.seeds_per_process}: a count of at least 1")
    if args.parallel < 1 or not re.fullmatch(r"(\d+(,\d+)*)?", args.gpus):
        raise SystemExit(f"error: --parallel {args.parallel} --gpus '{args.gpus}': --parallel takes a count of at "
                         "least 1, --gpus comma-separated GPU indices such as 0,1")
    args.data, args.out = Path(args.data).resolve(), args.out.resolve()  # the runs start in the repository root
    check_shards(args.data, args.name, "--data")
    names = select_variants(args.variants, VARIANTS)
    args.costs = read_costs(args.equal_time) if args.equal_time else None
    groups = seed_groups(parse_seeds(args.seeds), args.seeds_per_process)
    runs = [(name, seeds, steps_for(name, args)) for seeds in groups for name in names]
    args.out.mkdir(parents=True, exist_ok=True)
    logs, failures = run_all(runs, args)
    try:
        (args.out / "logs").rmdir()  # empty once every log has moved; checkpoints, if asked for, stay
    except OSError:
        pass
    if logs:
        plot.main([*map(str, logs), "--out", str(args.out / "val_loss.png"), "--labels",
                   ",".join(log.stem for log in logs), "--title", f"short track: {', '.join(names)}"])
    if failures:
        raise SystemExit(f"error: {len(failures)} of {len(runs)} processes did not finish every seed: "
                         + "; ".join(failures))


if __name__ == "__main__":
    main()
