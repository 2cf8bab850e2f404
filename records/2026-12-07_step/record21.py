"""The public record's code (KellerJordan/modded-nanogpt at 5ad9b36, record 21's train_gpt.py) made to run on
one GPU over this repository's shards, for issue 36's side-by-side step, and the median of its step times.

    python records/2026-12-07_step/record21.py patch ORIGINAL.py PATCHED.py
    cd /tmp && STOP_STEP=150 torchrun --standalone --nproc_per_node=1 PATCHED.py > record21.txt  # shards in /tmp/wiki
    python records/2026-12-07_step/record21.py median record21.txt [--first 21]

The patch changes nothing of the model, optimizer or schedule (1770 steps, windows and momentum as
recorded): it drops the eight-GPU assertion, points the loaders at wiki/wiki_{train,val}_*.bin (relative to
the working directory, as the record's glob needs), validates 262,144 tokens only at the end, and stops at
STOP_STEP. Each changed line must be found exactly once, so a different file is refused.
"""
import argparse
import re
import statistics
from pathlib import Path

PATCHES = [  # (the record's line, its replacement)
    ("assert world_size == 8 # this code is designed for 8xH100\n", ""),
    ('    train_files = "data/fineweb10B/fineweb_train_*.bin"', '    train_files = "wiki/wiki_train_*.bin"'),
    ('    val_files = "data/fineweb10B/fineweb_val_*.bin"', '    val_files = "wiki/wiki_val_*.bin"'),
    ("    val_tokens = 10485760", "    val_tokens = 262144"),
    ("    val_loss_every = 125", "    val_loss_every = 0"),
    ("    last_step = (step == train_steps)",
     '    last_step = (step == int(os.environ.get("STOP_STEP", train_steps)))'),
]
STEP_TIME = re.compile(r"^step:(\d+)/\d+ train_time:(\d+)ms", re.M)


def patch(text: str) -> str:
    for old, new in PATCHES:
        if text.count(old) != 1:
            raise SystemExit(f"error: {old.strip()!r} occurs {text.count(old)} times, not once: this is not "
                             "record 21's train_gpt.py (modded-nanogpt 5ad9b36)")
        text = text.replace(old, new)
    return text


def step_times(log: str) -> dict[int, int]:
    """Each training step's cumulative train_time in ms, from the record's step lines."""
    return {int(step): int(ms) for step, ms in STEP_TIME.findall(log)}


def step_summary(log: str, first: int) -> tuple[float, float]:
    """The median of the step-to-step differences of train_time (whole ms, as the record prints it) from step
    first on, and their mean over that span (finer than the median of whole numbers)."""
    times = step_times(log)
    steps = [s for s in sorted(times) if s >= first and s - 1 in times]
    if not steps:
        raise SystemExit(f"error: the log has no consecutive step lines from step {first} on")
    mean = (times[steps[-1]] - times[steps[0] - 1]) / len(steps)
    return statistics.median(times[s] - times[s - 1] for s in steps), mean


def main() -> None:
    parser = argparse.ArgumentParser(description="Record 21's code on one GPU: patch it, or read its log.")
    commands = parser.add_subparsers(dest="command", required=True)
    patching = commands.add_parser("patch", help="write the one-GPU copy")
    patching.add_argument("original", type=Path)
    patching.add_argument("patched", type=Path)
    reading = commands.add_parser("median", help="the median and mean ms per step of a log")
    reading.add_argument("log", type=Path)
    reading.add_argument("--first", type=int, default=21, help="the first step counted")
    args = parser.parse_args()
    if args.command == "patch":
        args.patched.parent.mkdir(parents=True, exist_ok=True)
        args.patched.write_text(patch(args.original.read_text()))
    else:
        median, mean = step_summary(args.log.read_text(), args.first)
        print(f"ms per step from step {args.first}: median {median:.1f}, mean {mean:.2f}")


if __name__ == "__main__":
    main()
