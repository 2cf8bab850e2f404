"""NanoGPT speedrun trainer: GPT-2 small on FineWeb token shards, after the February-2025 record.

    torchrun --standalone --nproc_per_node=8 train_gpt.py      # the full run (run.sh)
    python train_gpt.py --smoke                                  # tiny CPU run on committed sample text
    python train_gpt.py --num_iterations=200 --seq_len=16384     # any constant below, as --name=value
    WORLD_SIZE=8 python train_gpt.py --check                     # check constants and shards for 8 ranks; no training
"""
import copy
import dataclasses
import difflib
import functools
import glob
import math
import os
import platform
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.attention.flex_attention import BlockMask, flex_attention
from torch.profiler import ProfilerActivity

try:  # every CUDA build of PyTorch ships Triton; without it the head's row-wise ops run as PyTorch code
    import triton
    import triton.language as tl
except ImportError:
    triton = None

# read when CUDA first allocates: segments that grow in place let two runs share one GPU, where fixed segments
# left one run's validation logits no room beside the other's reserved but unused memory (the record sets it too)
os.environ.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")

# -----------------------------------------------------------------------------
# Constants: edit here or override on the command line as --name=value


@dataclass
class Hyperparameters:
    # data
    train_files: str = "data/fineweb10B/fineweb_train_*.bin"  # glob of training token shards
    val_files: str = "data/fineweb10B/fineweb_val_*.bin"  # glob of validation token shards
    val_tokens: int = 10_485_760  # validation tokens, fixed so that runs compare
    # batch
    seq_len: int = 48 * 1024  # tokens per micro-step on one GPU (one packed sequence)
    val_seq_len: int = 4 * 64 * 1024  # tokens per validation forward on one GPU
    global_batch_seqs: int = 8  # sequences per optimizer step over all GPUs; 8/N micro-steps per GPU
    # model
    vocab_size: int = 50257  # GPT-2 vocabulary; the head is padded to a multiple of 128
    num_layers: int = 12  # transformer blocks, half encoder and half decoder of the U-net
    model_dim: int = 768  # residual stream width
    num_heads: int = 6  # attention heads per layer
    head_dim: int = 128  # width of each attention head
    no_attn_layer: int = 7  # index of the block without attention (the record's 8th layer); -1 for none
    attn_scale: float = 0.12  # attention logit scale, in place of head_dim ** -0.5
    logit_cap: float = 15.0  # logits = 2 * cap * sigmoid(2 * z / cap), cap at most 40
    # attention windows
    attn_block_size: int = 128  # FlexAttention block; windows grow in whole blocks
    window_max_tokens: int = 1728  # long window at the end of training (rounded up to a block)
    flex_kernel_options: str = ""  # FlexAttention kernels' options, e.g. "BLOCK_M=64,num_warps=4"; empty: its own
    # Mixture-of-Tokenizers front end
    use_mot: bool = False  # every token also sees its own UTF-8 bytes (off: exactly the baseline)
    bytes_per_token: int = 16  # byte slot per token; must match the byte shards
    byte_align: str = "right"  # "right" or "left"; must match the byte shards
    byte_dim: int = 256  # width of the byte stream
    byte_heads: int = 2  # heads of 64 in the byte self-attention and the token-byte cross-attention
    byte_self_attn: bool = False  # causal sliding-window self-attention over the byte stream
    byte_window_tokens: int = 16  # its window in tokens (times the slots per token in bytes); 1: each token's own
    byte_layers: int = 1  # layers of byte self-attention
    byte_mixer: str = "attention"  # the byte layers' mixer: "attention" (the window), "ssm" (scans every earlier byte)
    byte_ssm_state: int = 32  # state size per head of the ssm mixer
    byte_mlp: bool = False  # an MLP (4x wide, ReLU squared) after each byte self-attention layer
    byte_doc_mask: bool = True  # bytes never attend across an end-of-text boundary
    byte_pool: int = 1  # sum each token's bytes in groups of this many: bytes_per_token / byte_pool slots
    mot_mix: str = "residual"  # "replace": the byte summary is the embedding; "residual": added, learned weights
    mot_vocab_table: bool = True  # front end blind to other tokens: run once per vocabulary entry per step (off: per token)
    # hashed context embeddings: local context across token boundaries for the price of a lookup
    bigram_hash_rows: int = 0  # rows of the hashed (previous token, token) embedding; 0: off (2026 record: 251,520)
    bigram_placement: str = "blocks"  # "blocks": added before every block, learned weights; "input": to the embedding
    byte_ngram_rows: int = 0  # rows of the hashed byte n-gram embedding; 0: off
    byte_ngram_max: int = 6  # n-grams of 2 .. this many bytes ending at each token's last byte
    # extra training targets at the output, in the head's one softmax (validation stays next-token loss)
    mtp_weights: str = ""  # weights of the tokens 2, 3, ... ahead at step 0, comma-separated; empty: off (record: "0.5,0.25")
    prefix_weight: float = 0.0  # weight of the next token's prefix token at step 0; 0: off (record: 0.25)
    prefix_depth: int = 1  # prefix tokens along the chain, each weighted half the one before; 21 reaches every first byte
    prefix_choice: str = "longest"  # the prefix token: the "longest" proper prefix, or the most "frequent" in training
    prefix_decay: bool = True  # prefix and byte targets decay to 0 over the run's second third (off: kept to the end)
    byte_target_weight: float = 0.0  # weight of the next token's first bytes as targets at step 0; 0: off
    byte_target_count: int = 4  # bytes predicted, each by a head of 258 classes (byte values, token ended, end-of-text)
    # optimization
    num_iterations: int = 1770  # optimizer steps; the schedules span this many
    stop_step: int = 0  # end the run early after this many steps, schedules unchanged (0: run them all)
    cooldown_frac: float = 0.4  # final fraction of steps over which the learning rates decay
    final_lr_frac: float = 0.1  # learning rate multiplier at the last step
    adam_head_lr: float = 0.008  # Adam learning rate of the lm_head
    adam_embed_lr: float = 0.6  # Adam learning rate of token, value and byte embeddings
    adam_scalar_lr: float = 0.04  # Adam learning rate of gains and mixing scalars
    adam_beta1: float = 0.8  # Adam first-moment decay
    adam_beta2: float = 0.95  # Adam second-moment decay
    adam_eps: float = 1e-10  # Adam epsilon
    muon_lr: float = 0.05  # Muon learning rate of hidden matrices
    muon_momentum: float = 0.95  # Muon momentum after warmup
    muon_momentum_start: float = 0.85  # Muon momentum at step 0
    muon_momentum_warmup_steps: int = 300  # steps over which Muon momentum rises linearly
    muon_ns_steps: int = 5  # Newton-Schulz iterations per Muon update
    # run
    val_loss_every: int = 125  # validate every this many steps (0: only at the end)
    warmup_steps: int = 3  # compile warm-up steps on random tokens, undone before the clock starts
    seed: int = 0  # random seed of initialization
    seed_count: int = 1  # train seeds seed .. seed + seed_count - 1 in this process, a log each: compiles once
    device: str = "auto"  # "cuda", "cpu", or "auto" (cuda when present)
    coordinate_descent_tuning: bool = False  # inductor kernel autotuning: compile took over 4.5 min on an H200 (DEVLOG)
    log_dir: str = "logs"  # folder of <run id>.txt and the run's checkpoints, relative to the working directory
    profile_steps: int = 0  # after the run, profile this many more steps on random tokens (tables in the log)
    bench_ranks: int = 0  # timing only: one GPU does one of N ranks' share of optimizers and table (wrong training)
    rehearse: bool = False  # torchrun ranks share the GPUs (rank r on GPU r mod count), exchange over gloo: slow
    devlog: str = ""  # append the run's result line with this note to DEVLOG.md
    # checkpoints
    save_checkpoint: bool = False  # write a checkpoint when the run ends
    save_every: int = 0  # also write one every this many steps (0: only at the end)
    resume: str = ""  # continue the run saved in this checkpoint: same constants, data position, schedules
    resume_force: bool = False  # resume even where constants differ from the checkpoint's


HERE = Path(__file__).resolve().parent  # the checkout: the smoke sample and DEVLOG.md live here

# --smoke: a tiny configuration of the same model for CPU, from any working directory. Precedence: the
# constants above, then this preset, then --name=value flags
SMOKE_PRESET = dict(
    train_files=str(HERE / "data/smoke/smoke_train_*.bin"), val_files=str(HERE / "data/smoke/smoke_val_*.bin"),
    val_tokens=8192,
    seq_len=128, val_seq_len=256, model_dim=64, num_heads=2, head_dim=32, attn_block_size=16,
    window_max_tokens=112, num_iterations=40, val_loss_every=10, warmup_steps=1, device="cpu",
    muon_momentum_warmup_steps=20, byte_dim=64, byte_heads=1,
    mot_vocab_table=False,  # same function; over the 50,257 token ids the table is 400x a 128-token micro-step
)


class RunError(Exception):
    """A problem with the configuration, data or environment, reported as one line."""


class DataError(RunError):
    """A missing, malformed or inconsistent data shard."""


# -----------------------------------------------------------------------------
# Command-line overrides


def parse_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{text!r} is not a boolean (use 1/0, true/false)")


def parse_overrides(argv: list[str]) -> tuple[dict, bool]:
    """The --name=value overrides, typed, and whether --smoke was given."""
    fields = {f.name: f for f in dataclasses.fields(Hyperparameters)}
    overrides, smoke = {}, False
    for arg in argv:
        if arg == "--smoke":
            smoke = True
            continue
        if not arg.startswith("--") or "=" not in arg:
            raise RunError(f"cannot parse argument {arg!r}: use --name=value, --smoke or --help")
        name, text = arg[2:].split("=", 1)
        if name not in fields:
            close = difflib.get_close_matches(name, fields, n=1)
            hint = f"did you mean --{close[0]}?" if close else "python train_gpt.py --help lists them"
            raise RunError(f"unknown constant {name!r}: {hint}")
        if name in overrides:
            raise RunError(f"--{name} is given twice (the second: {arg!r}); give each constant once")
        kind = fields[name].type
        try:
            overrides[name] = parse_bool(text) if kind is bool else kind(text)
        except ValueError as e:
            raise RunError(f"--{name}={text}: expected {kind.__name__} ({e})")
    return overrides, smoke


def parse_args(argv: list[str]) -> Hyperparameters:
    """Builds the configuration: the constants above, then the --smoke preset, then --name=value overrides."""
    overrides, smoke = parse_overrides(argv)
    return Hyperparameters(**{**(SMOKE_PRESET if smoke else {}), **overrides})


CONSTANT_LINE = re.compile(r"^    (\w+): (\w+) = (.+?)  # (.+)$")
SECTION_LINE = re.compile(r"^    # (.+)$")


def constant_docs(source: str) -> dict[str, list[tuple[str, str, str]]]:
    """Section -> [(name, default as written, comment)] of the constants, read from Hyperparameters' source."""
    body = source[source.index("class Hyperparameters:"):]
    body = body[:body.index("\n\n\n")]
    sections = {}
    for line in body.splitlines():
        if found := SECTION_LINE.match(line):
            section = sections.setdefault(found[1], [])
        elif found := CONSTANT_LINE.match(line):
            section.append((found[1], found[3], found[4]))
    return sections


def constants_help() -> str:
    """--help: every constant with its default as it can be typed back (and as written, where that differs) and
    its comment, grouped as at the top of this file."""
    lines = [__doc__.strip(), "", "Constants (override as --name=value; booleans as 1/0 or true/false):"]
    values = dataclasses.asdict(Hyperparameters())
    for section, constants in constant_docs(Path(__file__).read_text()).items():
        lines.append(f"\n  {section}")
        for name, written, comment in constants:
            shown = f"({written}) " if written.replace('"', "") != str(values[name]) else ""
            lines.append(f"    --{name}={values[name]}  {shown}{comment}")
    return "\n".join(lines)


def constants_table() -> str:
    """The README's Markdown table of the constants, from the same source as --help."""
    rows = ["| constant | default | meaning |", "| --- | --- | --- |"]
    for section, constants in constant_docs(Path(__file__).read_text()).items():
        rows += [f"| **{section}** | | |"] + [f"| `{name}` | `{default}` | {comment} |" for name, default, comment in constants]
    return "\n".join(rows)


@functools.cache
def committed_defaults() -> dict:
    """The constants' defaults as committed (git HEAD's train_gpt.py), so that edits of the file show in the
    logs like flags do; the file's own defaults outside a git checkout. Constants the commit lacks keep
    the file's default. Read once per process: the log's first lines and its result line use the same."""
    defaults = dataclasses.asdict(Hyperparameters())
    try:
        committed = subprocess.run(["git", "show", f"HEAD:./{Path(__file__).name}"], cwd=HERE, capture_output=True,
                                   text=True, timeout=30, check=True).stdout
        for name, default, _ in (c for constants in constant_docs(committed).values() for c in constants):
            if name in defaults:
                defaults[name] = eval(default, {"__builtins__": {}})  # literals and products, as written above
    except (OSError, subprocess.SubprocessError, ValueError, SyntaxError, NameError):
        pass
    return defaults


def changed_constants(cfg: Hyperparameters, defaults: dict | None = None) -> dict:
    """The constants that differ from the committed defaults, whether changed by flag or by editing this file."""
    defaults = defaults if defaults is not None else committed_defaults()
    return {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg) if getattr(cfg, f.name) != defaults[f.name]}


def preset_notes(argv: list[str], defaults: dict) -> list[str]:
    """Lines for the log where --smoke replaced a value edited in this file (a flag would have kept it)."""
    overrides, smoke = parse_overrides(argv)
    if not smoke:
        return []
    file_defaults = dataclasses.asdict(Hyperparameters())
    return [f"--smoke sets {name}={value!r} over the edited {name}={file_defaults[name]!r} "
            f"(pass --{name}={file_defaults[name]} to keep it)"
            for name, value in SMOKE_PRESET.items()
            if name not in overrides and file_defaults[name] != defaults[name]]


# -----------------------------------------------------------------------------
# Shard files: modded-nanogpt token shards and their per-token byte shards

TOKEN_SHARD_MAGIC = 20240520
BYTE_SHARD_MAGIC = 20250223
SHARD_VERSION = 1  # of token shards (modded-nanogpt's format)
BYTE_SHARD_VERSION = 2  # 2: the header holds the CRC-32 of its token shard's tokens
SHARD_HEADER_INTS = 256
SHARD_HEADER_BYTES = 4 * SHARD_HEADER_INTS
EOT_TOKEN = 50256
BYTE_ALIGN_CODES = {"left": 0, "right": 1}


def read_shard_header(path: Path, magic: int, kind: str, version: int = SHARD_VERSION) -> np.ndarray:
    size = os.path.getsize(path)
    if size < SHARD_HEADER_BYTES:
        raise DataError(f"{path}: truncated {kind} shard ({size} bytes, less than its {SHARD_HEADER_BYTES}-byte "
                        "header); fetch or rebuild it")
    header = np.fromfile(path, dtype=np.int32, count=SHARD_HEADER_INTS)
    if header[0] != magic:
        raise DataError(f"{path}: not a {kind} shard (magic {header[0]}, expected {magic}); fetch or rebuild it")
    if header[1] != version:
        raise DataError(f"{path}: {kind} shard version {header[1]} is not supported (expected {version}); "
                        "rebuild it (byte shards: python data/byte_shards.py --force)")
    return header


def check_shard_size(path: Path, kind: str, count: int, item_bytes: int) -> None:
    expected = SHARD_HEADER_BYTES + count * item_bytes
    size = os.path.getsize(path)
    if size != expected:
        raise DataError(f"{path}: header promises {count} tokens ({expected} bytes) but the {kind} shard has "
                        f"{size} bytes; it is truncated or corrupt, fetch or rebuild it")


def token_shard_length(path: Path) -> int:
    """Number of tokens in a token shard, after checking its header and size."""
    count = int(read_shard_header(path, TOKEN_SHARD_MAGIC, "token")[2])
    check_shard_size(path, "token", count, 2)
    return count


def load_token_shard(path: Path, vocab_size: int | None = None) -> np.ndarray:
    """A token shard's tokens; with vocab_size, every id is checked to lie below it."""
    count = token_shard_length(path)
    tokens = np.fromfile(path, dtype=np.uint16, count=count, offset=SHARD_HEADER_BYTES)
    if vocab_size is not None and count and int(tokens.max()) >= vocab_size:
        position = int(np.argmax(tokens >= vocab_size))
        raise DataError(f"{path}: token id {tokens[position]} at position {position} is not below vocab_size="
                        f"{vocab_size}; the shard is not GPT-2 tokens, or set --vocab_size")
    return tokens


def token_checksum(tokens: np.ndarray) -> int:
    """CRC-32 of a token array's bytes as a signed int32, as byte shard headers store it (index 7)."""
    return int(np.array(zlib.crc32(np.ascontiguousarray(tokens, dtype=np.uint16)), dtype=np.uint32).view(np.int32))


def byte_shard_path(token_path: Path, bytes_per_token: int) -> Path:
    token_path = Path(token_path)
    return token_path.with_name(f"{token_path.stem}.bytes{bytes_per_token}")


def load_byte_shard(path: Path, num_tokens: int, bytes_per_token: int, align: str, tokens: np.ndarray | None = None,
                    header_only: bool = False) -> np.ndarray | None:
    """The (num_tokens, bytes_per_token) uint8 rows of a byte shard, checked against its token shard: the
    header's count and layout, and given the tokens, the checksum of the tokens it was built from."""
    if not Path(path).is_file():
        raise DataError(f"{path}: byte shard is missing; build it with python data/byte_shards.py {Path(path).parent}")
    header = read_shard_header(path, BYTE_SHARD_MAGIC, "byte", BYTE_SHARD_VERSION)
    if header[2] != num_tokens:
        raise DataError(f"{path}: byte shard holds {header[2]} tokens but its token shard holds {num_tokens}; "
                        "rebuild it with python data/byte_shards.py --force")
    if header[3] != bytes_per_token or header[4] != BYTE_ALIGN_CODES[align]:
        found = {v: k for k, v in BYTE_ALIGN_CODES.items()}.get(int(header[4]), header[4])
        raise DataError(f"{path}: byte shard has {header[3]} bytes per token, {found} aligned; the run asks for "
                        f"{bytes_per_token}, {align} aligned")
    check_shard_size(path, "byte", num_tokens, bytes_per_token)
    if tokens is not None and header[7] != token_checksum(tokens):
        raise DataError(f"{path}: byte shard was built from other tokens than its token shard holds (checksum "
                        "differs); rebuild it with python data/byte_shards.py --force")
    if header_only:
        return None
    if num_tokens == 0:
        return np.empty((0, bytes_per_token), dtype=np.uint8)  # an empty file cannot be mapped
    # mapped, not read: a 100M-token shard holds 1.6 GB of rows, of which a reader takes slices
    return np.memmap(path, dtype=np.uint8, mode="r", offset=SHARD_HEADER_BYTES, shape=(num_tokens, bytes_per_token))


def shard_files(pattern: str, role: str) -> list[Path]:
    files = sorted(Path(p) for p in glob.glob(pattern))
    if not files:
        raise DataError(f"no {role} shards match {pattern!r}; fetch FineWeb with python data/cached_fineweb10B.py, "
                        "tokenize local text with python data/fineweb.py, or try --smoke")
    for path in files:
        if not path.is_file():
            raise DataError(f"{path} ({role}) is not a file: give a glob of shard files, such as "
                            f"'{path}/*_{'train' if role == 'training' else 'val'}_*.bin'")
    return files


# -----------------------------------------------------------------------------
# Distributed data loader


class TokenStream:
    """The tokens of several shards, read in order as one stream; shards are loaded when reached. With
    bytes_per_token set, each shard's byte shard is read alongside and take() also returns the byte rows."""

    def __init__(self, files: list[Path], bytes_per_token: int | None = None, byte_align: str = "right",
                 vocab_size: int | None = None):
        self.files = list(files)
        self.bytes_per_token, self.byte_align, self.vocab_size = bytes_per_token, byte_align, vocab_size
        self.next_file = 0
        self.arrays: list[np.ndarray] = []
        self.pos = self.length = 0

    def _load_next(self) -> None:
        if self.next_file == len(self.files):
            raise DataError(f"ran out of tokens after the last of {len(self.files)} shards "
                            f"({self.files[-1]}); add shards or run fewer steps")
        path = self.files[self.next_file]
        tokens = load_token_shard(path, self.vocab_size)
        self.arrays = [tokens]
        if self.bytes_per_token:
            self.arrays.append(load_byte_shard(byte_shard_path(path, self.bytes_per_token), len(tokens),
                                               self.bytes_per_token, self.byte_align, tokens))
        self.pos, self.length = 0, len(tokens)
        self.next_file += 1

    def _spans(self, n: int):
        """Yields views of the current shard's arrays that together cover the next n tokens."""
        while n > 0:
            if self.pos == self.length:
                self._load_next()
            start, count = self.pos, min(n, self.length - self.pos)
            self.pos += count
            n -= count
            yield [a[start:start + count] for a in self.arrays]

    def skip(self, n: int) -> None:
        """Moves past the next n tokens, as take(n) would."""
        for _ in self._spans(n):
            pass

    def take(self, n: int) -> list[np.ndarray]:
        """The next n tokens (and their byte rows), across shard boundaries."""
        return [np.concatenate(column) for column in zip(*self._spans(n))]


def to_device(array: np.ndarray, dtype: torch.dtype, device: torch.device) -> Tensor:
    """The array as a device tensor of its own shape (a 0-d array stays 0-d), from pinned memory on CUDA."""
    tensor = torch.from_numpy(np.asarray(array, order="C")).to(dtype)
    if device.type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor


def rank_batches(stream: TokenStream, seqs_per_step: int, seq_len: int, rank: int, world_size: int,
                 device: torch.device):
    """Yields this rank's micro-batches (inputs, targets[, input byte rows]). Each step takes the next
    seqs_per_step * seq_len tokens of the stream; sequence j of the step covers its tokens
    [j*seq_len, (j+1)*seq_len), targets shifted by one, and rank r gets sequences r*A .. r*A+A-1,
    A = seqs_per_step / world_size micro-steps. Every token is an input exactly once, across shards."""
    per_rank = seqs_per_step // world_size
    carry = stream.take(1)
    while True:
        chunk = [np.concatenate(pair) for pair in zip(carry, stream.take(seqs_per_step * seq_len))]
        carry = [a[-1:] for a in chunk]
        for j in range(rank * per_rank, (rank + 1) * per_rank):
            start, end = j * seq_len, (j + 1) * seq_len
            tokens = chunk[0][start:end + 1].astype(np.int64)
            batch = [to_device(tokens[:-1], torch.int32, device), to_device(tokens[1:], torch.int64, device)]
            if len(chunk) > 1:
                batch.append(to_device(chunk[1][start:end], torch.uint8, device))
            yield tuple(batch)


# -----------------------------------------------------------------------------
# The head's loss: softcapped cross-entropy against one or more weighted targets per position, in training
# on CUDA (compute capability 9.0 and newer) one fused op with an FP8 product


def softcap(logits: Tensor, cap: float) -> Tensor:
    """The record's logit softcap, 2 cap sigmoid(2 logits / cap), in float32: every value lies in (0, 2 cap)."""
    return 2 * cap * torch.sigmoid(logits.float() * (2 / cap))


def weighted_cross_entropy(capped: Tensor, targets: Tensor, row_weights: Tensor | None) -> tuple[Tensor, Tensor]:
    """Mean over rows of sum_j w_j (log-sum-exp - capped logit of target j), for (rows, K) targets whose
    first column, weight 1, is the next token (F.cross_entropy alone where K is 1) and row_weights (rows, K)
    (zero where a target is -1, absent); and, detached, its next-token term."""
    next_token = F.cross_entropy(capped, targets[:, 0])
    loss = next_token
    if targets.size(1) > 1:
        extra_logits = capped.gather(1, targets[:, 1:].clamp_min(0))
        extra = (capped.logsumexp(dim=1, keepdim=True) - extra_logits) * row_weights[:, 1:]
        loss = loss + extra.sum(dim=1).mean()
    return loss, next_token.detach()


@torch.library.custom_op("speedrun::logit_stats", mutates_args=())
def logit_stats(logits: Tensor, targets: Tensor, cap: float) -> tuple[Tensor, Tensor]:
    """Each row's log-sum-exp of softcap(logits), and the capped logits of its (rows, K) targets (of column 0
    where a target is -1), in float32. The softcap bounds every value by 2 cap, so the log-sum-exp is
    shifted by that bound instead of by the row's maximum: one pass over the row, not two."""
    capped = softcap(logits, cap)
    log_sum_exp = 2 * cap + (capped - 2 * cap).exp().sum(dim=-1).log()
    return log_sum_exp, capped.gather(1, targets.clamp_min(0))


@torch.library.custom_op("speedrun::logit_grad_f8", mutates_args=())
def logit_grad_f8(grad_loss: Tensor, logits: Tensor, log_sum_exp: Tensor, targets: Tensor, row_weights: Tensor,
                  cap: float, grad_scale: float) -> tuple[Tensor, Tensor]:
    """The logits' gradient of the mean over rows of sum_j w_j (log-sum-exp - capped logit of target j): the
    row's summed weight times its probabilities, less each target's weight at its column, in the record's
    rounding (float32, then bfloat16, the logits' dtype, then scaled by grad_scale and cast to
    float8_e5m2), row-major and transposed: the layouts that the two FP8 products of the backward read."""
    sig = torch.sigmoid(logits.float() * (2 / cap))
    probs = (2 * cap * sig - log_sum_exp[:, None]).exp()  # 2 cap sig: softcap(logits, cap)
    hits = torch.zeros_like(probs).scatter_add_(1, targets.clamp_min(0), row_weights)
    grad_capped = (row_weights.sum(dim=1, keepdim=True) * probs - hits) * (grad_loss / logits.size(0))
    grad_logits = (grad_capped * (2 * cap) * (sig * (1 - sig)) * (2 / cap)).bfloat16()
    grad_f8 = grad_logits.mul(grad_scale).to(torch.float8_e5m2)
    return grad_f8, grad_f8.T.contiguous()


@functools.cache
def lazy_compile(fn):
    """fn compiled for fixed shapes when first called: torch.compile imports the compiler, seconds that a
    process which never calls fn (a CPU run) should not pay."""
    return torch.compile(fn, dynamic=False)


def fp8_logits(x: Tensor, w: Tensor, x_scale: float, w_scale: float) -> tuple[Tensor, Tensor, Tensor]:
    """x and w scaled and cast to float8_e4m3, and their product x @ w.T in bfloat16, scaled back."""
    x_f8 = x.mul(x_scale).to(torch.float8_e4m3fn)
    w_f8 = w.mul(w_scale).to(torch.float8_e4m3fn)
    logits = torch._scaled_mm(x_f8, w_f8.T, out_dtype=torch.bfloat16, use_fast_accum=True,
                              scale_a=x.new_tensor(1 / x_scale, dtype=torch.float32),
                              scale_b=x.new_tensor(1 / w_scale, dtype=torch.float32))
    return x_f8, w_f8, logits


def fp8_input_grads(grad_f8: Tensor, grad_f8_t: Tensor, x_f8: Tensor, w_f8: Tensor, x_scale: float,
                    w_scale: float, grad_scale: float) -> tuple[Tensor, Tensor]:
    """The gradients of x (bfloat16) and w (float32) from the logits' e5m2 gradient in its two layouts."""
    inv = lambda s: grad_f8.new_tensor(1 / s, dtype=torch.float32)  # noqa: E731
    grad_x = torch._scaled_mm(grad_f8, w_f8.T.contiguous().T, out_dtype=torch.bfloat16,
                              scale_a=inv(grad_scale), scale_b=inv(w_scale))
    # (x.T @ grad).T: the (d_in x vocab) product runs faster than (vocab x d_in) at 768 x 50304
    grad_w_t = torch._scaled_mm(x_f8.T.contiguous(), grad_f8_t.T, out_dtype=torch.float32,
                                scale_a=inv(x_scale), scale_b=inv(grad_scale))
    return grad_x, grad_w_t.T


@torch.library.custom_op("speedrun::fp8_head_loss", mutates_args=())
def fp8_head_loss(x: Tensor, w: Tensor, targets: Tensor, row_weights: Tensor, cap: float, x_scale: float,
                  w_scale: float, grad_scale: float) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Mean over rows of sum_j w_j (log-sum-exp - logit of target j) of softcap(x @ w.T), for (rows, K)
    targets and row_weights (weighted_cross_entropy's), the product in float8_e4m3 with both operands
    scaled, and its next-token term (column 0 at weight 1, no gradient). Also returns what the backward
    reads: the bfloat16 logits, each row's log-sum-exp and the two casts."""
    x_f8, w_f8, logits = lazy_compile(fp8_logits)(x, w, x_scale, w_scale)
    log_sum_exp, target_logits = logit_stats(logits, targets, cap)
    per_target = log_sum_exp[:, None] - target_logits
    loss = (per_target * row_weights).sum(dim=1).mean()
    return loss, per_target[:, 0].mean(), logits, log_sum_exp, x_f8, w_f8


@fp8_head_loss.register_fake
def _(x: Tensor, w: Tensor, targets: Tensor, row_weights: Tensor, *constants):
    logits = x.new_empty((x.size(0), w.size(0)), dtype=torch.bfloat16)
    scalar = x.new_empty((), dtype=torch.float32)
    return (scalar, scalar.clone(), logits, x.new_empty(x.size(0), dtype=torch.float32), x.to(torch.float8_e4m3fn),
            w.to(torch.float8_e4m3fn))


@torch.library.custom_op("speedrun::fp8_head_loss_backward", mutates_args=())
def fp8_head_loss_backward(grad_loss: Tensor, targets: Tensor, row_weights: Tensor, logits: Tensor,
                           log_sum_exp: Tensor, x_f8: Tensor, w_f8: Tensor, cap: float, x_scale: float,
                           w_scale: float, grad_scale: float) -> tuple[Tensor, Tensor]:
    """Gradients of fp8_head_loss for x (bfloat16) and w (float32): the logits' e5m2 gradient is written
    once, straight from the logits, in both layouts."""
    grad_f8, grad_f8_t = logit_grad_f8(grad_loss, logits, log_sum_exp, targets, row_weights, cap, grad_scale)
    return lazy_compile(fp8_input_grads)(grad_f8, grad_f8_t, x_f8, w_f8, x_scale, w_scale, grad_scale)


@fp8_head_loss_backward.register_fake
def _(grad_loss: Tensor, targets: Tensor, row_weights: Tensor, logits: Tensor, log_sum_exp: Tensor, x_f8: Tensor,
      w_f8: Tensor, *constants):
    grad_w_t = logits.new_empty((x_f8.size(1), w_f8.size(0)), dtype=torch.float32)
    return x_f8.to(torch.bfloat16), grad_w_t.T  # strides as the real op's (a transposed view)


def _fp8_head_loss_setup(ctx, inputs, output):
    ctx.constants = inputs[4:]
    ctx.save_for_backward(*inputs[2:4], *output[2:])
    ctx.set_materialize_grads(False)


def _fp8_head_loss_grad(ctx, grad_loss: Tensor, *_):
    grad_x, grad_w = fp8_head_loss_backward(grad_loss, *ctx.saved_tensors, *ctx.constants)
    return grad_x, grad_w, None, None, None, None, None, None


fp8_head_loss.register_autograd(_fp8_head_loss_grad, setup_context=_fp8_head_loss_setup)


# -----------------------------------------------------------------------------
# The head's two row-wise ops as Triton kernels on CUDA: one pass over the logits each; the gradient's two
# layouts are stored from one tile, then rewritten at the targets' columns


if triton is not None:
    @triton.jit
    def logit_stats_kernel(logits_ptr, targets_ptr, log_sum_exp_ptr, target_logit_ptr, cols, slope, height,
                           TARGETS: tl.constexpr, BLOCK: tl.constexpr):
        """One program per row: logit_stats, with slope = 2 / cap and height = 2 cap."""
        row = tl.program_id(0).to(tl.int64)
        row_ptr = logits_ptr + row * cols
        total = tl.zeros((BLOCK,), dtype=tl.float32)
        for start in range(0, cols, BLOCK):
            col = start + tl.arange(0, BLOCK)
            z = tl.load(row_ptr + col, mask=col < cols, other=0.0).to(tl.float32)
            total += tl.where(col < cols, tl.exp(height * tl.sigmoid(z * slope) - height), 0.0)
        tl.store(log_sum_exp_ptr + row, height + tl.log(tl.sum(total, axis=0)))
        for j in tl.static_range(TARGETS):
            target_z = tl.load(row_ptr + tl.maximum(tl.load(targets_ptr + row * TARGETS + j), 0)).to(tl.float32)
            tl.store(target_logit_ptr + row * TARGETS + j, height * tl.sigmoid(target_z * slope))

    @triton.jit
    def logit_grad_f8_kernel(logits_ptr, log_sum_exp_ptr, weight_sum_ptr, row_scale_ptr, grad_ptr, grad_t_ptr,
                             rows, cols, slope, height, grad_scale, BLOCK_ROWS: tl.constexpr,
                             BLOCK_COLS: tl.constexpr):
        """One tile of logit_grad_f8 away from the targets (weight_sum: each row's summed weight; row_scale:
        grad_loss / rows), stored in both layouts."""
        row = tl.program_id(0) * BLOCK_ROWS + tl.arange(0, BLOCK_ROWS)
        col = tl.program_id(1) * BLOCK_COLS + tl.arange(0, BLOCK_COLS)
        inside = (row[:, None] < rows) & (col[None, :] < cols)
        offsets = row[:, None].to(tl.int64) * cols + col[None, :]
        sig = tl.sigmoid(tl.load(logits_ptr + offsets, mask=inside, other=0.0).to(tl.float32) * slope)
        log_sum_exp = tl.load(log_sum_exp_ptr + row, mask=row < rows, other=0.0)
        weight_sum = tl.load(weight_sum_ptr + row, mask=row < rows, other=0.0)
        probs = tl.exp(height * sig - log_sum_exp[:, None])
        grad = weight_sum[:, None] * probs * tl.load(row_scale_ptr)
        grad = (grad * height * (sig * (1.0 - sig)) * slope).to(tl.bfloat16).to(tl.float32)
        grad_f8 = (grad * grad_scale).to(tl.float8e5)
        tl.store(grad_ptr + offsets, grad_f8, mask=inside)
        transposed = col[:, None].to(tl.int64) * rows + row[None, :]
        tl.store(grad_t_ptr + transposed, tl.trans(grad_f8), mask=tl.trans(inside))

    @triton.jit
    def logit_grad_f8_targets_kernel(logits_ptr, log_sum_exp_ptr, targets_ptr, row_weights_ptr, row_scale_ptr,
                                     grad_ptr, grad_t_ptr, rows, cols, slope, height, grad_scale,
                                     TARGETS: tl.constexpr, TARGETS_POW2: tl.constexpr, BLOCK_ROWS: tl.constexpr):
        """logit_grad_f8 at the targets' columns of BLOCK_ROWS rows, over what logit_grad_f8_kernel wrote there:
        a column takes the weights of every target on it (a repeated target writes the same value again)."""
        row = tl.program_id(0) * BLOCK_ROWS + tl.arange(0, BLOCK_ROWS)
        j = tl.arange(0, TARGETS_POW2)
        inside = (row[:, None] < rows) & (j[None, :] < TARGETS)
        index = row[:, None].to(tl.int64) * TARGETS + j[None, :]
        target = tl.load(targets_ptr + index, mask=inside, other=-1)
        weight = tl.load(row_weights_ptr + index, mask=inside, other=0.0)
        hits = tl.sum(tl.where(target[:, :, None] == target[:, None, :], weight[:, None, :], 0.0), axis=2)
        present = inside & (target >= 0)
        offsets = row[:, None].to(tl.int64) * cols + target
        sig = tl.sigmoid(tl.load(logits_ptr + offsets, mask=present, other=0.0).to(tl.float32) * slope)
        log_sum_exp = tl.load(log_sum_exp_ptr + row, mask=row < rows, other=0.0)
        probs = tl.exp(height * sig - log_sum_exp[:, None])
        grad = (tl.sum(weight, axis=1)[:, None] * probs - hits) * tl.load(row_scale_ptr)
        grad = (grad * height * (sig * (1.0 - sig)) * slope).to(tl.bfloat16).to(tl.float32)
        grad_f8 = (grad * grad_scale).to(tl.float8e5)
        tl.store(grad_ptr + offsets, grad_f8, mask=present)
        tl.store(grad_t_ptr + target.to(tl.int64) * rows + row[:, None], grad_f8, mask=present)

    @logit_stats.register_kernel("cuda")
    def _(logits: Tensor, targets: Tensor, cap: float) -> tuple[Tensor, Tensor]:
        logits, targets, (rows, cols) = logits.contiguous(), targets.contiguous(), logits.shape
        log_sum_exp = logits.new_empty(rows, dtype=torch.float32)
        target_logits = logits.new_empty(targets.shape, dtype=torch.float32)
        logit_stats_kernel[(rows,)](logits, targets, log_sum_exp, target_logits, cols, 2 / cap, 2 * cap,
                                    TARGETS=targets.size(1), BLOCK=1024, num_warps=4)
        return log_sum_exp, target_logits

    @logit_grad_f8.register_kernel("cuda")
    def _(grad_loss: Tensor, logits: Tensor, log_sum_exp: Tensor, targets: Tensor, row_weights: Tensor, cap: float,
          grad_scale: float) -> tuple[Tensor, Tensor]:
        logits, (rows, cols) = logits.contiguous(), logits.shape
        targets, row_weights, log_sum_exp = targets.contiguous(), row_weights.contiguous(), log_sum_exp.contiguous()
        grad_f8 = logits.new_empty((rows, cols), dtype=torch.float8_e5m2)
        grad_f8_t = logits.new_empty((cols, rows), dtype=torch.float8_e5m2)
        row_scale, constants = grad_loss / rows, (rows, cols, 2 / cap, 2 * cap, grad_scale)
        grid = (triton.cdiv(rows, 32), triton.cdiv(cols, 128))
        logit_grad_f8_kernel[grid](logits, log_sum_exp, row_weights.sum(dim=1), row_scale, grad_f8, grad_f8_t,
                                   *constants, BLOCK_ROWS=32, BLOCK_COLS=128, num_warps=8)
        logit_grad_f8_targets_kernel[(triton.cdiv(rows, 16),)](
            logits, log_sum_exp, targets, row_weights, row_scale, grad_f8, grad_f8_t, *constants,
            TARGETS=targets.size(1), TARGETS_POW2=max(2, triton.next_power_of_2(targets.size(1))), BLOCK_ROWS=16,
            num_warps=4)
        return grad_f8, grad_f8_t


# -----------------------------------------------------------------------------
# The MLP, relu(x @ w_fc.T)^2 @ w_proj.T: its hidden layer and that layer's gradient are two ops, PyTorch code
# by default; on CUDA (compute capability 9.0 and newer, bfloat16) each is one Triton product whose epilogue
# applies the squared ReLU or its derivative, so neither pass writes and reads the hidden layer twice


def relu_square_hidden(x: Tensor, w: Tensor) -> tuple[Tensor, Tensor]:
    """The hidden layer before and after the activation: pre = x @ w.T for (rows, d) x and (hidden, d) w,
    and relu(pre)^2, each rounded to x's dtype."""
    pre = F.linear(x, w)
    return pre, F.relu(pre).square()


def relu_square_hidden_grad(grad_out: Tensor, w_proj: Tensor, pre: Tensor) -> Tensor:
    """The gradient of pre from the MLP's output gradient (rows, d) through w_proj (d, hidden) and
    relu(pre)^2: (grad_out @ w_proj) * 2 relu(pre), the product rounded to pre's dtype first (autograd's
    rounding)."""
    return (grad_out @ w_proj) * (2 * F.relu(pre))


@torch.library.custom_op("speedrun::relu_square_linear", mutates_args=())
def relu_square_linear(x: Tensor, w: Tensor) -> tuple[Tensor, Tensor]:
    """relu_square_hidden as one op."""
    return relu_square_hidden(x, w)


@relu_square_linear.register_fake
def _(x: Tensor, w: Tensor) -> tuple[Tensor, Tensor]:
    pre = x.new_empty((x.size(0), w.size(0)))
    return pre, torch.empty_like(pre)


@torch.library.custom_op("speedrun::relu_square_grad", mutates_args=())
def relu_square_grad(grad_out: Tensor, w_proj: Tensor, pre: Tensor) -> Tensor:
    """relu_square_hidden_grad as one op."""
    return relu_square_hidden_grad(grad_out, w_proj, pre)


@relu_square_grad.register_fake
def _(grad_out: Tensor, w_proj: Tensor, pre: Tensor) -> Tensor:
    return torch.empty_like(pre)


class ReluSquareMLP(torch.autograd.Function):
    """relu(x @ w_fc.T)^2 @ w_proj.T for (rows, d) x, with the hidden layer's two ops; the weights' and the
    input's gradients are the products autograd takes for F.linear."""

    @staticmethod
    def forward(ctx, x: Tensor, w_fc: Tensor, w_proj: Tensor) -> Tensor:
        pre, post = relu_square_linear(x, w_fc)
        ctx.save_for_backward(x, w_fc, w_proj, pre, post)
        return F.linear(post, w_proj)

    @staticmethod
    def backward(ctx, grad_out: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        x, w_fc, w_proj, pre, post = ctx.saved_tensors
        grad_pre = relu_square_grad(grad_out, w_proj, pre)
        return grad_pre @ w_fc, grad_pre.T @ x, grad_out.T @ post


@dataclass(frozen=True)
class ProductTiles:
    """A Triton product's tiling: block_m x block_n output tiles summed block_k deep, the launch's warps and
    pipeline stages, its programs per multiprocessor, and whether Triton specializes warps by role."""
    block_m: int = 128
    block_n: int = 256
    block_k: int = 64
    warps: int = 8
    stages: int = 3
    programs_per_sm: int = 1
    warp_specialize: bool = False


MLP_TILES = ProductTiles()  # the MLP's products (records/2026-12-07_step/mlp_kernels.py times others)


if triton is not None:
    from triton.tools.tensor_descriptor import TensorDescriptor

    @triton.jit
    def relu_square_epilogue(product, out_desc, pre_desc, row, col, FORWARD: tl.constexpr):
        """One float32 tile of the product, rounded to bfloat16 first: FORWARD, stores it as pre and
        relu(pre)^2 as out; else stores product * 2 relu(pre) as out, pre read."""
        product = product.to(tl.bfloat16).to(tl.float32)
        if FORWARD:
            pre_desc.store([row, col], product.to(tl.bfloat16))
            active = tl.maximum(product, 0.0)
            out_desc.store([row, col], (active * active).to(tl.bfloat16))
        else:
            active = tl.maximum(pre_desc.load([row, col]).to(tl.float32), 0.0)
            out_desc.store([row, col], (product * (2.0 * active)).to(tl.bfloat16))

    @triton.jit
    def relu_square_product_kernel(a_desc, b_desc, out_desc, pre_desc, M, N, K: tl.constexpr, BLOCK_M: tl.constexpr,
                                   BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, FORWARD: tl.constexpr,
                                   WARP_SPECIALIZE: tl.constexpr):
        """Tiles of a @ b.T, (M, K) by (N, K) in bfloat16 with float32 sums, each program taking every
        num_programs-th tile (the loops flattened into one, so loads for the next tile overlap this one's
        epilogue; WARP_SPECIALIZE asks Triton to give loads, products and epilogue warps of their own); each
        tile's epilogue runs in two halves of BLOCK_N / 2 columns (half the shared memory to stage the
        stores). M and N are run-time values: one compiled kernel serves every row count."""
        tiles_n = tl.cdiv(N, BLOCK_N)
        for tile in tl.range(tl.program_id(0), tl.cdiv(M, BLOCK_M) * tiles_n, tl.num_programs(0), flatten=True,
                             warp_specialize=WARP_SPECIALIZE):
            row, col = (tile // tiles_n) * BLOCK_M, (tile % tiles_n) * BLOCK_N
            total = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
            for k in range(0, K, BLOCK_K):
                total = tl.dot(a_desc.load([row, k]), b_desc.load([col, k]).T, total)
            left, right = tl.split(tl.permute(tl.reshape(total, (BLOCK_M, 2, BLOCK_N // 2)), (0, 2, 1)))
            relu_square_epilogue(left, out_desc, pre_desc, row, col, FORWARD)
            relu_square_epilogue(right, out_desc, pre_desc, row, col + BLOCK_N // 2, FORWARD)

    def relu_square_product(a: Tensor, b: Tensor, pre: Tensor | None = None,
                            tiles: ProductTiles = MLP_TILES) -> tuple[Tensor, Tensor]:
        """relu_square_product_kernel, tiles.programs_per_sm programs per multiprocessor: (out, pre), pre
        given (the backward) or written (the forward)."""
        (rows, depth), hidden = a.shape, b.size(0)
        forward = pre is None
        out = a.new_empty((rows, hidden))
        pre = a.new_empty((rows, hidden)) if forward else pre.contiguous()
        count = triton.cdiv(rows, tiles.block_m) * triton.cdiv(hidden, tiles.block_n)
        processors = torch.cuda.get_device_properties(a.device).multi_processor_count
        programs = min(count, tiles.programs_per_sm * processors)
        a_desc = TensorDescriptor.from_tensor(a.contiguous(), [tiles.block_m, tiles.block_k])
        b_desc = TensorDescriptor.from_tensor(b.contiguous(), [tiles.block_n, tiles.block_k])
        out_desc, pre_desc = (TensorDescriptor.from_tensor(t, [tiles.block_m, tiles.block_n // 2]) for t in (out, pre))
        relu_square_product_kernel[(programs,)](a_desc, b_desc, out_desc, pre_desc, rows, hidden, depth,
                                                BLOCK_M=tiles.block_m, BLOCK_N=tiles.block_n, BLOCK_K=tiles.block_k,
                                                FORWARD=forward, WARP_SPECIALIZE=tiles.warp_specialize,
                                                num_warps=tiles.warps, num_stages=tiles.stages)
        return out, pre

    def runs_fused(x: Tensor) -> bool:
        return x.dtype == torch.bfloat16 and torch.cuda.get_device_capability(x.device) >= (9, 0)

    @relu_square_linear.register_kernel("cuda")
    def _(x: Tensor, w: Tensor) -> tuple[Tensor, Tensor]:
        if not runs_fused(x):
            return relu_square_hidden(x, w)
        post, pre = relu_square_product(x, w)
        return pre, post

    @relu_square_grad.register_kernel("cuda")
    def _(grad_out: Tensor, w_proj: Tensor, pre: Tensor) -> Tensor:
        if not runs_fused(grad_out):
            return relu_square_hidden_grad(grad_out, w_proj, pre)
        return relu_square_product(grad_out, w_proj.T, pre)[0]


# -----------------------------------------------------------------------------
# Muon: momentum, then Newton-Schulz orthogonalization, for hidden weight matrices

# one-tensor collectives: PyTorch 2.13 names them *_single and deprecates the names that 2.11 has
all_gather_single = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor
reduce_scatter_single = getattr(dist, "reduce_scatter_single", None) or dist.reduce_scatter_tensor


def newton_schulz(grad: Tensor, steps: int) -> Tensor:
    """Approximately orthogonalizes the last two dims of grad (singular values land near 0.7-1.2) with a
    quintic Newton-Schulz iteration tuned for a steep slope at zero, in bfloat16. The result is contiguous
    in grad's shape (a collective can send it as it is)."""
    a, b, c = 3.4445, -4.7750, 2.0315
    x = grad.bfloat16()
    tall = grad.size(-2) > grad.size(-1)
    if tall:
        x = x.mT
    x = x / (x.norm(dim=(-2, -1), keepdim=True) + 1e-7)
    for _ in range(steps):
        gram = x @ x.mT
        x = a * x + (b * gram + c * gram @ gram) @ x
    return (x.mT if tall else x).contiguous()


def orthogonal_updates(grads: list[Tensor], buffers: list[Tensor], momentum: Tensor, count: int,
                       steps: int) -> Tensor:
    """One group's Muon updates before the learning rate: moves each momentum buffer toward its gradient in
    place, then orthogonalizes the Nesterov directions (each gradient moved toward its new buffer), stacked
    and zero-padded to count matrices. Compiled on CUDA as one graph per group, so the momentum, the stack
    and the cast to bfloat16 run as fused elementwise kernels."""
    for grad, buffer in zip(grads, buffers):
        buffer.lerp_(grad, 1 - momentum)
    directions = torch.stack([grad.lerp(buffer, momentum) for grad, buffer in zip(grads, buffers)])
    if count > len(grads):
        directions = torch.cat([directions, directions.new_zeros((count - len(grads), *directions.shape[1:]))])
    return newton_schulz(directions, steps)


def apply_updates(params: list[Tensor], updates: Tensor, step_size: Tensor) -> None:
    """params[i] += step_size * updates[i] (bfloat16 updates, float32 weights), one graph per group on CUDA."""
    for p, update in zip(params, updates.unbind(0)):
        p.add_(update.float() * step_size)


class Muon(torch.optim.Optimizer):
    """SGD with Nesterov momentum whose update is orthogonalized per matrix. Matrices of one shape form a
    group and go through Newton-Schulz as one batch: rank r of W takes the r-th contiguous share of every
    group, and an all-gather gives every rank every update. With share_only (timing one rank of a larger
    run on one GPU), a rank orthogonalizes its share, shares nothing and moves only its own matrices. With
    compiled, the group's momentum and orthogonalization, and its update of the weights, each run as one
    compiled graph; momentum and learning rate enter as device scalars, so their schedules recompile
    nothing."""

    def __init__(self, params, lr: float, momentum: float, ns_steps: int, rank: int = 0, world_size: int = 1,
                 share_only: bool = False, compiled: bool = False):
        params = list(params)
        shapes = sorted({tuple(p.shape) for p in params}, key=lambda shape: (-math.prod(shape), shape))
        groups = [dict(params=[p for p in params if tuple(p.shape) == shape]) for shape in shapes]
        super().__init__(groups, dict(lr=lr, momentum=momentum, ns_steps=ns_steps))
        self.rank, self.world_size, self.share_only = rank, world_size, share_only
        self.orthogonal_updates, self.apply_updates = orthogonal_updates, apply_updates
        if compiled:
            # a graph per group's shape and count, twice: more than dynamo's default limit of 8 with the front end
            torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
            self.orthogonal_updates = torch.compile(orthogonal_updates, dynamic=False)
            self.apply_updates = torch.compile(apply_updates, dynamic=False)

    def share(self, count: int) -> int:
        """Matrices per rank in a group of count matrices (the last ranks' shares may be short or empty)."""
        return -(-count // self.world_size)

    def owner(self, index: int, count: int) -> int:
        """The rank that orthogonalizes matrix index of a group of count matrices."""
        return index // self.share(count)

    def _updates(self, params: list[Tensor], group: dict) -> Tensor:
        """(share, *shape) bfloat16 updates of params, zero-padded to a full share."""
        share, template = self.share(len(group["params"])), group["params"][0]
        if not params:
            return template.new_zeros((share, *template.shape), dtype=torch.bfloat16)
        buffers = []
        for p in params:
            if "momentum_buffer" not in self.state[p]:
                self.state[p]["momentum_buffer"] = torch.zeros_like(p)
            buffers.append(self.state[p]["momentum_buffer"])
        momentum = torch.full((), group["momentum"], device=template.device)  # a fill kernel, no host copy
        return self.orthogonal_updates([p.grad for p in params], buffers, momentum, share, group["ns_steps"])

    @torch.no_grad()
    def step(self):
        pending = []
        for group in self.param_groups:
            params = group["params"]
            share = self.share(len(params))
            mine = slice(self.rank * share, (self.rank + 1) * share)
            update = self._updates(params[mine], group)
            if self.world_size == 1 or self.share_only:
                pending.append((params[mine], update, None, group["lr"]))
                continue
            gathered = update.new_empty((self.world_size * share, *update.shape[1:]))
            handle = all_gather_single(gathered, update, async_op=True)
            pending.append((params, gathered, handle, group["lr"]))
        for params, updates, handle, lr in pending:  # the gathers of later groups overlap these updates
            if handle is not None:
                handle.wait()
            if params:
                scale = max(1.0, params[0].size(-2) / params[0].size(-1)) ** 0.5
                self.apply_updates(params, updates, torch.full((), -lr * scale, device=updates.device))


# -----------------------------------------------------------------------------
# Adam for the tables, head and scalars: each rank updates its own rows of the tables


def pad_rows(t: Tensor, length: int) -> Tensor:
    """t with zero rows appended up to length rows."""
    return t if t.size(0) == length else F.pad(t, (0, 0, 0, length - t.size(0)))


class RowShardedAdam(torch.optim.Adam):
    """Adam where every matrix (the embedding tables and the head) is split by rows over the ranks: each rank
    keeps Adam's state for its own rows and updates only them; the gradients are reduce-scattered onto
    those rows and the updated rows all-gathered (a table whose rows the ranks do not divide is padded for
    the exchange). The same arithmetic as Adam over the whole tensors, with 1/N of its work and state per
    rank; the scalars stay whole. With share_only (timing one rank of N on one GPU), a rank updates its rows
    and exchanges nothing. whole_state_dict and load_whole_state_dict keep checkpoints in one process's
    layout on any number of ranks."""

    def __init__(self, groups: list[dict], rank: int = 0, world_size: int = 1, share_only: bool = False, **options):
        self.rank, self.world_size, self.share_only = rank, world_size, share_only
        self.splits = []  # (this rank's rows as a view, the whole matrix, rows per rank)
        self.pending = []  # all-gathers in flight: (handle, padded result or None, matrix)
        for group in groups:
            group["params"] = [self._own_rows(p) for p in group["params"]]
        super().__init__(groups, **options)

    def _own_rows(self, p: Tensor) -> Tensor:
        share = -(-p.size(0) // self.world_size) if p.ndim == 2 else 0
        if self.world_size == 1 or p.ndim != 2 or (self.world_size - 1) * share >= p.size(0):
            return p  # a scalar, one rank, or a table too small for every rank to hold rows
        rows = p.detach()[self._mine(share)]
        self.splits.append((rows, p, share))
        return rows

    def _mine(self, share: int) -> slice:
        """This rank's rows of a matrix split into shares of share rows (the last rank's may be short)."""
        return slice(self.rank * share, (self.rank + 1) * share)

    def split_params(self) -> set[int]:
        return {id(p) for _, p, _ in self.splits}

    def split_grads(self) -> list[Tensor]:
        return [rows.grad for rows, _, _ in self.splits if rows.grad is not None]

    def reduce_scatter_grads(self) -> list:
        """Gives each split view its rows' gradient summed over the ranks; returns the pending handles."""
        handles = []
        for rows, p, share in self.splits:
            if p.grad is None:  # unused this step, on every rank alike
                continue
            if self.share_only:
                rows.grad = p.grad[self._mine(share)]
                continue
            own = p.grad.new_empty((share, p.size(1)))
            handles.append(reduce_scatter_single(own, pad_rows(p.grad, share * self.world_size), async_op=True))
            rows.grad = own[:rows.size(0)]
        return handles

    def gather_rows(self) -> None:
        """Starts the all-gathers that give every rank every updated row (finish_gather completes them)."""
        for rows, p, share in self.splits:
            rows.grad = None
            if self.share_only:
                continue
            whole = share * self.world_size
            if p.size(0) == whole:  # into the matrix itself, from a copy of its rows
                padded, handle = None, all_gather_single(p.detach(), rows.clone(), async_op=True)
            else:
                padded = p.new_empty((whole, p.size(1)))
                handle = all_gather_single(padded, pad_rows(rows, share), async_op=True)
            self.pending.append((handle, padded, p))

    def finish_gather(self) -> None:
        for handle, padded, p in self.pending:
            handle.wait()
            if padded is not None:
                p.detach().copy_(padded[:p.size(0)])
        self.pending = []

    def _split_states(self, state: dict) -> tuple[dict, list[tuple[dict, Tensor, int]]]:
        """A copy of a state dict whose entries may be replaced without touching the optimizer's or the
        caller's, and the (entry, whole matrix, rows per rank) of every split parameter in it."""
        state = dict(state, state={i: dict(entry) for i, entry in state["state"].items()})
        index = {id(rows): (p, share) for rows, p, share in self.splits}
        params = [p for group in self.param_groups for p in group["params"]]
        return state, [(state["state"][i], *index[id(p)]) for i, p in enumerate(params)
                       if id(p) in index and i in state["state"]]

    def whole_state_dict(self) -> dict:
        """state_dict with the split parameters' moments gathered to whole matrices (every rank calls)."""
        if self.share_only:
            return self.state_dict()
        state, splits = self._split_states(self.state_dict())
        for entry, p, share in splits:
            for key, value in entry.items():
                if value.ndim == 2:
                    whole = value.new_empty((share * self.world_size, value.size(1)))
                    all_gather_single(whole, pad_rows(value, share))
                    entry[key] = whole[:p.size(0)]
        return state

    def load_whole_state_dict(self, state: dict) -> None:
        """Loads a whole_state_dict, from any number of ranks, keeping this rank's rows of the moments."""
        state, splits = self._split_states(state)
        for entry, p, share in splits:
            for key, value in entry.items():
                if value.ndim == 2:
                    entry[key] = value[self._mine(share)].clone()
        self.load_state_dict(state)


# -----------------------------------------------------------------------------
# Attention masks: document-causal sliding windows, as FlexAttention block masks or dense masks


def document_ids(tokens: Tensor) -> Tensor:
    """Document index of every position; each end-of-text token opens a new document."""
    return (tokens == EOT_TOKEN).cumsum(0)


def within_window(q_idx: Tensor, kv_idx: Tensor, block_size: int, window_blocks: Tensor) -> Tensor:
    """The sliding window counts whole blocks: a query block sees itself and window_blocks - 1 blocks back."""
    return q_idx // block_size - kv_idx // block_size < window_blocks


def sliding_window_causal(docs: Tensor, block_size: int, window_blocks: Tensor):
    """mask_mod: a query sees earlier-or-equal positions of its own document inside the block window."""
    def mask_mod(b, h, q_idx, kv_idx):
        causal = (q_idx >= kv_idx) & (docs[q_idx] == docs[kv_idx])
        return causal & within_window(q_idx, kv_idx, block_size, window_blocks)
    return mask_mod


def dense_mask(mask_mod, length: int, device: torch.device) -> Tensor:
    """The (length, length) boolean mask, evaluating mask_mod at every position pair."""
    pos = torch.arange(length, device=device)
    return mask_mod(0, 0, pos[:, None], pos[None, :])


def dense_attention_mask(docs: Tensor, block_size: int, window_blocks: Tensor) -> Tensor:
    return dense_mask(sliding_window_causal(docs, block_size, window_blocks), len(docs), docs.device)


def block_structure(docs: Tensor, block_size: int, window_blocks: Tensor) -> tuple[Tensor, Tensor]:
    """(partial, full) boolean (blocks x blocks) matrices: block pairs where the mask must be evaluated
    and block pairs where every query sees every key."""
    num_blocks = len(docs) // block_size
    first = docs.view(num_blocks, block_size)[:, 0]
    last = docs.view(num_blocks, block_size)[:, -1]
    start = torch.arange(num_blocks, device=docs.device) * block_size
    q_start, kv_start = start[:, None], start[None, :]
    near = within_window(q_start, kv_start, block_size, window_blocks)
    # documents ids only grow, so an earlier key block shares a document with the query block iff
    # its last document is the query block's first; all pairs match iff both blocks hold that one document
    any_pair = (q_start >= kv_start) & near & (first[:, None] <= last[None, :])
    all_pairs = (q_start > kv_start) & near & (last[:, None] == first[None, :])
    return any_pair & ~all_pairs, all_pairs


def ordered_indices(block_matrix: Tensor) -> tuple[Tensor, Tensor]:
    """Per query block: how many key blocks are set, and their indices first (as from_kv_blocks expects)."""
    counts = block_matrix.sum(dim=-1, dtype=torch.int32)
    indices = torch.argsort(block_matrix.to(torch.int8), dim=-1, descending=True, stable=True).to(torch.int32)
    return counts[None, None].contiguous(), indices[None, None].contiguous()


def flex_block_mask(docs: Tensor, block_size: int, window_blocks: Tensor) -> BlockMask:
    partial, full = block_structure(docs, block_size, window_blocks)
    return BlockMask.from_kv_blocks(*ordered_indices(partial), *ordered_indices(full),
                                    BLOCK_SIZE=block_size, mask_mod=sliding_window_causal(docs, block_size, window_blocks))


BYTE_BLOCK_SIZE = 128  # FlexAttention block of the byte stream


def byte_window_causal(token_docs: Tensor, slots: int, window_tokens: int, doc_mask: bool):
    """mask_mod over the byte stream (slots positions per token): a byte sees earlier-or-equal bytes of
    the last window_tokens tokens, and with doc_mask only those of its own document."""
    def mask_mod(b, h, q_idx, kv_idx):
        q_tok, kv_tok = q_idx // slots, kv_idx // slots
        keep = (q_idx >= kv_idx) & (q_tok - kv_tok < window_tokens)
        if doc_mask:
            keep = keep & (token_docs[q_tok] == token_docs[kv_tok])
        return keep
    return mask_mod


def banded_block_mask(length: int, block_size: int, band: int, mask_mod, device: torch.device) -> BlockMask:
    """A BlockMask in which query block i reads key blocks i-band+1 .. i, built in O(blocks x band) from
    the band alone: no per-pair mask evaluation and no dense block matrix. Documents enter only through
    mask_mod, so the structure does not depend on the batch. A length that is not a whole number of blocks
    ends in a partial block, whose missing positions FlexAttention leaves out."""
    num_blocks = -(-length // block_size)
    rows = torch.arange(num_blocks, dtype=torch.int32, device=device)[:, None]
    offsets = torch.arange(band, dtype=torch.int32, device=device)[None, :]
    kv_indices = (rows - offsets).clamp_min(0)  # the diagonal first, then back; extras past the count unused
    kv_counts = (rows[:, 0] + 1).clamp_max(band)
    q_indices = (rows + offsets).clamp_max(num_blocks - 1)  # key block j is read by query blocks j .. j+band-1
    q_counts = (num_blocks - rows[:, 0]).clamp_max(band)
    expand = lambda t: t[None, None].contiguous()  # noqa: E731
    return BlockMask(seq_lengths=(length, length), kv_num_blocks=expand(kv_counts), kv_indices=expand(kv_indices),
                     full_kv_num_blocks=None, full_kv_indices=None, q_num_blocks=expand(q_counts),
                     q_indices=expand(q_indices), full_q_num_blocks=None, full_q_indices=None,
                     BLOCK_SIZE=(block_size, block_size), mask_mod=mask_mod)


class FlexAttentionBackend:
    """Block-sparse FlexAttention; compiled with the model on CUDA. kernel_options: its kernels' options (tile
    sizes, warps, stages), None for its own choice."""

    def __init__(self, block_size: int, kernel_options: dict[str, int] | None = None):
        self.block_size, self.kernel_options = block_size, kernel_options or None

    def mask(self, docs: Tensor, window_blocks: Tensor) -> BlockMask:
        return flex_block_mask(docs, self.block_size, window_blocks)

    @staticmethod
    def byte_mask(token_docs: Tensor, slots: int, window_tokens: int, doc_mask: bool) -> BlockMask:
        band = (window_tokens * slots - 1) // BYTE_BLOCK_SIZE + 2  # blocks that can hold a key of the window
        mask_mod = byte_window_causal(token_docs, slots, window_tokens, doc_mask)
        return banded_block_mask(len(token_docs) * slots, BYTE_BLOCK_SIZE, band, mask_mod, token_docs.device)

    def attend(self, q: Tensor, k: Tensor, v: Tensor, mask: BlockMask, scale: float) -> Tensor:
        return flex_attention(q, k, v, block_mask=mask, scale=scale, kernel_options=self.kernel_options)


class DenseAttentionBackend:
    """Attention through a dense (T, T) mask: the CPU path (FlexAttention has no CPU backward)."""

    def __init__(self, block_size: int):
        self.block_size = block_size

    def mask(self, docs: Tensor, window_blocks: Tensor) -> Tensor:
        return dense_attention_mask(docs, self.block_size, window_blocks)

    @staticmethod
    def byte_mask(token_docs: Tensor, slots: int, window_tokens: int, doc_mask: bool) -> Tensor:
        mask_mod = byte_window_causal(token_docs, slots, window_tokens, doc_mask)
        return dense_mask(mask_mod, len(token_docs) * slots, token_docs.device)

    @staticmethod
    def attend(q: Tensor, k: Tensor, v: Tensor, mask: Tensor, scale: float) -> Tensor:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)


# -----------------------------------------------------------------------------
# Transformer blocks


def rms_norm(x: Tensor) -> Tensor:
    return F.rms_norm(x, (x.size(-1),))


def uniform_init_(weight: Tensor, fan_in: int) -> Tensor:
    """Uniform with standard deviation 0.5 / sqrt(fan_in)."""
    bound = math.sqrt(3) * 0.5 * fan_in ** -0.5
    with torch.no_grad():
        return weight.uniform_(-bound, bound)


class CastedLinear(nn.Module):
    """Bias-free linear layer with a float32 weight cast to the input's dtype."""

    def __init__(self, in_features: int, out_features: int, zero_init: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(out_features, in_features))
        if not zero_init:
            uniform_init_(self.weight, in_features)

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight.type_as(x))


class Rotary(nn.Module):
    """Half-truncated RoPE: a quarter of the head's frequency pairs rotate (base 1024), the rest stay fixed."""

    def __init__(self, head_dim: int, max_seq_len: int):
        super().__init__()
        quarter = head_dim // 4
        freqs = torch.cat([(1 / 1024) ** torch.linspace(0, 1, quarter), torch.zeros(quarter)])
        angles = torch.outer(torch.arange(max_seq_len, dtype=torch.float32), freqs)
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)

    def forward(self, x: Tensor) -> Tensor:  # (B, T, H, D)
        cos, sin = self.cos[None, :x.size(1), None, :], self.sin[None, :x.size(1), None, :]
        x1, x2 = x.float().chunk(2, dim=-1)
        return torch.cat([x1 * cos + x2 * sin, x2 * cos - x1 * sin], dim=-1).type_as(x)


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: Hyperparameters, backend, max_seq_len: int):
        super().__init__()
        self.num_heads, self.head_dim, self.scale = cfg.num_heads, cfg.head_dim, cfg.attn_scale
        inner = cfg.num_heads * cfg.head_dim
        self.qkv_w = nn.Parameter(uniform_init_(torch.empty(3, inner, cfg.model_dim), cfg.model_dim))
        self.lambdas = nn.Parameter(torch.tensor([0.5, 0.5]))  # weights of v and the value embedding
        self.rotary = Rotary(cfg.head_dim, max_seq_len)
        self.c_proj = CastedLinear(inner, cfg.model_dim, zero_init=True)
        self.backend = backend

    def forward(self, x: Tensor, value_embed: Tensor | None, mask) -> Tensor:
        B, T = x.shape[:2]
        qkv = F.linear(x, self.qkv_w.flatten(0, 1).type_as(x)).view(B, T, 3 * self.num_heads, self.head_dim)
        q, k, v = qkv.chunk(3, dim=-2)
        q, k = self.rotary(rms_norm(q)), self.rotary(rms_norm(k))
        v = self.lambdas[0] * v
        if value_embed is not None:
            v = v + self.lambdas[1] * value_embed.view_as(v)
        y = self.backend.attend(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), mask, self.scale)
        return self.c_proj(y.transpose(1, 2).contiguous().view(B, T, -1))


class MLP(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.c_fc = CastedLinear(dim, 4 * dim)
        self.c_proj = CastedLinear(4 * dim, dim, zero_init=True)

    def forward(self, x: Tensor) -> Tensor:
        rows = x.reshape(-1, x.size(-1))
        out = ReluSquareMLP.apply(rows, self.c_fc.weight.type_as(x), self.c_proj.weight.type_as(x))
        return out.view(*x.shape[:-1], out.size(-1))


class Block(nn.Module):
    def __init__(self, cfg: Hyperparameters, layer: int, backend, max_seq_len: int):
        super().__init__()
        has_attn = layer != cfg.no_attn_layer
        self.attn = CausalSelfAttention(cfg, backend, max_seq_len) if has_attn else None
        self.mlp = MLP(cfg.model_dim)
        self.lambdas = nn.Parameter(torch.tensor([1.0, 0.0]))  # weights of the residual stream and of x0

    def forward(self, x: Tensor, x0: Tensor, value_embed: Tensor | None, mask) -> Tensor:
        x = self.lambdas[0] * x + self.lambdas[1] * x0
        if self.attn is not None:
            x = x + self.attn(rms_norm(x), value_embed, mask)
        return x + self.mlp(rms_norm(x))


# -----------------------------------------------------------------------------
# The Mixture-of-Tokenizers front end: each token's own UTF-8 bytes, pulled into its embedding

BYTE_HEAD_DIM = 64  # head width of both byte attentions
BYTE_VALUES = 256  # byte values, the pad (0xFF) and end-of-text (0xFE) markers among them


def within_token_attention(q: Tensor, k: Tensor, v: Tensor, scale: float) -> Tensor:
    """Causal attention over each token's own slots, (T, heads, slots, 64) each: two batched matrix
    products around a softmax of the slots x slots scores in at least float32. Fused attention kernels
    tile 64 or more queries against a token's 16 and took 1.5-2x longer here on an H200 (DEVLOG)."""
    slots = q.size(-2)
    scores = (q @ k.transpose(-1, -2)).to(torch.promote_types(q.dtype, torch.float32)) * scale
    causal = torch.ones(slots, slots, dtype=torch.bool, device=q.device).tril()
    return scores.masked_fill(~causal, float("-inf")).softmax(dim=-1).type_as(v) @ v


class ByteSelfAttention(nn.Module):
    """Residual causal self-attention over the byte stream, with QK-norm: through the backend's sliding-window
    mask, or with no mask, inside each token's own slots (the tokens as a batch)."""

    def __init__(self, cfg: Hyperparameters, backend):
        super().__init__()
        self.heads, self.scale, self.backend = cfg.byte_heads, cfg.attn_scale, backend
        inner = cfg.byte_heads * BYTE_HEAD_DIM
        self.qkv_w = nn.Parameter(uniform_init_(torch.empty(3, inner, cfg.byte_dim), cfg.byte_dim))
        self.c_proj = CastedLinear(inner, cfg.byte_dim, zero_init=True)

    def forward(self, x: Tensor, mask) -> Tensor:  # x: (T, slots, byte_dim)
        T, S, _ = x.shape
        qkv = F.linear(rms_norm(x), self.qkv_w.flatten(0, 1).type_as(x)).view(T, S, 3 * self.heads, BYTE_HEAD_DIM)
        q, k, v = qkv.chunk(3, dim=-2)
        q, k = rms_norm(q), rms_norm(k)
        if mask is None:  # (T, heads, slots, 64): causal over each token's slots
            q, k, v = (t.transpose(1, 2) for t in (q, k, v))
            y = within_token_attention(q, k, v, self.scale).transpose(1, 2)
        else:  # (1, heads, T * slots, 64): one stream
            q, k, v = (t.reshape(1, T * S, self.heads, BYTE_HEAD_DIM).transpose(1, 2) for t in (q, k, v))
            y = self.backend.attend(q, k, v, mask, self.scale).transpose(1, 2)
        return x + self.c_proj(y.reshape(T, S, -1))


SSM_CHUNK = 64  # positions per chunk of the scan: a (chunk x chunk) product inside, a recurrence between chunks
SSM_CONV = 4  # taps of the causal convolution before the scan
SSM_EXPAND = 2  # the scan's width over byte_dim


def segment_sums(log_factor: Tensor) -> Tensor:
    """(..., n, n) from (..., n): entry [c, c'] sums log_factor[c' + 1 .. c] (0 on the diagonal, -inf above it),
    by masked cumulative sums rather than differences of one cumulative sum, so that -inf (a reset) stays
    exact and no large terms cancel."""
    n = log_factor.size(-1)
    below = torch.ones(n, n, dtype=torch.bool, device=log_factor.device).tril(-1)
    spread = log_factor[..., :, None].expand(*log_factor.shape, n).masked_fill(~below, 0)  # [m, c'] = x_m, m > c'
    sums = spread.cumsum(dim=-2)
    return sums.masked_fill(~below.logical_or(torch.eye(n, dtype=torch.bool, device=log_factor.device)), -math.inf)


def pad_to_chunks(t: Tensor, chunk: int) -> Tensor:
    """t with its first dimension padded by zeros to a whole number of chunks."""
    extra = -len(t) % chunk
    return torch.cat([t, t.new_zeros((extra, *t.shape[1:]))]) if extra else t


def states_after(log_factor: Tensor, update: Tensor, chunk: int) -> Tensor:
    """S_c after each step c of S_c = exp(log_factor_c) S_{c-1} + update_c, S_{-1} = 0, for (n, heads)
    log_factor and (n, heads, D) update: as one (n x n) product where n is at most chunk, else chunk by chunk,
    with the states carried between chunks solved the same way."""
    n = len(log_factor)
    if n <= chunk:
        weights = segment_sums(log_factor.transpose(0, 1)).exp()  # (heads, n, n): [c, c'] = prod_(c' < m <= c)
        return torch.einsum("hcd,dhk->chk", weights.to(update.dtype), update)
    log_factor, update = pad_to_chunks(log_factor, chunk), pad_to_chunks(update, chunk)
    groups = len(log_factor) // chunk
    log_factor, update = log_factor.view(groups, chunk, -1), update.view(groups, chunk, *update.shape[1:])
    weights = segment_sums(log_factor.transpose(1, 2)).exp()  # (groups, heads, chunk, chunk)
    local_after = torch.einsum("ghcd,gdhk->gchk", weights.to(update.dtype), update)  # from inside the group
    entering = carried_states(log_factor.sum(dim=1), local_after[:, -1], chunk)  # (groups, heads, D)
    decay_in = log_factor.cumsum(dim=1).exp()  # (groups, chunk, heads): from the group's start through c
    after = local_after + decay_in[..., None].to(update.dtype) * entering[:, None]
    return after.reshape(-1, *after.shape[2:])[:n]


def carried_states(log_factor: Tensor, update: Tensor, chunk: int = SSM_CHUNK) -> Tensor:
    """The state entering each step c of states_after's recurrence, S_{c-1} (zero for the first)."""
    after = states_after(log_factor, update, chunk)
    return torch.cat([torch.zeros_like(after[:1]), after[:-1]])


def selective_scan(x: Tensor, log_decay: Tensor, b: Tensor, c: Tensor, starts: Tensor | None,
                   chunk: int = SSM_CHUNK) -> Tensor:
    """y_t = sum over s <= t of exp(log_decay_(s+1) + .. + log_decay_t) (c_t . b_s) x_s, the state reset to
    zero at every position where starts is True (no s before it reaches it or later positions): Mamba-2's
    state-space duality, for (L, heads, P) x (already scaled by the step size), (L, heads) log_decay (at most
    0) and (L, N) b and c shared by the heads. Inside chunks of chunk positions, an attention-like masked
    product; between chunks, the states carried by carried_states. A reset is a decay of exp(-inf) = 0, and
    every decay is a sum over its own span (segment_sums), so nothing before a reset reaches past it, not
    even as rounding."""
    length, heads, width = x.shape
    log_decay = log_decay.to(torch.promote_types(log_decay.dtype, torch.float32))
    if starts is not None:
        log_decay = log_decay.masked_fill(starts[:, None], -math.inf)
    x, b, c = (pad_to_chunks(t, chunk).view(-1, chunk, *t.shape[1:]) for t in (x, b, c))
    log_decay = pad_to_chunks(log_decay, chunk).view(-1, chunk, heads)
    spans = segment_sums(log_decay.transpose(1, 2))  # (chunks, heads, i, j): decays j+1 .. i
    scores = (c @ b.transpose(1, 2))[:, None] * spans.exp().to(x.dtype)  # (chunks, heads, i, j)
    y = torch.einsum("nhij,njhp->nihp", scores, x)
    to_end = spans[:, :, -1].exp()  # (chunks, heads, j): decays j+1 .. the chunk's last position
    chunk_states = torch.einsum("nhj,njs,njhp->nhsp", to_end.to(x.dtype), b, x)  # each chunk's own final state
    from_start = log_decay.cumsum(dim=1)  # (chunks, chunk, heads): decays from the chunk's start through i
    # the states run from chunk to chunk in at least float32, as Mamba's kernels keep them
    state_dtype = torch.promote_types(x.dtype, torch.float32)
    entering = carried_states(from_start[:, -1], chunk_states.flatten(2).to(state_dtype), chunk)
    entering = entering.view_as(chunk_states).to(x.dtype)
    y = y + torch.einsum("nih,nis,nhsp->nihp", from_start.exp().to(x.dtype), c, entering)
    return y.reshape(-1, heads, width)[:length]


def causal_conv(x: Tensor, taps: Tensor, docs: Tensor | None) -> Tensor:
    """Depthwise causal convolution of (L, channels) x with (SSM_CONV, channels) taps: position t sums taps[k]
    x[t - k] over the earlier positions of its own document (docs: each position's document; None: one)."""
    out = x * taps[0]
    for k in range(1, len(taps)):
        earlier = shifted_back(x, k, 0)
        if docs is not None:
            earlier = earlier * (shifted_back(docs, k, -1) == docs)[:, None].to(x.dtype)
        out = out + earlier * taps[k]
    return out


class ByteSSM(nn.Module):
    """Residual Mamba-2-style selective state-space mixer over the byte stream: a causal scan in which every
    byte reads every earlier byte of the sequence (with byte_doc_mask, of its own document: the state resets
    where a document starts), in time linear in the length. The normalized input gives the scan's input x and
    gate z (SSM_EXPAND x byte_dim wide, heads of 64), its b and c (byte_ssm_state, shared by the heads) and
    each head's step size dt; x, b and c pass a short causal convolution and SiLU; the decay per step is exp(dt
    a), a < 0 learned per head; the output y + d x, gated by SiLU(z) and normalized, is projected back."""

    def __init__(self, cfg: Hyperparameters):
        super().__init__()
        inner, state = SSM_EXPAND * cfg.byte_dim, cfg.byte_ssm_state
        self.heads, self.state = inner // BYTE_HEAD_DIM, state
        self.xz_w = nn.Parameter(uniform_init_(torch.empty(2 * inner, cfg.byte_dim), cfg.byte_dim))
        self.bc_w = nn.Parameter(uniform_init_(torch.empty(2 * state, cfg.byte_dim), cfg.byte_dim))
        self.dt_w = nn.Parameter(uniform_init_(torch.empty(self.heads, cfg.byte_dim), cfg.byte_dim))
        # 1-D parameters, which Adam takes with the scalars: the convolution's taps, flattened
        channels = inner + 2 * state
        self.conv_taps = nn.Parameter(torch.empty(SSM_CONV * channels).uniform_(-SSM_CONV ** -0.5, SSM_CONV ** -0.5))
        dt = torch.exp(torch.empty(self.heads).uniform_(math.log(1e-3), math.log(1e-1)))  # Mamba's step sizes
        self.dt_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))  # softplus(dt_bias) = dt
        self.a_log = nn.Parameter(torch.empty(self.heads).uniform_(1, 16).log())
        self.d = nn.Parameter(torch.ones(self.heads))
        self.c_proj = CastedLinear(inner, cfg.byte_dim, zero_init=True)

    def forward(self, x: Tensor, docs: Tensor | None) -> Tensor:  # x: (T, slots, byte_dim); docs per position
        T, S, dim = x.shape
        u = rms_norm(x).reshape(T * S, dim)
        xs, z = F.linear(u, self.xz_w.type_as(u)).chunk(2, dim=-1)
        xbc = torch.cat([xs, F.linear(u, self.bc_w.type_as(u))], dim=-1)
        xbc = F.silu(causal_conv(xbc, self.conv_taps.view(SSM_CONV, -1).type_as(u), docs))
        xs, b, c = xbc.split([xs.size(-1), self.state, self.state], dim=-1)
        dt = F.softplus(F.linear(u, self.dt_w.type_as(u)).float() + self.dt_bias)  # (L, heads)
        heads = xs.view(T * S, self.heads, BYTE_HEAD_DIM)
        starts = None if docs is None else docs != shifted_back(docs, 1, -1)
        y = selective_scan(heads * dt[..., None].type_as(u), -dt * self.a_log.exp(), b, c, starts)
        y = y + self.d[:, None].type_as(u) * heads
        y = rms_norm(y.reshape(T * S, -1) * F.silu(z))
        return x + self.c_proj(y).view(T, S, dim)


class ByteLayer(nn.Module):
    """One layer of the byte encoder: a mixer over the byte stream (self-attention, or with byte_mixer='ssm'
    the state-space scan), then optionally a residual MLP."""

    def __init__(self, cfg: Hyperparameters, backend):
        super().__init__()
        self.mixer = ByteSSM(cfg) if cfg.byte_mixer == "ssm" else ByteSelfAttention(cfg, backend)
        self.mlp = MLP(cfg.byte_dim) if cfg.byte_mlp else None

    def forward(self, x: Tensor, context) -> Tensor:
        x = self.mixer(x, context)
        return x if self.mlp is None else x + self.mlp(rms_norm(x))


class TokenByteCrossAttention(nn.Module):
    """Each token's query (from its embedding) attends to exactly its own byte slots: products and sums
    over (tokens, slots), no mask."""

    def __init__(self, cfg: Hyperparameters):
        super().__init__()
        self.heads, self.scale = cfg.byte_heads, cfg.attn_scale
        inner = cfg.byte_heads * BYTE_HEAD_DIM
        self.q_w = nn.Parameter(uniform_init_(torch.empty(inner, cfg.model_dim), cfg.model_dim))
        self.kv_w = nn.Parameter(uniform_init_(torch.empty(2, inner, cfg.byte_dim), cfg.byte_dim))
        # residual mixing starts from the baseline's embedding; replacing needs a live projection
        self.c_proj = CastedLinear(inner, cfg.model_dim, zero_init=cfg.mot_mix == "residual")

    def keys_values(self, byte_x: Tensor) -> tuple[Tensor, Tensor]:
        """Normalized keys and values, (..., heads, head dim) each, of byte features (..., byte_dim)."""
        kv = F.linear(rms_norm(byte_x), self.kv_w.flatten(0, 1).type_as(byte_x))
        k, v = kv.unflatten(-1, (2, self.heads, BYTE_HEAD_DIM)).unbind(-3)
        return rms_norm(k), v

    def forward(self, token_x: Tensor, k: Tensor, v: Tensor) -> Tensor:  # (T, model_dim), (T, S, heads, 64) x 2
        T = token_x.size(0)
        q = rms_norm(F.linear(rms_norm(token_x), self.q_w.type_as(token_x)).view(T, 1, self.heads, BYTE_HEAD_DIM))
        # broadcast products and sums over the slots: fused elementwise kernels, where batched matrix
        # products of (1 x 64) by (64 x S) would run one tiny GEMM per token and head
        scores = (q * k).sum(dim=-1, dtype=torch.float32) * self.scale  # (T, S, heads)
        weights = scores.softmax(dim=1).type_as(v)
        return self.c_proj((weights[..., None] * v).sum(dim=1).reshape(T, -1))


class ByteFrontEnd(nn.Module):
    """The Mixture-of-Tokenizers front end: embeds each token's bytes, adds a learned position per byte
    slot, sums groups of byte_pool slots, optionally mixes the byte stream by byte_layers layers of causal
    self-attention (a sliding window over tokens, or each token's own bytes), then pulls each token's own
    slots into it by cross-attention."""

    def __init__(self, cfg: Hyperparameters, backend):
        super().__init__()
        self.cfg, self.backend = cfg, backend
        self.slots = cfg.bytes_per_token // cfg.byte_pool
        self.byte_embed = nn.Embedding(BYTE_VALUES, cfg.byte_dim)
        self.byte_slot_embed = nn.Embedding(cfg.bytes_per_token, cfg.byte_dim)
        self.byte_layers = nn.ModuleList(ByteLayer(cfg, backend)
                                         for _ in range(cfg.byte_layers if cfg.byte_self_attn else 0))
        self.token_byte_cross_attn = TokenByteCrossAttention(cfg)
        self.mix_lambdas = nn.Parameter(torch.tensor([1.0, 1.0]))  # residual: weights of token and byte parts

    def byte_counts(self, input_bytes: Tensor) -> Tensor:
        """(T, slots, 256): how often each byte value stands in each of a token's slots (one-hot without
        pooling), from (T, bytes_per_token) byte values of any integer dtype. Embedding lookups become
        products with it, whose backward is a matrix product too: deterministic, no scatter-add."""
        T = input_bytes.size(0)
        one_hot = input_bytes[..., None] == torch.arange(BYTE_VALUES, device=input_bytes.device)
        return one_hot.view(T, self.slots, self.cfg.byte_pool, BYTE_VALUES).sum(dim=2, dtype=self.byte_embed.weight.dtype)

    def byte_features(self, input_bytes: Tensor, docs: Tensor | None) -> Tensor:
        """(T, slots, byte_dim) features of each token's bytes; docs, the tokens' document ids, bound a byte
        mixer that reaches into other tokens (none is needed otherwise)."""
        slot_embed = self.byte_slot_embed.weight.view(self.slots, self.cfg.byte_pool, -1).sum(dim=1)
        x = self.byte_counts(input_bytes) @ self.byte_embed.weight + slot_embed
        context = self.mixer_context(docs) if len(self.byte_layers) else None
        for layer in self.byte_layers:
            x = layer(x, context)
        return x

    def mixer_context(self, docs: Tensor | None):
        """What the byte layers' mixer reads beside the bytes: the scan's document of every byte position (none
        without byte_doc_mask), or the attention's sliding-window mask (none inside each token's own slots)."""
        cfg = self.cfg
        if cfg.byte_mixer == "ssm":
            return docs[:, None].expand(-1, self.slots).reshape(-1) if cfg.byte_doc_mask else None
        if cfg.byte_window_tokens > 1:
            return self.backend.byte_mask(docs, self.slots, cfg.byte_window_tokens, cfg.byte_doc_mask)
        return None

    def byte_keys_values(self, input_bytes: Tensor, docs: Tensor | None) -> tuple[Tensor, Tensor]:
        """(T, slots, heads, 64) keys and values of each token's byte slots for the cross-attention."""
        cross = self.token_byte_cross_attn
        if len(self.byte_layers) or self.cfg.byte_pool > 1:
            return cross.keys_values(self.byte_features(input_bytes, docs))
        # a slot's features are then a function of its byte value and position alone: compute keys and
        # values once for each of the slots x 256 (slot, value) pairs, then select each slot's row
        slot_tables = self.byte_embed.weight[None] + self.byte_slot_embed.weight[:, None]  # (slots, 256, dim)
        k_table, v_table = cross.keys_values(slot_tables)  # (slots, 256, heads, 64)
        one_hot = self.byte_counts(input_bytes)
        return (torch.einsum("tsv,svhd->tshd", one_hot, k_table), torch.einsum("tsv,svhd->tshd", one_hot, v_table))

    def forward(self, token_embed: Tensor, input_bytes: Tensor, docs: Tensor | None) -> Tensor:
        from_bytes = self.token_byte_cross_attn(token_embed, *self.byte_keys_values(input_bytes, docs))
        if self.cfg.mot_mix == "replace":
            return from_bytes
        return self.mix_lambdas[0] * token_embed + self.mix_lambdas[1] * from_bytes


# -----------------------------------------------------------------------------
# Hashed context embeddings: a token's bigram and the byte n-grams that end at its last byte

BIGRAM_MULTIPLIERS = (1_000_003, 998_244_353)  # of the token and of the previous token
NGRAM_BASE, NGRAM_MODULUS = 257, 2 ** 31 - 1  # polynomial hash of a byte n-gram
NGRAM_MIX = 2_654_435_761  # spreads the polynomial hash over 32 bits before the modulo by the rows
PAD_BYTE = 0xFF  # the byte rows' empty-slot marker (data/gpt2_tokenizer.py); the end-of-text token's byte is 0xFE
EOT_VALUE = 256  # the end-of-text token's value in the n-grams' hash, apart from token 186's byte 0xFE


def zero_embedding(rows: int, dim: int) -> nn.Embedding:
    """A zero-initialized table: the model starts as if the feature were off, and no random draws are made."""
    return nn.Embedding(rows, dim, _weight=torch.zeros(rows, dim))


def bigram_hash(tokens: Tensor, rows: int) -> Tensor:
    """Table row of each position's (previous token, token) pair: (A * token XOR B * previous) mod (rows - 1).
    The last row stands for 'no previous token': a document's first token (its end-of-text opener) and the
    sequence's first position (whose previous token lies in another micro-batch)."""
    current = tokens.long()
    previous = F.pad(current[:-1], (1, 0))
    hashed = torch.bitwise_xor(current * BIGRAM_MULTIPLIERS[0], previous * BIGRAM_MULTIPLIERS[1]) % (rows - 1)
    first = torch.arange(len(tokens), device=tokens.device) == 0
    return torch.where((current == EOT_TOKEN) | first, rows - 1, hashed)


def shifted_back(x: Tensor, by: int, fill) -> Tensor:
    """x[t - by] at each position t of the first dimension, fill where t - by lies before the start."""
    count = min(by, len(x))
    return torch.cat([x.new_full((count, *x.shape[1:]), fill), x[:len(x) - count]])


def bytes_from_the_end(rows: Tensor, lengths: Tensor, align: str) -> Tensor:
    """(T, slots): each row's bytes from its last one backwards, valid where the index is below its length."""
    if align == "right":
        return rows.flip(-1)
    back = lengths[:, None] - 1 - torch.arange(rows.size(1), device=rows.device)
    return rows.gather(1, back.clamp_min(0))


def trailing_bytes(tokens: Tensor, rows: Tensor, count: int, align: str) -> tuple[Tensor, Tensor]:
    """The last `count` bytes of each token's document up to and including the token, last first, as
    (T, count) int64 values and (T, count) validity. A document's byte stream is its end-of-text marker
    (EOT_VALUE, a value no byte has) followed by its tokens' bytes without pads; bytes before the document or
    before the sequence's first position are invalid. Every token has at least one byte (a token whose one
    byte is 0xFF fills its row with the pad's value), so tokens t .. t - count + 1 suffice."""
    token_lengths = (rows != PAD_BYTE).sum(dim=1).clamp_min(1)
    values = rows.long().masked_fill((tokens == EOT_TOKEN)[:, None] & (rows != PAD_BYTE), EOT_VALUE)
    docs = document_ids(tokens)
    backwards, lengths, same_doc = [], [], []
    for j in range(count):  # token t - j, shifted into position t
        shifted_lengths = shifted_back(token_lengths, j, 1)
        backwards.append(bytes_from_the_end(shifted_back(values, j, PAD_BYTE), shifted_lengths, align))
        lengths.append(shifted_lengths)
        same_doc.append(shifted_back(docs, j, -1) == docs)
    lengths = torch.stack(lengths, dim=1)  # (T, count): bytes of tokens t, t-1, ...
    ends = lengths.cumsum(dim=1)  # bytes from the end of token t through token t - j
    back = torch.arange(count, device=rows.device)
    which = (ends[:, None, :] <= back[None, :, None]).sum(dim=-1)  # (T, count): j of the token holding byte d
    offset = back[None, :] - (ends - lengths).gather(1, which)  # position of byte d inside that token, from its end
    positions = torch.arange(len(tokens), device=rows.device)[:, None]
    values = torch.stack(backwards, dim=1)[positions, which, offset]
    valid = torch.stack(same_doc, dim=1).gather(1, which)
    return values, valid


def byte_ngram_hashes(tokens: Tensor, rows: Tensor, max_n: int, table_rows: int, align: str) -> tuple[Tensor, Tensor]:
    """Table rows of the byte n-grams (n = 2 .. max_n) that end at each token's last byte, (T, max_n - 1),
    and whether each exists (all its bytes in the token's document and sequence). With the n-gram's bytes
    b_1 .. b_n from its last byte backwards: h = 0, then h = (257 h + b_i + 1) mod (2^31 - 1) for each
    i; row = ((h * 2654435761 + n) mod 2^32) mod table_rows."""
    values, valid = trailing_bytes(tokens, rows, max_n, align)
    h = torch.zeros(len(tokens), dtype=torch.long, device=rows.device)
    hashes = []
    for i in range(max_n):
        h = (h * NGRAM_BASE + values[:, i] + 1) % NGRAM_MODULUS
        if i >= 1:
            hashes.append(((h * NGRAM_MIX + i + 1) % 2 ** 32) % table_rows)
    return torch.stack(hashes, dim=1), valid[:, 1:]


class BigramHashEmbedding(nn.Module):
    """A zero-initialized table of hashed (previous token, token) pairs."""

    def __init__(self, rows: int, dim: int):
        super().__init__()
        self.table = zero_embedding(rows, dim)

    def forward(self, tokens: Tensor) -> Tensor:
        return self.table(bigram_hash(tokens, self.table.num_embeddings))


class ByteNgramEmbedding(nn.Module):
    """A zero-initialized table of hashed byte n-grams; each token gets the sum of the rows of the n-grams
    that end at its last byte."""

    def __init__(self, rows: int, dim: int, max_n: int, align: str):
        super().__init__()
        self.table = zero_embedding(rows, dim)
        self.max_n, self.align = max_n, align

    def forward(self, tokens: Tensor, rows: Tensor) -> Tensor:
        hashes, exists = byte_ngram_hashes(tokens, rows, self.max_n, self.table.num_embeddings, self.align)
        # a lookup and a masked sum, which inductor fuses; embedding_bag's backward cost 2.7 ms on an H200
        return (self.table(hashes) * exists[..., None].to(self.table.weight.dtype)).sum(dim=1)


# -----------------------------------------------------------------------------
# Output targets: beside the next token, the tokens further ahead (multi-token prediction) and the next
# token's prefix tokens (its spelling, shortened token by token), weighted in the head's one softmax; and
# the next token's first bytes, each from a small head of its own


@functools.cache
def gpt2_spellings() -> tuple[bytes, ...]:
    """The UTF-8 bytes of every GPT-2 token id but end-of-text (whose stand-in byte is no spelling)."""
    from data.gpt2_tokenizer import load_gpt2_encoding, token_bytes
    return tuple(token_bytes(load_gpt2_encoding())[:EOT_TOKEN])


def prefix_table(counts: np.ndarray | None = None) -> np.ndarray:
    """For each GPT-2 token id, the id of a token whose UTF-8 bytes are a proper prefix of its bytes: the
    longest such, or given counts (each id's count in the training data), the most frequent (the longest
    among equal counts); -1 where none is a token (the 256 single bytes, end-of-text): int64, 50,257 entries."""
    spellings = gpt2_spellings()
    ids = {spelling: i for i, spelling in enumerate(spellings)}
    table = np.full(EOT_TOKEN + 1, -1, dtype=np.int64)
    for i, spelling in enumerate(spellings):
        longest_first = [ids[spelling[:n]] for n in range(len(spelling) - 1, 0, -1) if spelling[:n] in ids]
        if longest_first:
            table[i] = longest_first[0] if counts is None else max(longest_first, key=lambda j: counts[j])
    return table


@functools.cache
def training_token_counts(pattern: str, vocab_size: int) -> np.ndarray:
    """How often each token id occurs in the training shards of pattern: counted once per process (a 100M-token
    shard in about half a second), for the frequent prefix choice."""
    counts = np.zeros(vocab_size, dtype=np.int64)
    for path in shard_files(pattern, "training"):
        counts += np.bincount(load_token_shard(path, vocab_size), minlength=vocab_size)
    return counts


def prefix_chains(table: np.ndarray, depth: int, vocab_size: int) -> np.ndarray:
    """(vocab_size, depth) int64: row i holds i's prefix token, that token's prefix token, and so on, then
    -1 (ids past the table have none)."""
    link = np.full(vocab_size + 1, -1, dtype=np.int64)  # link[-1], the extra last entry: no prefix of none
    link[:len(table)] = table
    chains, current = np.empty((vocab_size, depth), dtype=np.int64), np.arange(vocab_size)
    for d in range(depth):
        current = link[current]
        chains[:, d] = current
    return chains


BYTE_ENDED, BYTE_END_OF_TEXT = 256, 257  # the byte heads' classes after the 256 byte values
BYTE_TARGET_CLASSES = 258


def byte_target_labels(count: int, vocab_size: int) -> np.ndarray:
    """(vocab_size, count) int64: for each token id, the class of each of its first count bytes: the byte's
    value, BYTE_ENDED past its last byte, BYTE_END_OF_TEXT throughout for end-of-text (and ids past the
    vocabulary, which no data holds)."""
    labels = np.full((vocab_size, count), BYTE_END_OF_TEXT, dtype=np.int64)
    for i, spelling in enumerate(gpt2_spellings()):
        first = list(spelling[:count])
        labels[i] = first + [BYTE_ENDED] * (count - len(first))
    return labels


def byte_target_loss(features: Tensor, head_weight: Tensor, label_table: Tensor, target_seq: Tensor,
                     weight: Tensor) -> Tensor:
    """weight x the sum over the byte heads of each head's mean cross-entropy against its byte of the next
    token: the log-likelihood of the next token's first bytes, each given the features alone, on the scale
    of the next-token loss. features (T, dim); head_weight (count x 258, dim), one head of 258 classes per
    byte; label_table: byte_target_labels on the device."""
    labels = label_table[target_seq]  # (T, count)
    logits = F.linear(features, head_weight.type_as(features))
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32)).view(*labels.shape, BYTE_TARGET_CLASSES)
    per_byte = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), reduction="none").view(labels.shape)
    return weight * per_byte.mean(dim=0).sum()


def parse_kernel_options(text: str) -> dict[str, int]:
    """flex_kernel_options' comma-separated name=integer pairs (empty: none)."""
    pairs = [part.split("=") for part in text.replace(" ", "").split(",") if part]
    if any(len(pair) != 2 or not pair[0].isidentifier() for pair in pairs):
        raise ValueError(text)
    return {name: int(value) for name, value in pairs}


def parse_weights(text: str) -> list[float]:
    """mtp_weights' comma-separated numbers (empty: none)."""
    return [float(part) for part in text.split(",")] if text.strip() else []


def ramp_down(progress: float, start: float, length: float) -> float:
    """1 until start, then linearly down to 0 at start + length (fractions of the run)."""
    return min(1.0, max(0.0, 1 - (progress - start) / length))


def target_weights(step: int, cfg: Hyperparameters) -> tuple[float, ...]:
    """The weights of training_targets' columns at step, then with byte targets on, theirs: 1 for the next
    token; with M tokens further ahead, each keeps its weight and then decays linearly to 0 over (2/3) / M of
    the run, the furthest first (for M = 2, the record's: the furthest over the first third, the other over
    the second); each prefix token keeps its weight (halved per level of the chain) over the first third and
    decays to 0 over the second, and so do the byte targets; with prefix_decay off, both keep theirs."""
    progress = step / cfg.num_iterations
    ahead = parse_weights(cfg.mtp_weights)
    stage = 2 / 3 / max(len(ahead), 1)
    weights = [1.0] + [w * ramp_down(progress, (len(ahead) - 1 - i) * stage, stage) for i, w in enumerate(ahead)]
    decay = ramp_down(progress, 1 / 3, 1 / 3) if cfg.prefix_decay else 1.0
    if cfg.prefix_weight > 0:
        weights += [cfg.prefix_weight * 0.5 ** d * decay for d in range(cfg.prefix_depth)]
    if cfg.byte_target_weight > 0:
        weights.append(cfg.byte_target_weight * decay)
    return tuple(weights)


def training_targets(target_seq: Tensor, ahead: int, chains: Tensor | None) -> Tensor:
    """(T, K) targets of a sequence whose next tokens are target_seq: the next token, the tokens 2 .. ahead
    + 1 positions on, then the next token's prefix chain (chains: prefix_chains' rows as a device table).
    A token past the sequence's end, or in a later document than the position (an end-of-text lies
    between), is -1: no target."""
    window = torch.cat([target_seq, target_seq.new_full((ahead,), -1)]).unfold(0, ahead + 1, 1)
    ends_before = F.pad((window == EOT_TOKEN).cumsum(dim=1)[:, :-1], (1, 0))  # end-of-texts before each column
    targets = window.masked_fill(ends_before > 0, -1)
    return targets if chains is None else torch.cat([targets, chains[target_seq]], dim=1)


def weighted_targets(target_seq: Tensor, target_weights: Tensor, ahead: int,
                     chains: Tensor | None) -> tuple[Tensor, Tensor]:
    """training_targets and each one's weight (target_weights' values as a device tensor; 0 where absent)."""
    targets = training_targets(target_seq, ahead, chains)
    return targets, target_weights * (targets >= 0)


# -----------------------------------------------------------------------------
# The GPT


def padded_vocab_size(vocab_size: int) -> int:
    return -(-vocab_size // 128) * 128


def value_embed_index(layer: int, num_layers: int, count: int = 3) -> int | None:
    """Value embeddings 0 1 2 feed the first three layers and again the last three; none in between."""
    if layer < count:
        return layer
    if layer >= num_layers - count:
        return layer - (num_layers - count)
    return None


def uses_long_window(layer: int, num_layers: int) -> bool:
    """Encoder layers follow long short short short long short; decoder layers mirror them."""
    half = num_layers // 2
    mirrored = layer if layer < half else num_layers - 1 - layer
    return mirrored % 4 == 0


class GPT(nn.Module):
    def __init__(self, cfg: Hyperparameters, backend, max_seq_len: int, fp8_head: bool = False,
                 token_counts: np.ndarray | None = None):
        """token_counts: each token id's count in the training shards, for prefix_choice='frequent'."""
        super().__init__()
        self.cfg, self.backend = cfg, backend
        self.embed = nn.Embedding(cfg.vocab_size, cfg.model_dim)
        self.value_embeds = nn.ModuleList(nn.Embedding(cfg.vocab_size, cfg.model_dim) for _ in range(3))
        self.byte_front_end = ByteFrontEnd(cfg, backend) if cfg.use_mot else None
        self.blocks = nn.ModuleList(Block(cfg, i, backend, max_seq_len) for i in range(cfg.num_layers))
        self.num_encoder_layers = cfg.num_layers // 2
        self.skip_weights = nn.Parameter(torch.ones(cfg.num_layers - self.num_encoder_layers))
        self.lm_head = CastedLinear(cfg.model_dim, padded_vocab_size(cfg.vocab_size), zero_init=True)
        self.fp8_scales = (2.0, 2.0 ** 9, 2.0 ** 19) if fp8_head else None  # the head's input, weight, gradient
        # zero-initialized and built last: with them on, every other weight starts as the baseline's
        self.bigram_embed = BigramHashEmbedding(cfg.bigram_hash_rows, cfg.model_dim) if cfg.bigram_hash_rows else None
        self.bigram_lambdas = None
        if self.bigram_embed is not None and cfg.bigram_placement == "blocks":
            self.bigram_lambdas = nn.Parameter(torch.full((cfg.num_layers,), 0.1))  # its weight before each block
        self.byte_ngram_embed = None
        if cfg.byte_ngram_rows:
            self.byte_ngram_embed = ByteNgramEmbedding(cfg.byte_ngram_rows, cfg.model_dim, cfg.byte_ngram_max,
                                                       cfg.byte_align)
        self.tokens_ahead = len(parse_weights(cfg.mtp_weights))  # multi-token prediction's extra targets
        chains = None
        if cfg.prefix_weight > 0:
            if cfg.prefix_choice == "frequent" and token_counts is None:
                raise RunError("prefix_choice='frequent' needs the training shards' token counts")
            links = prefix_table(token_counts if cfg.prefix_choice == "frequent" else None)
            chains = torch.from_numpy(prefix_chains(links, cfg.prefix_depth, cfg.vocab_size))
        # the targets' tables are buffers, so that they follow the model's device, and are not saved in checkpoints
        self.register_buffer("prefix_chains", chains, persistent=False)
        self.target_columns = 1 + self.tokens_ahead + (cfg.prefix_depth if chains is not None else 0)
        self.byte_target_head, labels = None, None
        if cfg.byte_target_weight > 0:  # zero-initialized: the trunk starts with no gradient from it
            self.byte_target_head = CastedLinear(cfg.model_dim, cfg.byte_target_count * BYTE_TARGET_CLASSES,
                                                 zero_init=True)
            labels = torch.from_numpy(byte_target_labels(cfg.byte_target_count, cfg.vocab_size))
        self.register_buffer("byte_target_labels", labels, persistent=False)

    def vocab_embedding(self, first: int, byte_rows: Tensor) -> Tensor:
        """(rows, model_dim) input embeddings of the token ids first .. first + rows - 1 through the MoT front
        end, from their (rows, bytes_per_token) byte rows; ids past the vocabulary (padding) embed as zeros."""
        token_embed = self.embed.weight[first:first + len(byte_rows)]
        token_embed = F.pad(token_embed, (0, 0, 0, len(byte_rows) - len(token_embed)))
        return self.byte_front_end(token_embed, byte_rows, None)

    def embed_input(self, input_seq: Tensor, input_bytes: Tensor | None = None, table: Tensor | None = None) -> Tensor:
        """(T, model_dim) input embedding of a 1-D sequence of token ids; with the MoT front end or the byte
        n-grams, enriched by their (T, bytes_per_token) byte rows, or with table, a (rows, model_dim) front-end
        embedding of every token id (vocab_embedding), read from it; with the bigram placed at the input, plus
        its row."""
        if table is not None:
            embedding = F.embedding(input_seq, table)
        else:
            embedding = self.embed(input_seq)
            if self.byte_front_end is not None:
                embedding = self.byte_front_end(embedding, input_bytes, document_ids(input_seq))
        if self.byte_ngram_embed is not None:
            embedding = embedding + self.byte_ngram_embed(input_seq, input_bytes)
        if self.bigram_embed is not None and self.bigram_lambdas is None:
            embedding = embedding + self.bigram_embed(input_seq)
        return embedding

    def trunk(self, embedding: Tensor, input_seq: Tensor, window_blocks: Tensor) -> Tensor:
        """(1, T, model_dim) normalized features of the last block, for the head."""
        cfg = self.cfg
        docs = document_ids(input_seq)
        long_mask = self.backend.mask(docs, window_blocks)
        short_mask = self.backend.mask(docs, torch.clamp_min(window_blocks // 2, 1))
        x = x0 = rms_norm(embedding[None])
        value_embeds = [ve(input_seq) for ve in self.value_embeds]
        bigram = self.bigram_embed(input_seq)[None] if self.bigram_lambdas is not None else None
        skips = []
        for i, block in enumerate(self.blocks):
            if i >= self.num_encoder_layers:
                x = x + self.skip_weights[i - self.num_encoder_layers] * skips.pop()
            if bigram is not None:
                x = x + self.bigram_lambdas[i] * bigram
            ve_index = value_embed_index(i, cfg.num_layers)
            value_embed = value_embeds[ve_index] if ve_index is not None else None
            mask = long_mask if uses_long_window(i, cfg.num_layers) else short_mask
            x = block(x, x0, value_embed, mask)
            if i < self.num_encoder_layers:
                skips.append(x)
        return rms_norm(x)

    def trunk_logits(self, embedding: Tensor, input_seq: Tensor, window_blocks: Tensor) -> Tensor:
        """(1, T, padded vocab) softcapped float32 logits: the transformer blocks and the head."""
        return softcap(self.lm_head(self.trunk(embedding, input_seq, window_blocks)), self.cfg.logit_cap)

    def trunk_loss(self, embedding: Tensor, input_seq: Tensor, target_seq: Tensor, window_blocks: Tensor,
                   target_weights: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Mean cross-entropy of the trunk's softcapped logits against the next token; in training with
        target_weights (target_weights' values as a device tensor), plus the weighted terms of the further
        targets of training_targets and of the byte targets; in training with an FP8 head, one fused op.
        Returns that loss and, detached, its next-token term."""
        features = self.trunk(embedding, input_seq, window_blocks)[0]
        if self.fp8_scales is not None and self.training:
            return self.fp8_loss(features, target_seq, target_weights)
        logits = softcap(self.lm_head(features), self.cfg.logit_cap)
        loss, next_token = weighted_cross_entropy(logits, *self.targets(target_seq, target_weights))
        if self.trains_byte_targets(target_weights):
            loss = loss + self.byte_loss(features, target_seq, target_weights)
        return loss, next_token

    def trains_byte_targets(self, target_weights: Tensor | None) -> bool:
        return self.byte_target_head is not None and self.training and target_weights is not None

    def byte_loss(self, features: Tensor, target_seq: Tensor, target_weights: Tensor,
                  loss_fn=byte_target_loss) -> Tensor:
        """The byte targets' weighted loss (loss_fn: byte_target_loss, or its compiled graph); their weight is
        the last of target_weights."""
        return loss_fn(features, self.byte_target_head.weight, self.byte_target_labels, target_seq,
                       target_weights[-1])

    def targets(self, target_seq: Tensor, target_weights: Tensor | None,
                build=weighted_targets) -> tuple[Tensor, Tensor]:
        """(T, K) targets and their weights (zero where absent): weighted_targets' (made by build) with
        target_weights in training, else the next token alone."""
        if not (self.training and target_weights is not None):
            return target_seq[:, None], torch.ones((len(target_seq), 1), device=target_seq.device)
        return build(target_seq, target_weights[:self.target_columns], self.tokens_ahead, self.prefix_chains)

    @torch.compiler.disable
    def fp8_loss(self, features: Tensor, target_seq: Tensor, target_weights: Tensor | None) -> tuple[Tensor, Tensor]:
        """The FP8 head's fused loss, outside the trunk's compiled graph, whose graph then stays the same
        whatever the targets (inductor's cache serves every target variant); the targets and the byte
        targets' loss are small graphs of their own."""
        targets = self.targets(target_seq, target_weights, build=lazy_compile(weighted_targets))
        loss, next_token = fp8_head_loss(features, self.lm_head.weight, *targets, self.cfg.logit_cap,
                                         *self.fp8_scales)[:2]
        if self.trains_byte_targets(target_weights):
            loss = loss + self.byte_loss(features, target_seq, target_weights, lazy_compile(byte_target_loss))
        return loss, next_token.detach()

    def logits(self, input_seq: Tensor, window_blocks: Tensor, input_bytes: Tensor | None = None,
               table: Tensor | None = None) -> Tensor:
        return self.trunk_logits(self.embed_input(input_seq, input_bytes, table), input_seq, window_blocks)

    def losses(self, input_seq: Tensor, target_seq: Tensor, window_blocks: Tensor,
               input_bytes: Tensor | None = None, table: Tensor | None = None,
               target_weights: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """The loss (trunk_loss') and, detached, its next-token term."""
        return self.trunk_loss(self.embed_input(input_seq, input_bytes, table), input_seq, target_seq, window_blocks,
                               target_weights)

    def forward(self, *args, **kwargs) -> Tensor:
        """The loss alone (losses' arguments)."""
        return self.losses(*args, **kwargs)[0]


def compile_model(model: GPT) -> None:
    """Compiles the input embedding, the front end's vocabulary table and the trunk (blocks, head, loss) as
    separate graphs. The trunk's graph is the same whatever the front end and the output targets (the FP8
    loss, GPT.fp8_loss, runs outside it), so inductor's on-disk cache compiles it once per machine and GPU
    and ablations after the first pay only for their own small graphs."""
    model.embed_input = torch.compile(model.embed_input, dynamic=False)
    if model.byte_front_end is not None:
        model.vocab_embedding = torch.compile(model.vocab_embedding, dynamic=False)
    model.trunk_loss = torch.compile(model.trunk_loss, dynamic=False)


# -----------------------------------------------------------------------------
# Runtime: the one place where CUDA-only paths (compile, FlexAttention, FP8) are chosen


@dataclass
class Runtime:
    device: torch.device
    rank: int
    world_size: int
    compiled: bool  # torch.compile of the model and of Muon's steps
    flex: bool  # FlexAttention block masks, else dense masks
    fp8_head: bool  # FP8 lm_head through torch._scaled_mm
    embed_dtype: torch.dtype  # dtype of the embedding tables (the activations follow it)
    exchange: str = "gloo"  # the collectives' backend: NCCL between GPUs of their own, else gloo
    gpus: int = 0  # GPUs the ranks run on (fewer than the ranks in a rehearsal)

    @property
    def master(self) -> bool:
        return self.rank == 0

    @property
    def rehearsal(self) -> bool:
        """Ranks sharing GPUs (--rehearse): the real run's training, not its times."""
        return self.device.type == "cuda" and self.gpus < self.world_size


SHARE_GPUS = "add --rehearse=1 to let the ranks share the GPUs (a slow rehearsal of the launch)"


def check_world_size(cfg: Hyperparameters, world_size: int) -> None:
    if cfg.global_batch_seqs % world_size:
        raise RunError(f"world size {world_size} does not divide global_batch_seqs={cfg.global_batch_seqs}: "
                       "use a number of processes that divides it (1, 2, 4 or 8 for the default 8)")


def uses_cuda(cfg: Hyperparameters) -> bool:
    """Whether the run goes on CUDA, after checking that the device asked for is there and can rehearse."""
    if cfg.device != "cpu" and not torch.cuda.is_available():
        raise RunError("no CUDA device found: the full run needs GPUs; try python train_gpt.py --smoke on CPU")
    if cfg.rehearse and cfg.device == "cpu":
        raise RunError("rehearse=1 lets the ranks of a GPU launch share GPUs; on CPU several processes run as they "
                       "are (torchrun --nproc_per_node=2 train_gpt.py --smoke): leave it out")
    return cfg.device != "cpu"


def select_runtime(cfg: Hyperparameters) -> Runtime:
    use_cuda = uses_cuda(cfg)
    rank, world_size = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    check_world_size(cfg, world_size)
    if cfg.bench_ranks and world_size > 1:
        raise RunError(f"bench_ranks={cfg.bench_ranks} times one rank on one process; run it without torchrun")
    if use_cuda:
        local_rank, gpus = int(os.environ.get("LOCAL_RANK", 0)), torch.cuda.device_count()
        if local_rank >= gpus and not cfg.rehearse:
            raise RunError(f"local rank {local_rank} but {gpus} GPU(s) visible: start one process per GPU, or "
                           f"{SHARE_GPUS}")
        device = torch.device("cuda", local_rank % gpus)
        torch.cuda.set_device(device)
        fp8 = torch.cuda.get_device_capability(device) >= (9, 0)
        shared = cfg.rehearse and world_size > gpus  # NCCL refuses two ranks on one GPU; gloo takes CUDA tensors
        return Runtime(device, rank, world_size, compiled=True, flex=True, fp8_head=fp8, embed_dtype=torch.bfloat16,
                       exchange="gloo" if shared else "nccl", gpus=min(gpus, world_size))
    return Runtime(torch.device("cpu"), rank, world_size, compiled=False, flex=False, fp8_head=False,
                   embed_dtype=torch.float32)


def device_memory_bytes(runtime: Runtime) -> int:
    """The GPU's memory, or on CPU the machine's."""
    if runtime.device.type == "cuda":
        return torch.cuda.get_device_properties(runtime.device).total_memory
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_table_memory(cfg: Hyperparameters, runtime: Runtime) -> None:
    """Refuses hashed tables that cannot fit the device: each entry holds a weight, its gradient and Adam's two
    moments, in the embeddings' dtype (their all-reduce buffers and the model itself come on top)."""
    entries = (cfg.bigram_hash_rows + cfg.byte_ngram_rows) * cfg.model_dim
    need, have = 4 * entries * runtime.embed_dtype.itemsize, device_memory_bytes(runtime)
    if need > have:
        raise RunError(f"bigram_hash_rows={cfg.bigram_hash_rows}, byte_ngram_rows={cfg.byte_ngram_rows}: the "
                       f"hashed tables need about {need / 2 ** 30:,.0f} GiB with their gradients and Adam's moments, "
                       f"more than the {have / 2 ** 30:,.0f} GiB of {runtime.device.type}; use fewer rows (the 2026 "
                       "record's bigram: 251520)")


def attention_backend(runtime: Runtime, cfg: Hyperparameters):
    if runtime.flex:
        return FlexAttentionBackend(cfg.attn_block_size, parse_kernel_options(cfg.flex_kernel_options))
    return DenseAttentionBackend(cfg.attn_block_size)


def build_model(cfg: Hyperparameters, runtime: Runtime) -> GPT:
    torch.manual_seed(cfg.seed)
    max_seq_len = max(cfg.seq_len, cfg.val_seq_len)
    frequent = cfg.prefix_weight > 0 and cfg.prefix_choice == "frequent"
    counts = training_token_counts(cfg.train_files, cfg.vocab_size) if frequent else None
    model = GPT(cfg, attention_backend(runtime, cfg), max_seq_len, runtime.fp8_head, counts)
    model = model.to(runtime.device)
    for module in model.modules():
        if isinstance(module, nn.Embedding):
            module.to(runtime.embed_dtype)
    if runtime.world_size > 1:
        for param in model.parameters():
            dist.broadcast(param.detach(), 0)
    return model


# -----------------------------------------------------------------------------
# Optimizers and schedules


def micro_steps_per_rank(cfg: Hyperparameters, runtime: Runtime) -> int:
    """Sequences, one per micro-step, that each rank runs per optimizer step."""
    return cfg.global_batch_seqs // runtime.world_size


def work_share(cfg: Hyperparameters, runtime: Runtime) -> tuple[int, int, bool]:
    """Among how many ranks Muon's orthogonalization, Adam's rows and the vocabulary table are split, this
    process's rank, and whether the ranks exchange their results; with bench_ranks (timing one rank of a
    larger run on one GPU), rank 0 of bench_ranks, exchanging nothing."""
    if cfg.bench_ranks:
        return 0, cfg.bench_ranks, False
    return runtime.rank, runtime.world_size, True


def build_optimizers(model: GPT, cfg: Hyperparameters, runtime: Runtime) -> list[torch.optim.Optimizer]:
    embeddings = [m.weight for m in model.modules() if isinstance(m, nn.Embedding)]
    head = [model.lm_head.weight] + ([model.byte_target_head.weight] if model.byte_target_head is not None else [])
    scalars = [p for p in model.parameters() if p.ndim < 2]
    taken = {id(p) for p in embeddings + head + scalars}
    hidden_matrices = [p for p in model.parameters() if id(p) not in taken]  # blocks' and byte matrices
    rank, world_size, exchange = work_share(cfg, runtime)
    adam = RowShardedAdam([dict(params=head, lr=cfg.adam_head_lr), dict(params=embeddings, lr=cfg.adam_embed_lr),
                           dict(params=scalars, lr=cfg.adam_scalar_lr)],
                          rank=rank, world_size=world_size, share_only=not exchange,
                          betas=(cfg.adam_beta1, cfg.adam_beta2), eps=cfg.adam_eps,
                          fused=runtime.device.type == "cuda")
    muon = Muon(hidden_matrices, lr=cfg.muon_lr, momentum=cfg.muon_momentum, ns_steps=cfg.muon_ns_steps,
                rank=rank, world_size=world_size, share_only=not exchange, compiled=runtime.compiled)
    for opt in (adam, muon):
        for group in opt.param_groups:
            group["initial_lr"] = group["lr"]
    return [adam, muon]


def lr_multiplier(step: int, cfg: Hyperparameters) -> float:
    """Stable, then linear decay to final_lr_frac over the last cooldown_frac of the steps."""
    remaining = 1 - step / cfg.num_iterations
    w = min(remaining / cfg.cooldown_frac, 1.0) if cfg.cooldown_frac > 0 else 1.0
    return w + (1 - w) * cfg.final_lr_frac


def muon_momentum(step: int, cfg: Hyperparameters) -> float:
    frac = min(step / cfg.muon_momentum_warmup_steps, 1.0) if cfg.muon_momentum_warmup_steps > 0 else 1.0
    return (1 - frac) * cfg.muon_momentum_start + frac * cfg.muon_momentum


def window_blocks(step: int, cfg: Hyperparameters) -> int:
    """Long window in blocks: grows linearly with training to window_max_tokens, at least one block."""
    tokens = cfg.window_max_tokens * step / cfg.num_iterations
    return max(1, math.ceil(tokens / cfg.attn_block_size))


def set_schedules(optimizers: list[torch.optim.Optimizer], step: int, cfg: Hyperparameters) -> None:
    for opt in optimizers:
        for group in opt.param_groups:
            group["lr"] = group["initial_lr"] * lr_multiplier(step, cfg)
    for group in optimizers[-1].param_groups:
        group["momentum"] = muon_momentum(step, cfg)


# -----------------------------------------------------------------------------
# Training and validation steps


@functools.cache
def device_values(values, device: torch.device, dtype: torch.dtype = torch.float32) -> Tensor:
    """A device tensor of values (a number or a tuple), made once per value: a schedule's values enter
    compiled graphs as inputs, so that changing them recompiles nothing. A new value is copied from pinned
    memory without waiting for the GPU: a plain copy (torch.tensor(values, device=...)) synchronizes the
    stream, and the target weights take a new value every step while they decay."""
    return to_device(np.asarray(values), dtype, device)


def step_window(step: int, cfg: Hyperparameters, device: torch.device) -> Tensor:
    """The attention window at step, in blocks, as a device scalar (window_blocks)."""
    return device_values(window_blocks(step, cfg), device, torch.int32)


def run_model(model, batch: tuple[Tensor, ...], window: Tensor, table: Tensor | None = None,
              target_weights: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Loss of one micro-batch (inputs, targets[, input byte rows]) and, detached, its next-token term; table:
    the front end's vocabulary table; target_weights: the training targets' weights (the next token's alone
    where None)."""
    return model.losses(batch[0], batch[1], window, *batch[2:], table=table, target_weights=target_weights)


def open_stream(cfg: Hyperparameters, pattern: str, role: str) -> TokenStream:
    return TokenStream(shard_files(pattern, role), cfg.bytes_per_token if uses_bytes(cfg) else None, cfg.byte_align,
                       cfg.vocab_size)


def uses_vocab_table(cfg: Hyperparameters) -> bool:
    """Whether the MoT front end runs once per vocabulary entry per step (VocabTable) rather than once per
    token: the same function wherever it sees a token's own bytes alone (no byte self-attention, or one
    whose window is the token itself)."""
    # the scan reads every earlier byte of the sequence: no table of the vocabulary can hold it
    own_bytes_only = not cfg.byte_self_attn or (cfg.byte_mixer == "attention" and cfg.byte_window_tokens == 1)
    return cfg.use_mot and cfg.mot_vocab_table and own_bytes_only


def uses_bytes(cfg: Hyperparameters) -> bool:
    """Whether the model reads each token's byte row from the data: the per-token front end and the byte
    n-grams do."""
    return (cfg.use_mot and not uses_vocab_table(cfg)) or cfg.byte_ngram_rows > 0


class VocabTable:
    """The MoT front end's input embedding of every token id, computed once per optimizer step where the
    front end depends on the token id alone (uses_vocab_table). The micro-steps read their rows from it
    and their gradients add up on it; one backward per step then carries them into the front end. Each of
    N ranks computes 1/N of the rows and gathers the others'; the table's gradient is summed over the
    ranks onto each rank's own rows, and the parameter gradients their backward leaves join the usual
    all-reduce. With share_only (timing one rank of N on one GPU, as Muon's), this rank's rows are
    repeated instead of gathered. With recompute, the rows are computed without keeping the front end's
    activations and computed again with them for the step's backward, so that no micro-step holds them."""

    def __init__(self, model: GPT, byte_table: np.ndarray, device: torch.device, rank: int, world_size: int,
                 share_only: bool = False, recompute: bool = False):
        self.model, self.world_size, self.share_only, self.recompute = model, world_size, share_only, recompute
        self.share = 16 * -(-len(byte_table) // (16 * world_size))  # rows per rank, a multiple of 16
        self.first = rank * self.share
        rows = np.full((self.share, byte_table.shape[1]), PAD_BYTE, dtype=np.uint8)  # past the vocabulary: pads
        own = byte_table[self.first:self.first + self.share]
        rows[:len(own)] = own
        self.byte_rows = torch.from_numpy(rows).to(device)
        self.own = self.table = None

    def _full(self, own: Tensor) -> Tensor:
        if self.share_only:
            return own.repeat(self.world_size, 1)
        if self.world_size == 1:
            return own
        table = own.new_empty((self.world_size * self.share, own.size(1)))
        all_gather_single(table, own)
        return table

    def _own_rows(self) -> Tensor:
        return self.model.vocab_embedding(self.first, self.byte_rows)

    def forward(self) -> Tensor:
        """This step's table: a leaf whose .grad collects the micro-steps' gradients."""
        with torch.set_grad_enabled(not self.recompute):
            own = self._own_rows()
        self.own = None if self.recompute else own
        self.table = self._full(own.detach()).requires_grad_()
        return self.table

    def backward(self) -> None:
        """Carries the table's gradient, summed over the ranks, through this rank's rows of the front end."""
        grad = self.table.grad
        own_grad = grad[:self.share]
        if self.world_size > 1 and not self.share_only:
            own_grad = torch.empty_like(own_grad)
            reduce_scatter_single(own_grad, grad)
        own = self._own_rows() if self.recompute else self.own
        own.backward(own_grad)
        self.own = self.table = None

    @torch.no_grad()
    def evaluate(self) -> Tensor:
        return self._full(self._own_rows())


def accumulate_gradients(model: GPT, batches, window: Tensor, micro_steps: int, table: Tensor | None = None,
                         target_weights: Tensor | None = None) -> Tensor:
    """Forward and backward over micro_steps micro-batches; .grad holds the sum of the per-sequence losses'
    gradients. Each backward starts from the unscaled loss, as the record's does: the FP8 head casts that
    gradient to float8_e5m2, and a loss divided before its backward would lose entries there to underflow.
    Returns the summed loss and the summed next-token term, a (2,) device tensor."""
    total = torch.zeros(2, device=window.device)
    for _ in range(micro_steps):
        loss, next_token = run_model(model, next(batches), window, table, target_weights)
        loss.backward()
        total += torch.stack([loss.detach(), next_token])
    return total


def build_vocab_table(model: GPT, cfg: Hyperparameters, runtime: Runtime,
                      byte_table: np.ndarray | None) -> VocabTable | None:
    """The front end's vocabulary table where uses_vocab_table says so, split as Muon's work is; recomputed
    for the backward where it serves several micro-steps, whose peak memory would otherwise carry its
    activations (one more forward of this rank's rows per step)."""
    if not uses_vocab_table(cfg):
        return None
    rank, world_size, exchange = work_share(cfg, runtime)
    return VocabTable(model, byte_table, runtime.device, rank, world_size, share_only=not exchange,
                      recompute=micro_steps_per_rank(cfg, runtime) > 1)


def reduce_gradients(model: GPT, adam: RowShardedAdam, stats: Tensor, global_batch_seqs: int,
                     runtime: Runtime) -> None:
    """Sums gradients and stats over ranks (Adam's split tables: onto each rank's own rows), then scales the
    gradients to the global batch mean (a power of two for the record's batch, so the scaling is exact)."""
    split = adam.split_params()
    grads = [p.grad for p in model.parameters() if p.grad is not None and id(p) not in split]
    handles = adam.reduce_scatter_grads()
    if runtime.world_size > 1:
        handles += [dist.all_reduce(g, async_op=True) for g in grads]
        handles.append(dist.all_reduce(stats, async_op=True))
    for handle in handles:
        handle.wait()
    if global_batch_seqs > 1:  # one sequence per step: the sums are the means
        torch._foreach_mul_(grads + adam.split_grads(), 1 / global_batch_seqs)


def train_step(model: GPT, optimizers, batches, window: Tensor, step: int, cfg: Hyperparameters,
               runtime: Runtime, stop_requested: bool = False, vocab_table: VocabTable | None = None) -> Tensor:
    """One optimizer step over the global batch. Returns, reduced over ranks without a host sync, a device
    tensor of the mean training loss and of how many ranks asked to stop."""
    table = vocab_table.forward() if vocab_table is not None else None
    weights = device_values(target_weights(step, cfg), runtime.device)
    loss_sum = accumulate_gradients(model, batches, window, micro_steps_per_rank(cfg, runtime), table, weights)
    if vocab_table is not None:
        vocab_table.backward()
    stop_vote = torch.full((), float(stop_requested), device=runtime.device)  # a fill, not a host copy
    stats = torch.cat([loss_sum / cfg.global_batch_seqs, stop_vote[None]])
    adam, muon = optimizers
    reduce_gradients(model, adam, stats, cfg.global_batch_seqs, runtime)
    set_schedules(optimizers, step, cfg)
    adam.step()
    adam.gather_rows()  # in flight during Muon's step
    muon.step()
    adam.finish_gather()
    model.zero_grad(set_to_none=True)
    return stats


@torch.no_grad()
def evaluate(model, cfg: Hyperparameters, runtime: Runtime, window: Tensor,
             vocab_table: VocabTable | None = None) -> float:
    """Mean loss over the first val_tokens tokens of the validation shards."""
    per_step = runtime.world_size * cfg.val_seq_len
    batches = rank_batches(open_stream(cfg, cfg.val_files, "validation"), runtime.world_size, cfg.val_seq_len,
                           runtime.rank, runtime.world_size, runtime.device)
    steps = cfg.val_tokens // per_step
    model.eval()
    table = vocab_table.evaluate() if vocab_table is not None else None
    total = torch.zeros((), device=runtime.device)
    for _ in range(steps):
        total += run_model(model, next(batches), window, table)[0].float()
    model.train()
    if runtime.world_size > 1:
        dist.all_reduce(total)
    return total.item() / (steps * runtime.world_size)


def random_batches(cfg: Hyperparameters, seq_len: int, device: torch.device, byte_table: np.ndarray | None):
    """Random tokens with an end-of-text every ~500 positions (and their byte rows where the model reads
    them from the data), for compile warm-up."""
    generator = torch.Generator().manual_seed(1234)
    while True:
        tokens = torch.randint(0, cfg.vocab_size, (seq_len + 1,), generator=generator)
        tokens[torch.rand(seq_len + 1, generator=generator) < 0.002] = EOT_TOKEN
        batch = [tokens[:-1].to(device, torch.int32), tokens[1:].to(device)]
        if uses_bytes(cfg):
            batch.append(torch.from_numpy(byte_table[tokens[:-1].numpy()]).to(device))
        yield tuple(batch)


def warm_up(model: GPT, optimizers, cfg: Hyperparameters, runtime: Runtime, log,
            byte_table: np.ndarray | None = None, vocab_table: VocabTable | None = None):
    """Runs training and validation once on random tokens so that compilation happens before the clock,
    then restores the model and optimizer states exactly as they were."""
    saved_model = copy.deepcopy(model.state_dict())
    saved_opts = [copy.deepcopy(opt.state_dict()) for opt in optimizers]
    train_batches = random_batches(cfg, cfg.seq_len, runtime.device, byte_table)
    start = time.perf_counter()
    for step in range(cfg.warmup_steps):
        train_step(model, optimizers, train_batches, step_window(step, cfg, runtime.device), step, cfg,
                   runtime, vocab_table=vocab_table)
        synchronize(runtime)
        log(f"warm-up training step {step + 1}/{cfg.warmup_steps}: {time.perf_counter() - start:.1f}s")
    if cfg.warmup_steps:
        with torch.no_grad():
            model.eval()
            table = vocab_table.evaluate() if vocab_table is not None else None
            run_model(model, next(random_batches(cfg, cfg.val_seq_len, runtime.device, byte_table)),
                      device_values(1, runtime.device, torch.int32), table)
            model.train()
        synchronize(runtime)
        log(f"warm-up validation forward: {time.perf_counter() - start:.1f}s")
    model.load_state_dict(saved_model)
    for opt, state in zip(optimizers, saved_opts):
        opt.load_state_dict(state)


KERNEL_FAMILIES = (  # (family, pieces of kernel names), in the order names are matched
    ("FlexAttention", ("flex_attention",)),
    ("MLP products with the squared ReLU", ("relu_square_product",)),
    ("rms norms and what is fused with them", ("rms_norm",)),
    ("squared ReLU", ("relu",)),
    ("the head's loss", ("logit_",)),
    ("matrix products", ("nvjet", "gemm", "cutlass", "xmma")),
    ("memory copies and sets", ("Memcpy", "Memset")),
)


def kernel_family(name: str) -> str:
    """The first family of KERNEL_FAMILIES that a piece of the kernel's name matches, else "other"."""
    return next((f for f, pieces in KERNEL_FAMILIES if any(piece in name for piece in pieces)), "other")


def kernel_families(kernels: list[tuple[str, float, int]]) -> list[tuple[str, float, int]]:
    """(family, time, launches) for (name, time, launches) of GPU kernels, largest time first."""
    totals = {}
    for name, spent, launches in kernels:
        family = kernel_family(name)
        time_so_far, launches_so_far = totals.get(family, (0.0, 0))
        totals[family] = time_so_far + spent, launches_so_far + launches
    return sorted(((f, spent, n) for f, (spent, n) in totals.items()), key=lambda row: -row[1])


def family_table(kernels: list[tuple[str, float, int]], steps: int, unfiled: int = 8) -> str:
    """kernel_families as Markdown, per step, with each family's share of the kernels' time; then the
    largest unfiled kernels of "other", by name."""
    total = sum(spent for _, spent, _ in kernels) or 1.0

    def row(label: str, spent: float, launches: int) -> str:
        return f"| {label} | {spent / steps:.2f} | {100 * spent / total:.1f} % | {launches / steps:g} |"

    header = "| {} | ms per step | share | launches per step |\n| --- | --- | --- | --- |"
    others = sorted((k for k in kernels if kernel_family(k[0]) == "other"), key=lambda k: -k[1])[:unfiled]
    return "\n".join([header.format("kernels"), *(row(*family) for family in kernel_families(kernels)), "",
                      header.format('the largest in "other"'), *(row(name[:90], *rest) for name, *rest in others)])


def device_kernels(events) -> list[tuple[str, float, int]]:
    """(name, ms, launches) of each averaged profiler event that ran on the GPU: kernels, copies and sets, not
    record_function's GPU-side ranges (the optimizers' steps), which span kernels counted on their own."""
    return [(event.key, event.self_device_time_total / 1000, event.count) for event in events
            if event.device_type == torch.autograd.DeviceType.CUDA and not event.is_user_annotation]


def profile(model: GPT, optimizers, cfg: Hyperparameters, runtime: Runtime, window: Tensor, log,
            byte_table: np.ndarray | None, vocab_table: VocabTable | None) -> None:
    """Logs the operators and kernels of profile_steps training steps on random tokens, by their own time:
    on the GPU, then (on CUDA) on the host, where launches and waits show whether the host keeps ahead, and
    the GPU's time by kernel family, with the largest kernels that no family takes. Runs after the timed
    steps: a CUDA profiling session can slow later kernel launches in the process."""
    batches = random_batches(cfg, cfg.seq_len, runtime.device, byte_table)
    activities = [ProfilerActivity.CPU]
    if runtime.device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as prof:
        for step in range(cfg.profile_steps):
            train_step(model, optimizers, batches, window, step, cfg, runtime, vocab_table=vocab_table)
        synchronize(runtime)
    tables = [("host", "self_cpu_time_total", 25)]
    if runtime.device.type == "cuda":
        tables.insert(0, ("GPU", "self_device_time_total", 40))
    for where, sort, rows in tables:
        log(f"profile of {cfg.profile_steps} training steps (rank {runtime.rank}), by {where} time:\n"
            + prof.key_averages().table(sort_by=sort, row_limit=rows, max_name_column_width=90))
    if runtime.device.type == "cuda":
        log(f"GPU time of {cfg.profile_steps} training steps by kernel family:\n"
            + family_table(device_kernels(prof.key_averages()), cfg.profile_steps))


# -----------------------------------------------------------------------------
# Logging


class Logger:
    def __init__(self, cfg: Hyperparameters, runtime: Runtime):
        self.path = None
        if runtime.master:
            run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
            self.path = Path(cfg.log_dir).resolve() / f"{run_id}.txt"  # absolute: printed paths work from anywhere
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.path.touch()
            except OSError as e:
                raise RunError(f"cannot write the log {self.path}: {e}; set --log_dir to a writable directory")

    def __call__(self, text: str, console: bool = True) -> None:
        if self.path is None:
            return
        with open(self.path, "a") as f:
            print(text, file=f)
        if console:
            print(text, flush=True)


def environment_report(runtime: Runtime) -> str:
    lines = [f"Python {sys.version.split()[0]} on {platform.platform()}",
             f"PyTorch {torch.__version__}, CUDA {torch.version.cuda}",
             f"device {runtime.device}, world size {runtime.world_size}, compiled {runtime.compiled}, "
             f"FlexAttention {runtime.flex}, FP8 head {runtime.fp8_head}, collectives over {runtime.exchange}"]
    if runtime.rehearsal:
        lines.append(f"rehearsal: {runtime.world_size} ranks share {runtime.gpus} GPU(s), exchanging over gloo; the "
                     "training is the real run's, its times are not")
    if runtime.device.type == "cuda":
        try:
            lines.append(subprocess.run(["nvidia-smi"], capture_output=True, text=True, timeout=30).stdout)
        except (OSError, subprocess.SubprocessError) as e:
            lines.append(f"nvidia-smi failed: {e}")
    return "\n".join(lines)


def peak_memory_mib(runtime: Runtime) -> int:
    """Peak tensor memory on the GPU, or the process's peak resident memory on CPU."""
    if runtime.device.type == "cuda":
        return torch.cuda.max_memory_allocated() // 2**20
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


def peak_memory_report(runtime: Runtime) -> str:
    if runtime.device.type == "cuda":
        return (f"peak memory allocated: {peak_memory_mib(runtime)} MiB "
                f"reserved: {torch.cuda.max_memory_reserved() // 2**20} MiB")
    return f"peak memory (process RSS): {peak_memory_mib(runtime)} MiB"


def git_commit() -> str:
    """Short commit of this file's checkout, with a * when tracked files differ from it."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True, text=True,
                              timeout=30, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=HERE,
                               capture_output=True, text=True, timeout=30, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "no-git"
    return head + ("*" if dirty else "")


# constants that say where a run logs or saves, not what it trains: left out of its result line
NOT_IN_RESULT = {"log_dir", "devlog", "profile_steps", "save_checkpoint", "save_every", "resume", "resume_force",
                 "warmup_steps", "val_loss_every"}


def result_line(cfg: Hyperparameters, runtime: Runtime, val_loss: float, train_ms: float, median_ms: float) -> str:
    """One Markdown line to paste into DEVLOG.md."""
    changed = " ".join(f"{k}={v}" for k, v in changed_constants(cfg).items() if k not in NOT_IN_RESULT)
    device = torch.cuda.get_device_name(runtime.device) if runtime.device.type == "cuda" else "CPU"
    hardware = f"{runtime.world_size} x {device}"
    if runtime.rehearsal:
        hardware = f"{runtime.world_size} ranks on {runtime.gpus} x {device} (a rehearsal: its times are not the run's)"
    return (f"- {time.strftime('%Y-%m-%d')} `{git_commit()}` {hardware} "
            f"`{changed or 'defaults'}`: val_loss {val_loss:.4f}, train_time {train_ms / 1000:.1f} s, "
            f"median step {median_ms:.2f} ms, peak memory {peak_memory_mib(runtime)} MiB")


DEVLOG = HERE / "DEVLOG.md"  # the experiment journal that --devlog appends to


def append_to_devlog(line: str, note: str) -> Path:
    with open(DEVLOG, "a") as f:
        f.write(f"{line}. {note}\n")
    return DEVLOG


# -----------------------------------------------------------------------------
# Checkpoints and clean stops

CHECKPOINT_FORMAT = "speedrun-checkpoint-4"  # 2: Muon groups matrices by shape; 3: byte_layers; 4: byte mixers
# constants that may change between a run and its resumption: those that do not change what it trains,
# and where and how far it runs
RESUMABLE_CHANGES = NOT_IN_RESULT | {"stop_step", "device", "coordinate_descent_tuning", "rehearse"}


def share_muon_state(muon: Muon, runtime: Runtime) -> None:
    """Gives every rank every momentum buffer (each rank keeps only its own matrices' otherwise)."""
    if runtime.world_size == 1:
        return
    for group in muon.param_groups:
        params = group["params"]
        for i, p in enumerate(params):
            state = muon.state[p]
            buffer = state.get("momentum_buffer")
            if buffer is None:
                buffer = state["momentum_buffer"] = torch.zeros_like(p)
            dist.broadcast(buffer, src=muon.owner(i, len(params)))


def write_checkpoint(path: Path, step: int, train_ms: float, cfg: Hyperparameters, runtime: Runtime,
                     model: GPT, optimizers) -> None:
    """Rank 0 writes the run's state atomically (a temporary file, then a rename); all ranks must call."""
    adam, muon = optimizers
    if step > 0:
        share_muon_state(muon, runtime)
    adam_state = adam.whole_state_dict()
    if not runtime.master:
        return
    state = dict(format=CHECKPOINT_FORMAT, step=step, train_ms=train_ms,
                 tokens_consumed=step * cfg.global_batch_seqs * cfg.seq_len, constants=dataclasses.asdict(cfg),
                 model=model.state_dict(), optimizers=[adam_state, muon.state_dict()],
                 cpu_rng=torch.get_rng_state(),
                 cuda_rng=torch.cuda.get_rng_state(runtime.device) if runtime.device.type == "cuda" else None)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str, cfg: Hyperparameters, runtime: Runtime) -> dict:
    """Reads and checks a checkpoint of this script; returns its state."""
    if not Path(path).is_file():
        raise RunError(f"--resume={path}: no such file")
    try:
        state = torch.load(path, map_location=runtime.device, weights_only=True)
    except Exception as e:  # a truncated zip, a foreign pickle, an empty file...: torch raises many kinds
        detail = (str(e).splitlines() or ["no message"])[0]
        raise RunError(f"--resume={path}: not a readable checkpoint ({type(e).__name__}: {detail})")
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise RunError(f"--resume={path}: not a checkpoint of this script")
    differing = {name: (value, getattr(cfg, name)) for name, value in state["constants"].items()
                 if name not in RESUMABLE_CHANGES and getattr(cfg, name, value) != value}
    if differing and not cfg.resume_force:
        listed = ", ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in differing.items())
        raise RunError(f"--resume={path}: constants differ from the checkpoint's ({listed}); "
                       "pass --resume_force=1 to resume anyway")
    if run_steps(cfg) <= state["step"]:
        raise RunError(f"--resume={path}: the checkpoint is at step {state['step']}, so a run of {run_steps(cfg)} steps "
                       "has nothing left to train; raise --stop_step or --num_iterations")
    return state


def check_checkpoint_fits(state: dict, model: GPT, path: str) -> None:
    """Before compiling: the checkpoint's tensors have this model's names and shapes."""
    saved = {name: tuple(t.shape) for name, t in state["model"].items()}
    ours = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    if saved != ours:
        differing = sorted(set(saved.items()) ^ set(ours.items()))[0][0]
        raise RunError(f"--resume={path}: the checkpoint's model has other tensors or shapes than this one (first: "
                       f"{differing}); --resume_force resumes across other constants, never across other shapes")


def restore(state: dict, model: GPT, optimizers, runtime: Runtime) -> None:
    model.load_state_dict(state["model"])
    adam, muon = optimizers
    adam_state, muon_state = state["optimizers"]
    adam.load_whole_state_dict(adam_state)
    muon.load_state_dict(muon_state)
    torch.set_rng_state(state["cpu_rng"].cpu())
    if state["cuda_rng"] is not None and runtime.device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda_rng"].cpu(), runtime.device)


class StopRequest:
    """SIGTERM or SIGINT asks the run to stop after the current step; a second signal exits at once."""

    def __init__(self):
        self.signal = None
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, self._handle)

    def _handle(self, signum, frame):
        if self.signal is not None:
            os._exit(128 + signum)
        self.signal = signum
        print(f"received {signal.Signals(signum).name}: stopping after this step (again to exit now)", flush=True)


class StoppedBySignal(Exception):
    """The run saved its state and stops on request; main exits with 128 + the signal number."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.exit_code = 128 + signum


# -----------------------------------------------------------------------------
# Main


def shard_tokens(files: list[Path], cfg: Hyperparameters) -> int:
    """Tokens in the shard files, after checking every shard's header and size, and with byte features on,
    that its byte shard is there and matches it (each one's checksum is checked on loading)."""
    total = 0
    for path in files:
        count = token_shard_length(path)
        if uses_bytes(cfg):
            load_byte_shard(byte_shard_path(path, cfg.bytes_per_token), count, cfg.bytes_per_token, cfg.byte_align,
                            header_only=True)
        total += count
    return total


def check_token_budget(cfg: Hyperparameters, world_size: int) -> None:
    """Fails before training when the shards cannot feed the configured steps and validation, or when a
    shard would serve both."""
    train_files, val_files = shard_files(cfg.train_files, "training"), shard_files(cfg.val_files, "validation")
    shared = set(map(Path.resolve, train_files)) & set(map(Path.resolve, val_files))
    if shared:
        raise DataError(f"{sorted(shared)[0]} is both a training and a validation shard: give train_files and "
                        "val_files patterns that match different files")
    train_have = shard_tokens(train_files, cfg)
    steps = run_steps(cfg)
    train_need = steps * cfg.global_batch_seqs * cfg.seq_len + 1
    if train_have < train_need:
        raise DataError(f"training needs {train_need} tokens ({steps} steps of "
                        f"{cfg.global_batch_seqs} x {cfg.seq_len}) but {cfg.train_files!r} holds {train_have}; "
                        "add shards or lower --num_iterations")
    per_val_step = world_size * cfg.val_seq_len
    if cfg.val_tokens % per_val_step:  # positive: check_config
        raise RunError(f"val_tokens={cfg.val_tokens} must be a positive multiple of world size x val_seq_len = "
                       f"{per_val_step}")
    val_have = shard_tokens(val_files, cfg)
    if val_have < cfg.val_tokens + 1:
        raise DataError(f"validation needs {cfg.val_tokens + 1} tokens but {cfg.val_files!r} holds {val_have}; "
                        "lower --val_tokens")


def run_steps(cfg: Hyperparameters) -> int:
    return cfg.stop_step if 0 < cfg.stop_step < cfg.num_iterations else cfg.num_iterations


# the ranges of the constants, checked in one place before any work
POSITIVE = ("val_tokens", "seq_len", "val_seq_len", "global_batch_seqs", "model_dim", "num_heads", "head_dim",
            "attn_scale", "logit_cap", "attn_block_size", "window_max_tokens", "bytes_per_token", "byte_dim",
            "byte_heads", "byte_window_tokens", "byte_layers", "byte_pool", "num_iterations", "adam_eps",
            "muon_ns_steps", "seed_count", "prefix_depth", "byte_ssm_state", "byte_target_count")
NOT_NEGATIVE = ("bigram_hash_rows", "byte_ngram_rows", "stop_step", "adam_head_lr", "adam_embed_lr", "adam_scalar_lr",
                "muon_lr", "muon_momentum_warmup_steps", "val_loss_every", "warmup_steps", "profile_steps",
                "bench_ranks", "save_every")
# in [0, 1]; the target weights are relative to the next token's, 1
FRACTIONS = ("cooldown_frac", "final_lr_frac", "muon_momentum", "muon_momentum_start", "prefix_weight",
             "byte_target_weight")
BELOW_ONE = ("adam_beta1", "adam_beta2")  # in [0, 1)
CHOICES = {"device": ("auto", "cuda", "cpu"), "byte_align": tuple(BYTE_ALIGN_CODES), "mot_mix": ("residual", "replace"),
           "bigram_placement": ("blocks", "input"), "byte_mixer": ("attention", "ssm"),
           "prefix_choice": ("longest", "frequent")}
PREFIX_CHAIN_MAX = 21  # links in GPT-2's longest prefix chain (a token of 22 bytes down to its first byte)


def check_config(cfg: Hyperparameters) -> None:
    """Refuses constants outside their ranges, each with one line that names it and what it may be."""
    for field in dataclasses.fields(cfg):
        if field.type is float and not math.isfinite(getattr(cfg, field.name)):
            raise RunError(f"{field.name}={getattr(cfg, field.name)} must be a finite number")
    for name in POSITIVE:
        if not getattr(cfg, name) > 0:
            raise RunError(f"{name}={getattr(cfg, name)} must be positive")
    for name in NOT_NEGATIVE:
        if getattr(cfg, name) < 0:
            raise RunError(f"{name}={getattr(cfg, name)} must not be negative")
    for name in FRACTIONS + BELOW_ONE:
        value = getattr(cfg, name)
        if not (0 <= value <= 1 if name in FRACTIONS else 0 <= value < 1):
            raise RunError(f"{name}={value} must lie in [0, 1{']' if name in FRACTIONS else ')'}")
    for name, choices in CHOICES.items():
        if getattr(cfg, name) not in choices:
            raise RunError(f"{name}={getattr(cfg, name)!r}: use {' or '.join(choices)}")
    if not EOT_TOKEN < cfg.vocab_size <= 2 ** 16:
        raise RunError(f"vocab_size={cfg.vocab_size}: must hold the end-of-text token {EOT_TOKEN} and fit the "
                       "shards' uint16 tokens (50257 for GPT-2)")
    if cfg.num_layers < 6 or not -1 <= cfg.no_attn_layer < cfg.num_layers:
        raise RunError(f"num_layers={cfg.num_layers}, no_attn_layer={cfg.no_attn_layer}: the value-embedding pattern "
                       "needs at least 6 layers, and no_attn_layer is -1 or a layer index")
    if cfg.logit_cap > 40:
        raise RunError(f"logit_cap={cfg.logit_cap} must be at most 40: the FP8 head's loss shifts its log-sum-exp by "
                       "2 x logit_cap, and float32 exp underflows beyond that")
    if cfg.num_heads * cfg.head_dim != cfg.model_dim:
        raise RunError(f"num_heads={cfg.num_heads} x head_dim={cfg.head_dim} must equal model_dim={cfg.model_dim} "
                       "(the value embeddings are model_dim wide): change one of the three")
    if not 0 <= cfg.seed <= 2 ** 63 - cfg.seed_count:
        raise RunError(f"seed={cfg.seed}: use a whole number from 0 to 2**63 - seed_count")
    if cfg.head_dim % 4:
        raise RunError(f"head_dim={cfg.head_dim} must be a multiple of 4 (a quarter of it rotates)")
    for name in ("seq_len", "val_seq_len"):
        if getattr(cfg, name) % cfg.attn_block_size:
            raise RunError(f"{name}={getattr(cfg, name)} must be a multiple of attn_block_size={cfg.attn_block_size}")
    if (cfg.byte_layers != 1 or cfg.byte_mlp) and not cfg.byte_self_attn:
        raise RunError(f"byte_layers={cfg.byte_layers}, byte_mlp={cfg.byte_mlp} shape the byte self-attention: "
                       "add --byte_self_attn=1 (or leave them at 1 and False)")
    if cfg.byte_mixer == "ssm" and not (cfg.byte_self_attn and cfg.byte_dim % 32 == 0):
        raise RunError(f"byte_mixer='ssm' with byte_self_attn={cfg.byte_self_attn}, byte_dim={cfg.byte_dim}: the scan "
                       "mixes the byte layers (add --byte_self_attn=1) in heads of 64 over twice byte_dim (a "
                       "multiple of 32)")
    if cfg.stop_step > cfg.num_iterations:
        raise RunError(f"stop_step={cfg.stop_step} is past num_iterations={cfg.num_iterations}: lower it (0: run "
                       "every step)")
    default_batch = Hyperparameters.global_batch_seqs
    if cfg.bench_ranks and default_batch % cfg.bench_ranks:
        raise RunError(f"bench_ranks={cfg.bench_ranks}: the global batch of {default_batch} sequences splits over "
                       f"{', '.join(str(n) for n in range(1, default_batch + 1) if default_batch % n == 0)} ranks")
    if cfg.seed_count > 1 and (cfg.resume or cfg.save_checkpoint or cfg.save_every or cfg.profile_steps):
        raise RunError(f"seed_count={cfg.seed_count} with resume, checkpoints or profile_steps: those are for "
                       "one run; leave seed_count at 1 (or run one process per seed)")
    if cfg.bytes_per_token % cfg.byte_pool:
        raise RunError(f"byte_pool={cfg.byte_pool} must divide bytes_per_token={cfg.bytes_per_token}")
    check_target_weights(cfg)
    try:
        parse_kernel_options(cfg.flex_kernel_options)
    except ValueError:
        raise RunError(f"flex_kernel_options={cfg.flex_kernel_options!r}: give name=integer pairs separated by "
                       "commas, e.g. --flex_kernel_options=BLOCK_M=64,num_warps=4 (empty: FlexAttention's "
                       "own)") from None
    if cfg.prefix_depth > PREFIX_CHAIN_MAX:
        raise RunError(f"prefix_depth={cfg.prefix_depth}: GPT-2's longest prefix chain has {PREFIX_CHAIN_MAX} links "
                       f"(down to every token's first byte); use 1 to {PREFIX_CHAIN_MAX}")
    if cfg.byte_target_count > cfg.bytes_per_token:
        raise RunError(f"byte_target_count={cfg.byte_target_count}: at most bytes_per_token={cfg.bytes_per_token}")
    if cfg.devlog:
        try:
            open(DEVLOG, "a").close()
        except OSError as e:
            raise RunError(f"--devlog: cannot append to {DEVLOG} ({e.strerror}); make it writable or leave out "
                           "--devlog") from None
    if cfg.bigram_hash_rows == 1:
        raise RunError("bigram_hash_rows=1: use 0 (off) or at least 2 (one row is kept for 'no previous token')")
    if not 2 <= cfg.byte_ngram_max <= cfg.bytes_per_token:
        raise RunError(f"byte_ngram_max={cfg.byte_ngram_max}: n-grams span 2 to bytes_per_token={cfg.bytes_per_token} bytes")


def check_target_weights(cfg: Hyperparameters) -> None:
    """mtp_weights must be comma-separated numbers in [0, 1], fewer than a sequence's tokens."""
    try:
        weights = parse_weights(cfg.mtp_weights)
    except ValueError:
        raise RunError(f"mtp_weights={cfg.mtp_weights!r}: give comma-separated numbers, e.g. --mtp_weights=0.5,0.25 "
                       "(empty: off)") from None
    for weight in weights:
        if not 0 <= weight <= 1:
            raise RunError(f"mtp_weights={cfg.mtp_weights!r}: {weight} must lie in [0, 1] (the next token's weight "
                           "is 1)")
    if len(weights) >= cfg.seq_len:
        raise RunError(f"mtp_weights has {len(weights)} weights, targets up to {len(weights) + 1} tokens ahead, but a "
                       f"sequence holds seq_len={cfg.seq_len} tokens: give fewer (the record: 0.5,0.25)")


def check_byte_shards(cfg: Hyperparameters, byte_table: np.ndarray) -> None:
    """The first tokens of the training and validation data must have the byte rows of the tokenizer."""
    for pattern, role in ((cfg.train_files, "training"), (cfg.val_files, "validation")):
        stream = open_stream(cfg, pattern, role)
        tokens, rows = stream.take(min(cfg.seq_len, token_shard_length(stream.files[0])))
        mismatch = np.flatnonzero((rows != byte_table[tokens]).any(axis=1))
        if len(mismatch):
            raise DataError(f"{byte_shard_path(stream.files[0], cfg.bytes_per_token)}: byte row {mismatch[0]} does "
                            f"not hold the bytes of token {tokens[mismatch[0]]}; rebuild it with "
                            "python data/byte_shards.py --force")


def load_byte_table(cfg: Hyperparameters) -> np.ndarray:
    """(vocab, bytes_per_token) rows of every token's bytes, as the byte shards hold them."""
    from data.gpt2_tokenizer import load_gpt2_encoding, token_byte_table
    return token_byte_table(load_gpt2_encoding(), cfg.bytes_per_token, cfg.byte_align)


def write_header(log: Logger, cfg: Hyperparameters, runtime: Runtime, notes: list[str]) -> None:
    """The log's opening: this script, the machine, every constant and those that differ from the file's."""
    log(Path(__file__).read_text(), console=False)
    log("=" * 100, console=False)
    log(environment_report(runtime), console=False)
    log("constants: " + " ".join(f"{k}={v}" for k, v in dataclasses.asdict(cfg).items()), console=False)
    log(f"changed constants (against the committed defaults): {changed_constants(cfg) or 'none'}")
    for note in notes:
        log(note)


def seed_runs(cfg: Hyperparameters) -> list[Hyperparameters]:
    """The runs of a process: seed_count of them, each the constants of a process of that one seed."""
    return [dataclasses.replace(cfg, seed=cfg.seed + k, seed_count=1) for k in range(cfg.seed_count)]


def seed_note(runs: list[Hyperparameters], index: int, first_log: Logger) -> list[str]:
    """The log line that places a run among its process's seeds (none in a process of one seed)."""
    if len(runs) == 1:
        return []
    compiled = "" if index == 0 else f", compiled by the first (log {first_log.path})"
    return [f"seed {runs[index].seed}: run {index + 1} of {len(runs)} in this process{compiled}"]


def start_from_seed(model: GPT, optimizers, initial_states: list[dict], cfg: Hyperparameters,
                    runtime: Runtime) -> None:
    """Puts the compiled model and the optimizers where a new process of cfg.seed starts training: the
    weights of a model built with that seed, the optimizers' initial states."""
    model.load_state_dict(build_model(cfg, runtime).state_dict())
    for opt, state in zip(optimizers, initial_states):
        opt.load_state_dict(state)


def train(cfg: Hyperparameters, runtime: Runtime, log: Logger, notes: list[str] = ()) -> None:
    """Builds, compiles and warms up the model once, then trains it once per seed of seed_runs, each run
    with its own log (the first in log)."""
    runs = seed_runs(cfg)
    cfg = runs[0]
    write_header(log, cfg, runtime, [*notes, *seed_note(runs, 0, log)])
    check_token_budget(cfg, runtime.world_size)
    byte_table = load_byte_table(cfg) if cfg.use_mot or uses_bytes(cfg) else None
    if uses_bytes(cfg):
        check_byte_shards(cfg, byte_table)
    resumed = load_checkpoint(cfg.resume, cfg, runtime) if cfg.resume else None  # checked before compiling

    model = build_model(cfg, runtime)
    if resumed is not None:
        check_checkpoint_fits(resumed, model, cfg.resume)
    optimizers = build_optimizers(model, cfg, runtime)
    vocab_table = build_vocab_table(model, cfg, runtime, byte_table)
    if runtime.compiled:
        torch._inductor.config.coordinate_descent_tuning = cfg.coordinate_descent_tuning
        compile_model(model)

    compile_start = time.perf_counter()
    warm_up(model, optimizers, cfg, runtime, log, byte_table, vocab_table)
    synchronize(runtime)
    log(f"warm-up and compile: {time.perf_counter() - compile_start:.1f}s")
    initial_states = [copy.deepcopy(opt.state_dict()) for opt in optimizers]
    first_log = log
    for index, run_cfg in enumerate(runs):
        if index:
            log = Logger(run_cfg, runtime)
            write_header(log, run_cfg, runtime, [*notes, *seed_note(runs, index, first_log)])
            start_from_seed(model, optimizers, initial_states, run_cfg, runtime)
        train_run(model, optimizers, run_cfg, runtime, log, byte_table, vocab_table, resumed)


def train_run(model: GPT, optimizers, cfg: Hyperparameters, runtime: Runtime, log: Logger,
              byte_table: np.ndarray | None, vocab_table: VocabTable | None, resumed: dict | None) -> None:
    """One training run from the model's and optimizers' present state (or from resumed): the steps,
    validations and checkpoints, the final report and the result line."""
    stream = open_stream(cfg, cfg.train_files, "training")
    start_step, train_ms = 0, 0.0
    if resumed is not None:
        restore(resumed, model, optimizers, runtime)
        start_step, train_ms = resumed["step"], resumed["train_ms"]
        stream.skip(resumed["tokens_consumed"])
        log(f"resumed from {cfg.resume} after step {start_step}")
    batches = rank_batches(stream, cfg.global_batch_seqs, cfg.seq_len, runtime.rank, runtime.world_size,
                           runtime.device)
    steps, step_ms, val_loss = run_steps(cfg), [], float("nan")
    stop, stop_agreed, pending = StopRequest(), False, None
    synchronize(runtime)
    t0 = time.perf_counter()
    for step in range(start_step, steps + 1):
        window = step_window(step, cfg, runtime.device)
        # one process stops after the step in which the signal came; several agree through the next step's votes
        stop_agreed = stop_agreed or (runtime.world_size == 1 and stop.signal is not None)
        validate = step == steps or (cfg.val_loss_every > 0 and step % cfg.val_loss_every == 0)
        validate = validate and not (cfg.resume and step == start_step < steps)  # the earlier run logged it
        checkpoint = step > start_step and (stop_agreed or (cfg.save_every > 0 and step % cfg.save_every == 0)
                                            or (step == steps and (cfg.save_checkpoint or cfg.save_every > 0)))
        if validate or checkpoint:
            synchronize(runtime)
            train_ms += 1000 * (time.perf_counter() - t0)
            if validate:
                val_loss = evaluate(model, cfg, runtime, window, vocab_table)
                log(f"step:{step}/{cfg.num_iterations} val_loss:{val_loss:.4f} train_time:{train_ms:.0f}ms "
                    f"step_avg:{train_ms / max(step, 1):.2f}ms")
            if checkpoint:
                path = log.path.with_suffix("") / f"state_step{step:06d}.pt" if log.path else None
                write_checkpoint(path, step, train_ms, cfg, runtime, model, optimizers)
                log(f"checkpoint: {path}")
            if stop_agreed:
                log(f"stopped on request after step {step}; continue with --resume={path}")
                raise StoppedBySignal(stop.signal or signal.SIGTERM)
            synchronize(runtime)
            t0 = time.perf_counter()
        if step == steps:
            break
        step_start = time.perf_counter()
        stats = HostCopy(train_step(model, optimizers, batches, window, step, cfg, runtime, stop.signal is not None,
                                    vocab_table))
        if pending is not None:  # the previous step's results, copied while this step was being queued
            stop_agreed = check_step_stats(pending.values(), step, cfg, log)
        pending = stats
        now = time.perf_counter()
        step_ms.append(1000 * (now - step_start))
        elapsed = train_ms + 1000 * (now - t0)
        log(f"step:{step + 1}/{cfg.num_iterations} train_time:{elapsed:.0f}ms "
            f"step_avg:{elapsed / (step + 1):.2f}ms")
    if pending is not None:
        check_step_stats(pending.values(), steps, cfg, log)

    log(peak_memory_report(runtime))
    steady = step_ms[min(20, len(step_ms) // 2):]
    median = float("nan")
    if steady:
        median = float(np.median(steady))
        micro = micro_steps_per_rank(cfg, runtime)
        first = start_step + len(step_ms) - len(steady) + 1
        log(f"final val_loss:{val_loss:.4f} train_time:{train_ms:.0f}ms median step:{median:.2f}ms "
            f"({median / micro:.2f}ms per micro-step, steps {first}-{start_step + len(step_ms)})")
    if cfg.profile_steps:
        profile(model, optimizers, cfg, runtime, window, log, byte_table, vocab_table)
    if runtime.master:
        line = result_line(cfg, runtime, val_loss, train_ms, median)
        log(f"result: {line}")
        if cfg.devlog:
            log(f"appended to {append_to_devlog(line, cfg.devlog)}")
    log(f"log: {log.path}")


class HostCopy:
    """A device tensor's values, copied to pinned host memory behind the work already queued: reading them
    waits for that copy alone, where .item() would wait for everything queued since (the GPU then idles
    while the host prepares the next step)."""

    def __init__(self, values: Tensor):
        self.event = None
        if values.device.type != "cuda":
            self.host = values.detach()
            return
        self.host = torch.empty(values.shape, dtype=values.dtype, pin_memory=True)
        self.host.copy_(values.detach(), non_blocking=True)
        self.event = torch.cuda.Event()
        self.event.record()

    def values(self) -> list[float]:
        if self.event is not None:
            self.event.synchronize()
        return self.host.tolist()


def check_step_stats(stats: list[float], step: int, cfg: Hyperparameters, log) -> bool:
    """Logs step's mean training loss (with output targets, their weighted sum) and its next-token term to the
    log file, fails where the loss is not finite, and returns whether any rank asked to stop."""
    loss, next_token, stop_votes = stats
    log(f"step:{step}/{cfg.num_iterations} train_loss:{loss:.6f} next_token_loss:{next_token:.6f}", console=False)
    if not math.isfinite(loss):
        raise RunError(f"training loss is {loss} at step {step}; stopping (lower the learning rates or check the data)")
    return stop_votes > 0


def synchronize(runtime: Runtime) -> None:
    if runtime.device.type == "cuda":
        torch.cuda.synchronize()


def check_launch(cfg: Hyperparameters, world_size: int) -> None:
    """--check: what a launch of world_size processes on this host can know before any of them starts (the
    constants, the GPUs, the shards against the steps), so that run.sh reports a bad configuration once, not
    once per rank."""
    check_world_size(cfg, world_size)
    gpus = torch.cuda.device_count() if uses_cuda(cfg) else 0
    if gpus and world_size > gpus and not cfg.rehearse:
        raise RunError(f"{world_size} processes but {gpus} GPU(s) visible: launch one process per GPU (NPROC={gpus}), "
                       f"or {SHARE_GPUS}")
    check_token_budget(cfg, world_size)
    print(f"check: the constants and the shards fit a run of {world_size} process(es)")


def main(argv: list[str]) -> int:
    if "--help" in argv or "-h" in argv:
        print(constants_help())
        return 0
    runtime = log = None
    try:
        cfg = parse_args([arg for arg in argv if arg != "--check"])
        check_config(cfg)
        if "--check" in argv:
            check_launch(cfg, int(os.environ.get("WORLD_SIZE", 1)))
            return 0
        runtime = select_runtime(cfg)
        check_table_memory(cfg, runtime)
        if runtime.world_size > 1:
            dist.init_process_group(backend=runtime.exchange,
                                    device_id=runtime.device if runtime.exchange == "nccl" else None)
        log = Logger(cfg, runtime)
        train(cfg, runtime, log, preset_notes(argv, committed_defaults()))
        return 0
    except RunError as e:
        if (runtime.rank if runtime is not None else int(os.environ.get("RANK", 0))) == 0:
            print(f"error: {e}", file=sys.stderr, flush=True)
        if log is not None:
            log(f"error: {e}", console=False)
        return 1
    except StoppedBySignal as e:
        return e.exit_code
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
