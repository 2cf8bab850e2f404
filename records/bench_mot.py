"""Times the MoT variants against the baseline: median ms per micro-step (forward, backward and the
optimizer step's share), GPU kernel time per micro-step, peak memory and compile time, one train_gpt.py
process per variant, then a table with ratios.

    python records/bench_mot.py --data DIR [--variants baseline,cross,self_w16] [--micro_steps 8] [--steps 40]

DIR holds shards NAME_train_*.bin, NAME_val_*.bin and their byte shards (--name, default fineweb, as
data/fineweb.py's and data/cached_fineweb10B.py's).
Each step is --micro_steps micro-steps of 48K tokens on one GPU (--global_batch_seqs) on the first steps of
the record schedule; the median skips the first 20 steps (the first half of fewer than 40). The default of 8
gives each micro-step about the work of one rank of the 8-GPU run: a forward and backward and an eighth of
the Newton-Schulz work (Adam and the weight updates, which every rank does in full, are shared by 8
micro-steps here); --micro_steps 1 adds a whole one-GPU optimizer step to every micro-step instead. After
the timed steps each run profiles --profile_steps more (train_gpt.py's profile_steps) and the table reports
the summed kernel time per micro-step, which does not depend on launch gaps or on other work on the
machine. The transformer's compiled graph is cached on disk, so the first variant compiles for about
2 minutes on an H200 and later ones for 10-36 s. Run nothing else on the machine while timing.
--baseline_ms supplies the denominator when the baseline ran in another command.

--against DIR times every variant in another checkout as well (an older commit: `git worktree add DIR
COMMIT`), on the same GPU in the same command, the two runs of a variant one after the other (their order
alternating from variant to variant); each tree's ratios are to its own baseline, and a last table gives
this tree's time over the other's, per variant. --against_data gives that tree its own shards, for a
commit that reads an older byte-shard format (tokenize them with its own data/fineweb.py).

--nproc N runs each variant on N GPUs of this host through torchrun, --micro_steps micro-steps on each per
step (--micro_steps 1: the per-rank regime of the 8-GPU run, with its gradient exchange); times and kernel
time are rank 0's, per micro-step.

--ranks N estimates the step of one rank of an N-GPU run on one GPU: one micro-step per optimizer step and
1/N of Muon's Newton-Schulz work (train_gpt.py's bench_ranks; no communication, and the training itself is
wrong: only this rank's matrices move), so ms per micro-step is the predicted step time of the N-GPU run
without its gradient all-reduce and Muon all-gather.
"""
import argparse
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = {
    "baseline": [],
    "cross": ["--use_mot=1"],  # through the vocabulary table (mot_vocab_table)
    "cross_per_token": ["--use_mot=1", "--mot_vocab_table=0"],
    "self_w1": ["--use_mot=1", "--byte_self_attn=1", "--byte_window_tokens=1"],  # within each token: table
    "self_w1_per_token": ["--use_mot=1", "--byte_self_attn=1", "--byte_window_tokens=1", "--mot_vocab_table=0"],
    "self_w1_l2": ["--use_mot=1", "--byte_self_attn=1", "--byte_window_tokens=1", "--byte_layers=2"],
    "self_w1_l2_mlp": ["--use_mot=1", "--byte_self_attn=1", "--byte_window_tokens=1", "--byte_layers=2",
                       "--byte_mlp=1"],
    "self_w4": ["--use_mot=1", "--byte_self_attn=1", "--byte_window_tokens=4"],
    "self_w16": ["--use_mot=1", "--byte_self_attn=1", "--byte_window_tokens=16"],
    "self_w64": ["--use_mot=1", "--byte_self_attn=1", "--byte_window_tokens=64"],
    "self_w16_dim128": ["--use_mot=1", "--byte_self_attn=1", "--byte_dim=128"],
    "self_w16_dim768": ["--use_mot=1", "--byte_self_attn=1", "--byte_dim=768"],
    "self_w16_pool4": ["--use_mot=1", "--byte_self_attn=1", "--byte_pool=4"],
    "bigram": ["--bigram_hash_rows=251520"],  # 5 x the padded vocabulary, as the 2026 record
    "bigram_input": ["--bigram_hash_rows=251520", "--bigram_placement=input"],
    "ngram": ["--byte_ngram_rows=251520"],
    "cross_bigram": ["--use_mot=1", "--bigram_hash_rows=251520"],
    "self_w1_bigram": ["--use_mot=1", "--byte_self_attn=1", "--byte_window_tokens=1", "--bigram_hash_rows=251520"],
    "ngram_bigram": ["--byte_ngram_rows=251520", "--bigram_hash_rows=251520"],
    "mtp": ["--mtp_weights=0.5,0.25"],  # the tokens 2 and 3 ahead, the 2026 record's weights
    "prefix": ["--prefix_weight=0.25"],  # the next token's prefix token, the 2026 record's weight
    "prefix_d21": ["--prefix_weight=0.25", "--prefix_depth=21"],  # the whole chain, down to the first byte
    "mtp_prefix": ["--mtp_weights=0.5,0.25", "--prefix_weight=0.25"],
    "bigram_mtp": ["--bigram_hash_rows=251520", "--mtp_weights=0.5,0.25"],
    "bigram_mtp_prefix": ["--bigram_hash_rows=251520", "--mtp_weights=0.5,0.25", "--prefix_weight=0.25"],
    "bigram_prefix": ["--bigram_hash_rows=251520", "--prefix_weight=0.25"],
    "cross_bigram_mtp_prefix": ["--use_mot=1", "--bigram_hash_rows=251520", "--mtp_weights=0.5,0.25",
                                "--prefix_weight=0.25"],
    "bigram_mtp_prefix_d21": ["--bigram_hash_rows=251520", "--mtp_weights=0.5,0.25", "--prefix_weight=0.25",
                              "--prefix_depth=21"],
    "ssm": ["--use_mot=1", "--byte_self_attn=1", "--byte_mixer=ssm"],  # a scan over every earlier byte
    "ssm_pool4": ["--use_mot=1", "--byte_self_attn=1", "--byte_mixer=ssm", "--byte_pool=4"],
    "mtp_prefix_d21_frequent": ["--mtp_weights=0.5,0.25", "--prefix_weight=0.25", "--prefix_depth=21",
                                "--prefix_choice=frequent"],
    "byte_targets": ["--byte_target_weight=0.25"],  # the next token's first 4 bytes
    "bigram_prefix_frequent": ["--bigram_hash_rows=251520", "--prefix_weight=0.25", "--prefix_choice=frequent"],
    "bigram_prefix_d21": ["--bigram_hash_rows=251520", "--prefix_weight=0.25", "--prefix_depth=21"],
    "bigram_prefix_bytes1": ["--bigram_hash_rows=251520", "--prefix_weight=0.25", "--byte_target_weight=0.25",
                             "--byte_target_count=1"],
    "bigram_prefix_bytes2": ["--bigram_hash_rows=251520", "--prefix_weight=0.25", "--byte_target_weight=0.25",
                             "--byte_target_count=2"],
    "bigram_prefix_bytes4": ["--bigram_hash_rows=251520", "--prefix_weight=0.25", "--byte_target_weight=0.25"],
    "bigram_prefix_kept": ["--bigram_hash_rows=251520", "--prefix_weight=0.5", "--prefix_decay=0"],  # held to the end
    "cross_bigram_prefix": ["--use_mot=1", "--bigram_hash_rows=251520", "--prefix_weight=0.25"],
    "ssm_pool4_bigram_prefix": ["--use_mot=1", "--byte_self_attn=1", "--byte_mixer=ssm", "--byte_pool=4",
                                "--bigram_hash_rows=251520", "--prefix_weight=0.25"],
    "everything": ["--use_mot=1", "--byte_self_attn=1", "--byte_pool=4", "--bigram_hash_rows=251520",
                   "--byte_ngram_rows=251520", "--mtp_weights=0.5,0.25", "--prefix_weight=0.25",
                   "--byte_target_weight=0.25"],
}
PATTERNS = {
    "ms": r"median step:[\d.]+ms \(([\d.]+)ms per micro-step",
    "peak_mib": r"peak memory[^:]*: (\d+) MiB",
    "compile_s": r"warm-up and compile: ([\d.]+)s",
    "val_loss": r"final val_loss:([\d.]+)",
    "kernel_total": r"Self CUDA time total: ([\d.]+(?:ms|us|s))",
}


def milliseconds(text: str) -> float:
    """'12.5ms', '830us' or '1.2s' from the profiler's table, in ms."""
    for unit, scale in (("ms", 1.0), ("us", 1e-3), ("s", 1e3)):
        if text.endswith(unit):
            return float(text[:-len(unit)]) * scale
    raise ValueError(text)


EXCEPTION_LINE = re.compile(r"^(\[rank\d+\]: )?(error: |[\w.]*(Error|Exception|Interrupt)\b)")  # torchrun: [rankN]
LOG_LINE = re.compile(r"^log: (\S+)$", re.M)  # where a train_gpt.py run wrote its log
LAUNCHER_ERROR = "torch.distributed.elastic.multiprocessing.errors.ChildFailedError"  # a rank failed: it says why


def failure_line(output: str) -> str:
    """Why a run failed: its last line that is an error or an exception, else its last line (compile errors end
    in advice to set TORCHDYNAMO_VERBOSE, below the exception itself; torchrun's own error follows the rank's)."""
    lines = [line.strip() for line in output.strip().splitlines() if line.strip()] or ["no output"]
    errors = [line for line in lines if EXCEPTION_LINE.match(line) and not line.startswith(LAUNCHER_ERROR)]
    return (errors[-1] if errors else lines[-1])[:300]


def merged_flags(flags) -> list[str]:
    """The --name=value flags with each name once: a later value replaces an earlier one in its place (--extra
    wins over the runner's own flags; train_gpt.py refuses a name given twice)."""
    merged = {}
    for flag in flags:
        merged[flag.split("=", 1)[0]] = flag
    return list(merged.values())


def select_variants(text: str, variants: dict) -> list[str]:
    """The comma-separated variant names of text, each checked against variants."""
    names = text.split(",")
    unknown = [n for n in names if n not in variants]
    if unknown:
        raise SystemExit(f"error: unknown variants {unknown}; choose from {', '.join(variants)}")
    if len(set(names)) < len(names):
        raise SystemExit(f"error: --variants {text} names a variant twice; give each once")
    return names


def train_command(data: Path, name: str, *flags: str, root: Path = ROOT) -> list[str]:
    """root's train_gpt.py command line on the NAME_train_* and NAME_val_* shards in data, then flags (merged:
    a later value of a name wins)."""
    return [sys.executable, str(root / "train_gpt.py"), *merged_flags([f"--train_files={data}/{name}_train_*.bin",
                                                                      f"--val_files={data}/{name}_val_*.bin", *flags])]


def run_variant(name: str, args, log_dir: Path, root: Path = ROOT, data: Path | None = None) -> dict:
    rank_share = [f"--bench_ranks={args.ranks}"] if args.ranks else []
    command = train_command(data or args.data, args.name, f"--val_tokens={262144 * args.nproc}",
                            f"--global_batch_seqs={args.micro_steps * args.nproc}", f"--stop_step={args.steps}",
                            "--val_loss_every=0", "--warmup_steps=1", f"--log_dir={log_dir}",
                            f"--profile_steps={args.profile_steps}", *rank_share, *VARIANTS[name],
                            *args.extra.split(), root=root)
    if args.nproc > 1:
        command[1:1] = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={args.nproc}"]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout, cwd=root)
        output = result.stdout + result.stderr
    except subprocess.TimeoutExpired:
        return dict(error=f"timed out after {args.timeout}s")
    found = {key: re.search(pattern, output) for key, pattern in PATTERNS.items()}
    if result.returncode != 0 or not all(found.values()):
        return dict(error=failure_line(output)[:200])
    measured = {key: float(match[1]) for key, match in found.items() if key != "kernel_total"}
    measured["kernel_ms"] = milliseconds(found["kernel_total"][1]) / (args.profile_steps * args.micro_steps)
    return measured


def main(argv=None):
    parser = argparse.ArgumentParser(description="Time MoT variants against the baseline on one GPU.")
    parser.add_argument("--data", required=True, help="directory of NAME_* token and byte shards")
    parser.add_argument("--name", default="fineweb",
                        help="their name prefix: data/fineweb.py's --name, whose default is fineweb too")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, from {', '.join(VARIANTS)}")
    parser.add_argument("--micro_steps", type=int, default=8, help="48K-token micro-steps per optimizer step")
    parser.add_argument("--steps", type=int, default=40, help="steps per variant (median after the first 20)")
    parser.add_argument("--profile_steps", type=int, default=1,
                        help="profiled steps after the timed ones (at least 1: the kernel time comes from them)")
    parser.add_argument("--timeout", type=int, default=300, help="seconds per variant, compile included")
    parser.add_argument("--baseline_ms", type=float, default=None, help="baseline ms per micro-step from another run")
    parser.add_argument("--log_dir", default="logs/bench", help="where the runs' logs go")
    parser.add_argument("--ranks", type=int, default=0,
                        help="estimate one rank of an N-GPU run: 1 micro-step per step, 1/N of Muon's work")
    parser.add_argument("--extra", default="", help="more train_gpt.py arguments for every variant, after its own "
                        "(a name given twice takes the later value); write it with '=', as --extra='--a=1 --b=2', "
                        "since its value starts with --")
    parser.add_argument("--nproc", type=int, default=1, help="GPUs of this host, through torchrun")
    parser.add_argument("--against", type=Path, default=None,
                        help="another checkout (an older commit) whose train_gpt.py runs every variant too")
    parser.add_argument("--against_data", type=Path, default=None,
                        help="--against's shards, where its byte shards have an older format (default: --data)")
    args = parser.parse_args(argv)
    if args.nproc < 1 or (args.ranks and args.nproc > 1):
        raise SystemExit(f"error: --nproc {args.nproc} --ranks {args.ranks}: --nproc takes a count of GPUs; "
                         "--ranks estimates one rank on one GPU, so give --nproc only without it")
    if args.profile_steps < 1 or args.steps < 2 or args.micro_steps < 1:
        raise SystemExit(f"error: --profile_steps {args.profile_steps} --steps {args.steps} --micro_steps "
                         f"{args.micro_steps}: at least 1 profiled step (the kernel time), 2 steps and 1 micro-step")
    if args.ranks:
        args.micro_steps = 1
    args.data, args.log_dir = Path(args.data).resolve(), Path(args.log_dir).resolve()  # runs start in the repo root
    check_shards(args.data, args.name, "--data")
    if args.against_data is not None:
        args.against_data = args.against_data.resolve()
        check_shards(args.against_data, args.name, "--against_data")
    if args.against is not None:
        args.against = args.against.resolve()
        if not (args.against / "train_gpt.py").is_file():
            raise SystemExit(f"error: --against {args.against} holds no train_gpt.py; give a whole checkout "
                             "(git worktree add DIR COMMIT)")
    names = select_variants(args.variants, VARIANTS)
    results = run_trees(names, args)
    regime = f"one rank of {args.ranks} GPUs (1/{args.ranks} of Muon, no communication)" if args.ranks else ""
    if args.nproc > 1:
        regime = f"on each of {args.nproc} GPUs (torchrun; rank 0's times)"
    print(f"\n{args.micro_steps} micro-steps per optimizer step {regime}".rstrip())
    print(results_table(results, args.baseline_ms))
    if args.against is not None:
        print(against_table(results, names, "@" + args.against.name))
    failed = [label for label, r in results.items() if "error" in r]
    if failed:
        raise SystemExit(f"error: {len(failed)} of {len(results)} runs failed ({', '.join(failed)}); their rows "
                         "say why")


def check_shards(data: Path, name: str, flag: str) -> None:
    """Refuses a data folder without NAME_train_*.bin shards before any run starts."""
    if not any(data.glob(f"{name}_train_*.bin")):
        raise SystemExit(f"error: {flag} {data} holds no {name}_train_*.bin shards; tokenize text with python "
                         "data/fineweb.py --output DIR --name NAME, or give --name")


def run_trees(names: list[str], args) -> dict[str, dict]:
    """Each variant's measurements, keyed by its name (this tree) and by name@DIR (--against's tree); the
    two runs of a variant follow each other, their order alternating over the variants."""
    trees = [(ROOT, "", args.data)]
    if args.against is not None:
        trees.append((args.against, "@" + args.against.name, args.against_data or args.data))
    results = {}
    for index, name in enumerate(names):
        for root, tag, data in trees if index % 2 == 0 else trees[::-1]:
            results[name + tag] = run_variant(name, args, args.log_dir, root, data)
            print(f"{name + tag}: {results[name + tag]}", flush=True)
    return {name + tag: results[name + tag] for name in names for _, tag, _ in trees}  # this tree's run first


def results_table(results: dict[str, dict], baseline_ms: float | None = None) -> str:
    """The markdown table of every run, each divided by the baseline of its own tree (--baseline_ms: this
    tree's baseline measured in another command)."""
    rows = ["\n| variant | ms / micro-step | x baseline | kernel ms / micro-step | x baseline | peak MiB | compile s "
            "| val loss |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for label, r in results.items():
        if "error" in r:
            rows.append(f"| {label} | {r['error']} | | | | | | |")
            continue
        tag = label[len(label.split("@")[0]):]
        own_baseline = results.get("baseline" + tag, {})
        base = own_baseline.get("ms") if tag else baseline_ms or own_baseline.get("ms")
        base_kernel = own_baseline.get("kernel_ms")
        ratio = f"{r['ms'] / base:.3f}" if base else "n/a"
        kernel_ratio = f"{r['kernel_ms'] / base_kernel:.3f}" if base_kernel else "n/a"
        rows.append(f"| {label} | {r['ms']:.2f} | {ratio} | {r['kernel_ms']:.2f} | {kernel_ratio} | "
                    f"{r['peak_mib']:.0f} | {r['compile_s']:.0f} | {r['val_loss']:.4f} |")
    return "\n".join(rows)


def against_table(results: dict[str, dict], names: list[str], tag: str) -> str:
    """Per variant, this tree's wall clock and kernel time over the other tree's."""
    rows = [f"\n| variant | ms, this tree / {tag[1:]} | kernel ms, this tree / {tag[1:]} |", "| --- | --- | --- |"]
    for name in names:
        new, old = results[name], results[name + tag]
        if "error" in new or "error" in old:
            rows.append(f"| {name} | failed | |")
            continue
        rows.append(f"| {name} | {new['ms'] / old['ms']:.3f} | {new['kernel_ms'] / old['kernel_ms']:.3f} |")
    return "\n".join(rows)


if __name__ == "__main__":
    main()
