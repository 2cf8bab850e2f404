"""Runs the short track (one GPU, 400 steps of one 48K-token micro-step, schedules scaled) for several
variants and seeds, one train_gpt.py process each, one after the other; copies each log to
OUT/<variant>_seed<k>.txt, then draws OUT/val_loss.png and prints the comparison table (records/plot.py).

    python records/short_track.py --data DIR --out records/<date>_<name> [--variants baseline,self_w16] [--seeds 0,1]

DIR holds shards from data/fineweb.py (NAME_train_*.bin, NAME_val_*.bin and their byte shards). Run
nothing else on the machine if the times matter: the plot's second panel compares at equal time.
"""
import argparse
import re
import shutil
import subprocess
from pathlib import Path

import plot
from bench_mot import ROOT, VARIANTS as BENCH_VARIANTS, select_variants, train_command

SHORT_TRACK = ["--global_batch_seqs=1", "--num_iterations=400", "--muon_momentum_warmup_steps=70",
               "--val_loss_every=50", "--val_tokens=262144"]
VARIANTS = {**BENCH_VARIANTS, "cross_replace": ["--use_mot=1", "--mot_mix=replace"]}  # "cross": residual
LOG_LINE = re.compile(r"^log: (\S+)$", re.M)


def run(name: str, seed: int, args) -> Path:
    """Trains one variant with one seed and returns the path of its copied log."""
    command = train_command(args.data, args.name, *SHORT_TRACK, f"--seed={seed}", f"--log_dir={args.out / 'logs'}",
                            *VARIANTS[name], *args.extra.split())
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    found = LOG_LINE.search(result.stdout)
    if result.returncode != 0 or not found:
        tail = (result.stderr.strip() or result.stdout.strip() or "no output").splitlines()[-1]
        raise SystemExit(f"error: {name} seed {seed} failed: {tail}")
    target = args.out / f"{name}_seed{seed}.txt"
    shutil.move(found[1], target)
    return target


def main(argv=None):
    parser = argparse.ArgumentParser(description="Run the one-GPU short track for several variants and seeds.")
    parser.add_argument("--data", required=True, help="directory of token and byte shards")
    parser.add_argument("--name", default="wiki", help="shard name prefix given to data/fineweb.py")
    parser.add_argument("--out", type=Path, required=True, help="records folder for the logs and the plot")
    parser.add_argument("--variants", default="baseline,cross,self_w16",
                        help=f"comma-separated, from {', '.join(VARIANTS)}")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds")
    parser.add_argument("--extra", default="", help="more train_gpt.py arguments for every run (--extra=...)")
    args = parser.parse_args(argv)
    args.data, args.out = Path(args.data).resolve(), args.out.resolve()  # the runs start in the repository root
    names = select_variants(args.variants, VARIANTS)
    args.out.mkdir(parents=True, exist_ok=True)
    logs = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        for name in names:
            logs.append(run(name, seed, args))
            print(f"{name} seed {seed}: {logs[-1]}", flush=True)
    try:
        (args.out / "logs").rmdir()  # empty once every log has moved; checkpoints, if asked for, stay
    except OSError:
        pass
    labels = [log.stem for log in logs]
    plot.main([*map(str, logs), "--out", str(args.out / "val_loss.png"), "--labels", ",".join(labels),
               "--title", f"short track: {', '.join(names)}"])


if __name__ == "__main__":
    main()
