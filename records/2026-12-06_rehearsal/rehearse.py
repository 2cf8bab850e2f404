"""The eight-GPU launch rehearsed on one GPU: 8 ranks (one micro-step each) and 2 ranks (four each) sharing
the GPU over gloo (train_gpt.py --rehearse=1) against one process (8 micro-steps), the baseline and the MoT
front end with the hashed bigram; checkpoints across the two layouts; SIGTERM to every rank. Runs that do
not share the GPU's time with each other's measurements run side by side; the 8-rank baseline runs alone,
for the rehearsal's wall clock and memory.

    python records/2026-12-06_rehearsal/rehearse.py --data DIR --out OUT [--deadline 560]
"""
import argparse
import os
import re
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SIZES = ["--seq_len=4096", "--val_seq_len=4096", "--val_tokens=131072", "--num_iterations=30", "--val_loss_every=0",
         "--warmup_steps=1"]
VARIANTS = {"baseline": [], "mot_bigram": ["--use_mot=1", "--bigram_hash_rows=251520"]}


def command(args, ranks: int, variant: str, name: str, *flags: str) -> list[str]:
    launcher = [sys.executable] if ranks == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={ranks}"]
    rehearse = ["--rehearse=1"] if ranks > 1 else []
    return [*launcher, str(ROOT / "train_gpt.py"), f"--train_files={args.data}/wiki_train_*.bin",
            f"--val_files={args.data}/wiki_val_*.bin", *SIZES, *VARIANTS[variant], *rehearse,
            f"--log_dir={args.out}/{name}", *flags]


class GpuMemory:
    """The GPU's memory in use, sampled by nvidia-smi every half second while a run lasts: its maximum."""

    def __init__(self):
        self.peak, self.stop = 0, threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def _sample(self):
        while not self.stop.wait(0.5):
            out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                                 capture_output=True, text=True).stdout.split()
            self.peak = max([self.peak, *map(int, out[:1])])

    def finish(self) -> int:
        self.stop.set()
        self.thread.join()
        return self.peak


def read_log(out: Path, name: str) -> dict:
    logs = sorted((out / name).glob("*.txt"))
    if not logs:
        return {}
    text = logs[-1].read_text()
    found = dict(first_loss=re.search(r"^step:1/\d+ train_loss:([\d.]+)", text, re.M),
                 val=re.search(r"^final val_loss:([\d.]+)", text, re.M),
                 peak=re.search(r"^peak memory allocated: (\d+) MiB", text, re.M),
                 checkpoint15=re.search(r"^checkpoint: (\S+state_step000015\.pt)$", text, re.M))
    return {key: match[1] for key, match in found.items() if match}


def run(args, name: str, cmd: list[str], timeout: float, memory: bool = False) -> dict:
    start, gpu = time.time(), GpuMemory() if memory else None
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
        rc, output = result.returncode, result.stdout + result.stderr
    except subprocess.TimeoutExpired as e:
        rc, output = "timeout", (e.stdout or b"").decode() + (e.stderr or b"").decode()
    record = dict(name=name, rc=rc, wall_s=round(time.time() - start), **read_log(args.out, name))
    if gpu is not None:
        record["gpu_peak_mib"] = gpu.finish()
    (args.out / f"{name}_printed.txt").write_text(output)
    print(record, flush=True)
    return record


def sigterm_every_rank(args, name: str, ranks: int, timeout: float) -> dict:
    """ranks processes started as a scheduler starts them (one per rank, no torchrun), SIGTERM to each once
    rank 0 has logged step 5: each one's exit code, rank 0's last lines."""
    env_base = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT="29731", WORLD_SIZE=str(ranks))
    cmd = command(args, 1, "baseline", name, "--rehearse=1")
    procs = [subprocess.Popen(cmd, cwd=ROOT, env=dict(env_base, RANK=str(r), LOCAL_RANK=str(r)),
                              stdout=subprocess.PIPE if r == 0 else subprocess.DEVNULL, stderr=subprocess.STDOUT,
                              text=True) for r in range(ranks)]
    seen, start = "", time.time()
    while time.time() - start < timeout:
        line = procs[0].stdout.readline()
        seen += line
        if line.startswith("step:5/") or (not line and procs[0].poll() is not None):
            break
    signalled = time.time()
    for p in procs:
        p.send_signal(signal.SIGTERM)
    codes = []
    for p in procs:
        try:
            p.wait(timeout=max(10, timeout - (time.time() - start)))
            codes.append(p.returncode)
        except subprocess.TimeoutExpired:
            p.kill()
            codes.append("hung")
    seen += procs[0].stdout.read()
    (args.out / f"{name}_printed.txt").write_text(seen)
    stopped = re.search(r"stopped on request after step (\d+)", seen)
    record = dict(name=name, exit_codes=codes, stopped_after=stopped and int(stopped[1]),
                  checkpoints=len(list((args.out / name).glob("*/state_step*.pt"))),
                  seconds_to_stop=round(time.time() - signalled))
    print(record, flush=True)
    return record


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--deadline", type=float, default=560)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.time()
    left = lambda: args.deadline - (time.time() - start)  # noqa: E731
    results = {}

    def phase(jobs):
        with ThreadPoolExecutor(len(jobs)) as pool:
            for record in pool.map(lambda job: run(args, *job[:2], left(), *job[2:]), jobs):
                results[record["name"]] = record

    phase([("one_a", command(args, 1, "baseline", "one_a", "--save_every=15")),
           ("one_b", command(args, 1, "baseline", "one_b")),
           ("one_a_mot", command(args, 1, "mot_bigram", "one_a_mot")),
           ("one_b_mot", command(args, 1, "mot_bigram", "one_b_mot"))])
    phase([("r8", command(args, 8, "baseline", "r8", "--save_every=15"), True)])
    ckpt8 = results["r8"].get("checkpoint15")
    jobs = [("r8_mot", command(args, 8, "mot_bigram", "r8_mot")), ("r2", command(args, 2, "baseline", "r2"))]
    if ckpt8:
        jobs.append(("resume_8_in_1", command(args, 1, "baseline", "resume_8_in_1", f"--resume={ckpt8}")))
    phase(jobs)
    ckpt1 = results["one_a"].get("checkpoint15")
    jobs = [("r2_mot", command(args, 2, "mot_bigram", "r2_mot"))]
    if ckpt1:
        jobs.append(("resume_1_in_8", command(args, 8, "baseline", "resume_1_in_8", f"--resume={ckpt1}")))
    phase(jobs)
    results["sigterm"] = sigterm_every_rank(args, "sigterm", 8, min(left(), 240))
    print("\n| run | exit | wall s | step 1 train loss | final val loss | rank 0 peak MiB | GPU peak MiB |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in results.values():
        if "exit_codes" in r:
            print(f"| {r['name']} | {r['exit_codes']} | stopped after {r['stopped_after']}, "
                  f"{r['checkpoints']} checkpoint(s), {r['seconds_to_stop']} s | | | | |")
            continue
        print(f"| {r['name']} | {r['rc']} | {r['wall_s']} | {r.get('first_loss', '')} | {r.get('val', '')} | "
              f"{r.get('peak', '')} | {r.get('gpu_peak_mib', '')} |")


if __name__ == "__main__":
    main()
