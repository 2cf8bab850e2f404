"""The GPU check: what every change to train_gpt.py, data/ or the records scripts passes on one GPU before it
lands, since CI runs on CPU without compile, FlexAttention or the FP8 head.

    python records/gpu_check.py --data DIR [--name fineweb] [--steps 20] [--lanes 0] [--resume]

DIR holds shards from data/fineweb.py (NAME_train_*.bin, NAME_val_*.bin and their byte shards). The checks:
- the CUDA tests (pytest -m cuda: the head's kernels, FlexAttention's masks, the compiled scan);
- every feature family compiled at the short track's shapes (one 48K-token micro-step per step, --steps
  steps with the schedules scaled to them, then 262,144 validation tokens 65,536 at a time): each must end
  without error, its training losses finite and the last below the first. The baseline takes 2 micro-steps
  per step (the record's gradient accumulation). Multi-token + prefix at depth 1, the byte targets, and byte
  self-attention over 16 tokens with byte_pool=4 train in `everything`;
- --lanes runs at a time on the one GPU (0: 2 on an 80 GB GPU, 3 on a 141 GB one), as
  records/short_track.py --parallel runs them: none may run out of memory;
- a 2-rank launch of the baseline's first step rehearsed on the GPU (torchrun --nproc_per_node=2
  train_gpt.py --rehearse=1), alone on it after the lanes: its training loss agrees with the baseline's
  step 1 within 1e-4 (the same two sequences, split over the ranks). It finds every graph compiled: the
  validation's 65,536 tokens at a time are what keep two ranks on an 80 GB GPU.
The first --lanes families compile the trunk, which every family shares through inductor's on-disk cache,
beside the CUDA tests (that compile is mostly one CPU core's work per process, so they cost the time of one);
the other families then share the lanes, the slowest first. Each check prints its line as it ends, then a
verdict names the commit (and the families, when --families leaves some out), and date, commit, machine,
verdict and wall time go into records/gpu_checks.md (--table). What each run printed is kept beside its log
(--logs). Exit status 0 only when every check passed.

A check that a call's time limit cuts can finish in the next call on the same machine: --resume with the same
--logs reads back each run that passed there (its kept output ends in exit status 0, and --logs names the
same commit) and runs the rest; the verdict says how many were read back, and the wall time is this call's.
"""
import argparse
import math
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from functools import partial
from pathlib import Path

from bench_mot import LOG_LINE, ROOT, VARIANTS, failure_line, train_command
from short_track import schedule

# in the order they start, the slowest (by their compile) first after the baseline
FAMILIES = ["baseline", "everything", "mtp_prefix_d21_frequent", "ssm_pool4", "self_w1", "self_w16", "cross", "ngram",
            "bigram"]
SHORT_TRACK = ["--global_batch_seqs=1", "--val_loss_every=0", "--val_tokens=262144", "--val_seq_len=65536",
               "--warmup_steps=1"]
REHEARSED = "baseline"  # the family whose first step the rehearsal's two ranks take again
REHEARSED_BATCH = ["--global_batch_seqs=2"]  # a sequence per rank; one process takes them as two micro-steps
PROFILED = "everything"  # the family that also profiles a step at its end, as every bench_mot.py run does
TRAIN_LOSS = re.compile(r"^step:(\d+)/\d+ train_loss:(\S+)", re.M)
FINAL = re.compile(r"^final val_loss:(\S+) ", re.M)
PEAK = re.compile(r"^peak memory allocated: (\d+) MiB", re.M)
LANE_MIB = 40 * 1024  # a family's run at its peak (34 GiB allocated) with room for the allocator
REHEARSAL = f"2 ranks rehearsed against the {REHEARSED}'s step 1"
REHEARSAL_TOLERANCE = 1e-4
TABLE_HEADER = "| date | commit | machine | verdict | wall time |\n| --- | --- | --- | --- | --- |\n"
EXIT_MARK = "\n[gpu_check] exit status: "  # ends each kept output, for --resume


def run(command: list[str], timeout: float, printed: Path | None = None) -> tuple[bool, str]:
    """Runs a command in the repository root; whether it exited 0, and what it printed (kept in printed too,
    with its exit status last)."""
    try:
        result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=timeout)
        ok, output, status = result.returncode == 0, result.stdout + result.stderr, str(result.returncode)
    except subprocess.TimeoutExpired:
        ok, output, status = False, f"timed out after {timeout:.0f} s", "timed out"
    if printed is not None:
        printed.parent.mkdir(parents=True, exist_ok=True)
        printed.write_text(f"{output}{EXIT_MARK}{status}\n")
    return ok, output


def run_kept(name: str, command: list[str], args) -> tuple[bool, str]:
    """run(command), its output kept under the name; with --resume, a run that an earlier invocation on the
    same commit ended with exit status 0 is read from what it kept instead of run again."""
    path = printed_path(args, name)
    if args.resume and path.is_file():
        output, mark, status = path.read_text().rpartition(EXIT_MARK)
        if mark and status.strip() == "0":
            args.resumed.append(name)
            return True, output
    return run(command, args.timeout, path)


def printed_path(args, name: str) -> Path:
    """Where the run name's output is kept."""
    return args.logs / f"{name}_printed.txt"


def run_log(ok: bool, printed: str) -> tuple[str | None, str]:
    """The text of a finished run's log and its path, or None and why there is none."""
    if not ok:
        return None, f"failed: {failure_line(printed)}"
    logs = LOG_LINE.findall(printed)
    if not logs:
        return None, "printed no log path"
    return Path(logs[-1]).read_text(), logs[-1]


def train_losses(log_text: str) -> list[float]:
    """The training losses of a train_gpt.py log, in step order."""
    return [float(loss) for _, loss in TRAIN_LOSS.findall(log_text)]


def judge_run(ok: bool, printed: str) -> tuple[bool, str]:
    """Whether one training run passed (no error, finite losses, the last below the first), and its line."""
    text, path = run_log(ok, printed)
    if text is None:
        return False, path
    losses, final = train_losses(text), FINAL.search(text)
    if len(losses) < 2 or final is None:
        return False, f"its log {path} holds {len(losses)} training losses and {'a' if final else 'no'} final line"
    if not all(math.isfinite(loss) for loss in losses + [float(final[1])]):
        return False, f"a loss is not finite (training {losses}, validation {final[1]})"
    if not losses[-1] < losses[0]:
        return False, f"the training loss did not fall ({losses[0]:.4f} at step 1, {losses[-1]:.4f} at the end)"
    peak = PEAK.search(text)
    memory = f", peak {int(peak[1]) / 1024:.1f} GiB" if peak else ""
    return True, f"loss {losses[0]:.3f} -> {losses[-1]:.3f}, val {float(final[1]):.3f}{memory}"


def check_cuda_tests(args) -> tuple[bool, str]:
    ok, printed = run_kept("cuda_tests", [sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider",
                                         "tests"], args)
    summary = next((line for line in reversed(printed.splitlines()) if re.search(r"\d+ (passed|failed)", line)), "")
    if ok and "skipped" in summary:
        return False, f"{summary.strip('= ')}: a CUDA test skipped on the GPU"
    return ok, summary.strip("= ") or failure_line(printed)


def family_label(name: str) -> str:
    return f"{name} ({' '.join(VARIANTS[name]) or 'no flags'})"


def family_command(name: str, args, *changes: str) -> list[str]:
    """The family's train_gpt.py command, with changes to its flags."""
    batch = REHEARSED_BATCH if name == REHEARSED else []
    profiled = ["--profile_steps=1"] if name == PROFILED else []
    return train_command(args.data, args.name, *SHORT_TRACK, *schedule(args.steps), *batch, *profiled,
                         f"--log_dir={args.logs / name}", *VARIANTS[name], *changes)


def check_family(name: str, args) -> tuple[bool, str]:
    return judge_run(*run_kept(name, family_command(name, args), args))


def side_by_side(run_results: list[tuple[str, bool, str]], lanes: int) -> tuple[str, bool, str]:
    """The runs shared the one GPU, lanes at a time: none may have run out of memory."""
    short_of_memory = [name.split(" (")[0] for name, _, line in run_results if "out of memory" in line.lower()]
    if short_of_memory:
        return f"{lanes} runs side by side", False, f"out of memory: {', '.join(short_of_memory)}"
    return f"{lanes} runs side by side", True, "every run fit beside the others on the one GPU, validation included"


def first_step_loss(ok: bool, printed: str) -> tuple[float | None, str]:
    """The first step's training loss of a run, or None and why not."""
    text, why = run_log(ok, printed)
    losses = train_losses(text) if text is not None else []
    return (losses[0], "") if losses else (None, why if text is None else "no training loss in its log")


def check_rehearsal(args) -> tuple[bool, str]:
    """The baseline family's first step again, by 2 ranks sharing the GPU alone (the two need about 60 GB),
    then its validation: their step 1 loss agrees with the family's."""
    single = None
    if printed_path(args, REHEARSED).is_file():
        single = first_step_loss(True, printed_path(args, REHEARSED).read_text())[0]
    command = family_command(REHEARSED, args, "--stop_step=1", "--rehearse=1", f"--log_dir={args.logs / 'two_ranks'}")
    command[1:1] = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    rehearsed, why = first_step_loss(*run_kept("two_ranks", command, args))
    if single is None or rehearsed is None:
        return False, f"{REHEARSED}: {'no loss' if single is None else single}; 2 ranks: {why or rehearsed}"
    gap = abs(single - rehearsed)
    verdict = "agree" if gap <= REHEARSAL_TOLERANCE else f"differ by more than {REHEARSAL_TOLERANCE}"
    return gap <= REHEARSAL_TOLERANCE, f"step 1 loss {single:.6f} ({REHEARSED}), {rehearsed:.6f} (2 ranks): {verdict}"


def report(name: str, ok: bool, line: str) -> None:
    print(f"{'pass' if ok else 'FAIL'}  {name}: {line}", flush=True)


def run_checks(checks: list[tuple[str, object]], workers: int) -> dict[str, tuple[bool, str]]:
    """Runs the (name, check) pairs workers at a time, starting them in order; prints each line as it ends."""
    results = {}
    with ThreadPoolExecutor(max(workers, 1)) as pool:
        started = {pool.submit(check): name for name, check in checks}
        for done in as_completed(started):
            results[started[done]] = done.result()
            report(started[done], *results[started[done]])
    return results


def gpu() -> tuple[str, int] | None:
    """The first GPU's name and memory in MiB, as nvidia-smi gives them, or None without one."""
    try:
        first = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader,nounits"],
                               capture_output=True, text=True, timeout=30).stdout.split("\n")[0]
        name, memory = first.rsplit(",", 1)
        return name.strip(), int(memory)
    except (OSError, subprocess.SubprocessError, ValueError):
        return None


def commit() -> str:
    sys.path.insert(0, str(ROOT))
    from train_gpt import git_commit
    return git_commit()


def mark_commit(path: Path, code: str, resume: bool) -> None:
    """Names the commit that the kept outputs in path's folder belong to; with resume, they must be code's."""
    if resume:
        kept = path.read_text().strip() if path.is_file() else "no commit"
        if kept != code:
            raise SystemExit(f"error: --resume: {path.parent} holds the check of {kept}, not {code}; give the --logs "
                             "of this commit's earlier call, or drop --resume")
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(code + "\n")


def append_row(table: Path, row: str) -> None:
    if not table.exists():
        table.write_text("# GPU checks\n\nOne line per run of `records/gpu_check.py` (README, Contributing).\n\n"
                         + TABLE_HEADER)
    with open(table, "a") as f:
        f.write(row + "\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Check a commit on one GPU: CUDA tests, every feature compiled, "
                                     "two runs side by side, a rehearsed 2-rank launch.")
    parser.add_argument("--data", required=True, type=Path, help="directory of NAME_* token and byte shards")
    parser.add_argument("--name", default="fineweb",
                        help="their name prefix: data/fineweb.py's --name, whose default is fineweb too")
    parser.add_argument("--steps", type=int, default=20, help="training steps of each feature family")
    parser.add_argument("--lanes", type=int, default=0,
                        help="runs at a time on the GPU (0: as many as its memory holds at 40 GiB each, 2 to 3)")
    parser.add_argument("--families", default=",".join(FAMILIES), help=f"comma-separated, from {', '.join(FAMILIES)}")
    parser.add_argument("--timeout", type=float, default=400, help="seconds for each command")
    parser.add_argument("--logs", type=Path, default=Path("logs/gpu_check"), help="where the runs' logs go")
    parser.add_argument("--commit", default="", help="the commit named in the verdict and the table (default: the "
                        "checkout's, marked * where its files differ): for a copy of a tree whose repository is not "
                        "at that commit")
    parser.add_argument("--table", type=Path, default=ROOT / "records" / "gpu_checks.md", help="the table of checks")
    parser.add_argument("--resume", action="store_true", help="read each check that an earlier invocation with "
                        "these --logs passed, on the same commit, from its kept output; run the rest")
    args = parser.parse_args(argv)
    families = args.families.split(",")
    if unknown := [f for f in families if f not in FAMILIES]:
        raise SystemExit(f"error: unknown families {unknown}; choose from {', '.join(FAMILIES)}")
    if len(set(families)) < len(families):
        raise SystemExit(f"error: --families {args.families} names a family twice; give each once")
    if args.steps < 2 or args.lanes < 0:
        raise SystemExit(f"error: --steps {args.steps} --lanes {args.lanes}: at least 2 steps (a loss must fall) "
                         "and 1 lane (0: from the GPU's memory)")
    args.data, args.logs = args.data.resolve(), args.logs.resolve()
    if not any(args.data.glob(f"{args.name}_train_*.bin")):
        raise SystemExit(f"error: no {args.name}_train_*.bin shards in {args.data}; tokenize text with "
                         "python data/fineweb.py, or give --name")
    found = gpu()
    if found is None:
        raise SystemExit("error: no GPU answers nvidia-smi: the GPU check runs on a machine with one")
    machine, memory_mib = found
    args.lanes = args.lanes or min(3, max(2, memory_mib // LANE_MIB))
    start, code = time.monotonic(), args.commit or commit()
    args.resumed = []
    mark_commit(args.logs / "commit.txt", code, args.resume)
    trained = [(family_label(name), partial(check_family, name, args)) for name in families]
    first, rest = [("CUDA tests", partial(check_cuda_tests, args)), *trained[:args.lanes]], trained[args.lanes:]
    last = [(REHEARSAL, partial(check_rehearsal, args))] if REHEARSED in families else []
    results = run_checks(first, len(first)) | run_checks(rest, args.lanes) | run_checks(last, 1)
    names = ["CUDA tests", *map(family_label, families), *(name for name, _ in last)]
    checks = [(name, *results[name]) for name in names]
    if args.lanes > 1:
        checks.append(side_by_side(checks[1:len(families) + 1], args.lanes))
        report(*checks[-1])
    passed = sum(ok for _, ok, _ in checks)
    seconds = time.monotonic() - start
    verdict = f"{'pass' if passed == len(checks) else 'FAIL'} ({passed} of {len(checks)})"
    if families != FAMILIES:
        verdict += f", families {','.join(families)} only"
    if args.resumed:
        verdict += f"; {len(args.resumed)} of them read from an earlier call's output (--resume)"
    print(f"GPU check of {code}: {verdict} on {machine} in {seconds:.0f} s ({args.lanes} at a time)")
    append_row(args.table, f"| {time.strftime('%Y-%m-%d')} | `{code}` | {machine} | {verdict} | {seconds:.0f} s |")
    return 0 if passed == len(checks) else 1


if __name__ == "__main__":
    sys.exit(main())
