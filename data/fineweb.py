"""Tokenizes text documents into GPT-2 token shards plus per-token byte shards.

Usage: python data/fineweb.py --input PATH [PATH ...] --output DIR [--name fineweb] [--val_tokens N]
           [--shard_tokens N] [--bytes_per_token 16] [--align right] [--workers N] [--force]

Inputs, read in the order given: .txt (one document per file), .jsonl (field "text"), .jsonl.xz and
.jsonl.gz, and .parquet (field "text"; needs pyarrow). Every document is preceded by the end-of-text
token 50256. Whole documents from the start of the input go to DIR/NAME_val_000000.bin until it holds
at least val_tokens tokens; the rest fills DIR/NAME_train_000001.bin, ... with shard_tokens tokens each
(a document may continue in the next shard). Each token shard gets its byte shard beside it. An output
folder that already holds shards of NAME is refused unless --force, which removes them first.
"""
import argparse
import gzip
import json
import lzma
import os
import signal
import sys
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from data.byte_shards import ByteShardWriter  # noqa: E402
from data.gpt2_tokenizer import EOT_TOKEN, load_gpt2_encoding  # noqa: E402
from train_gpt import SHARD_HEADER_INTS, SHARD_VERSION, TOKEN_SHARD_MAGIC, DataError  # noqa: E402


# -----------------------------------------------------------------------------
# Reading documents

def open_text(path: Path):
    if path.name.endswith(".xz"):
        return lzma.open(path, "rt", encoding="utf-8")
    if path.name.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def jsonl_documents(path: Path):
    with open_text(path) as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                text = json.loads(line)["text"]
            except (json.JSONDecodeError, KeyError, TypeError) as e:
                raise InputError(f"{path}:{line_no}: not a JSON object with a 'text' field ({e})")
            if not isinstance(text, str):
                raise InputError(f"{path}:{line_no}: 'text' is {type(text).__name__}, not a string")
            yield text


def parquet_documents(path: Path):
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise InputError(f"{path}: reading .parquet needs pyarrow (pip install pyarrow)")
    for batch in pq.ParquetFile(path).iter_batches(columns=["text"]):
        for text in batch.column(0).to_pylist():
            if not isinstance(text, str):
                raise InputError(f"{path}: a 'text' value is {type(text).__name__}, not a string")
            yield text


def documents(paths: list[Path]):
    """Yields the text of every document of every input, in order."""
    for path in paths:
        name = path.name
        try:
            if name.endswith((".jsonl", ".jsonl.xz", ".jsonl.gz")):
                yield from jsonl_documents(path)
            elif name.endswith(".parquet"):
                yield from parquet_documents(path)
            elif name.endswith((".txt", ".txt.xz", ".txt.gz")):
                with open_text(path) as f:
                    yield f.read()
            else:
                raise InputError(f"{path}: unknown input type; use .txt, .jsonl, .jsonl.xz, .jsonl.gz or .parquet")
        except (OSError, UnicodeDecodeError, EOFError, lzma.LZMAError) as e:
            raise InputError(f"cannot read {path}: {e}")


class InputError(Exception):
    pass


# -----------------------------------------------------------------------------
# Tokenizing in worker processes

_encoding = None


def _init_worker():
    global _encoding
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to report, once
    _encoding = load_gpt2_encoding()


def tokenize(text: str) -> np.ndarray:
    tokens = [EOT_TOKEN] + _encoding.encode_ordinary(text)
    return np.array(tokens, dtype=np.uint16)


# -----------------------------------------------------------------------------
# Writing shards

def write_token_shard(path: Path, tokens: np.ndarray) -> None:
    """Writes a modded-nanogpt token shard atomically: 256 int32 header, then uint16 tokens."""
    header = np.zeros(SHARD_HEADER_INTS, dtype=np.int32)
    header[:3] = [TOKEN_SHARD_MAGIC, SHARD_VERSION, len(tokens)]
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(header.tobytes())
        f.write(tokens.astype(np.uint16, copy=False).tobytes())
    os.replace(tmp, path)


class ShardSink:
    """Collects token arrays and writes the validation shard, then fixed-size training shards."""

    def __init__(self, out_dir: Path, name: str, val_tokens: int, shard_tokens: int, byte_writer: ByteShardWriter):
        self.out_dir, self.name = out_dir, name
        self.val_tokens, self.shard_tokens = val_tokens, shard_tokens
        self.byte_writer = byte_writer
        self.pending: list[np.ndarray] = []
        self.pending_len = 0
        self.in_val = val_tokens > 0
        self.next_train_index = 1
        self.written: list[Path] = []

    def add(self, tokens: np.ndarray) -> None:
        if self.in_val:
            self._append(tokens)
            if self.pending_len >= self.val_tokens:
                self._flush(f"{self.name}_val_000000.bin", self.pending_len)
                self.in_val = False
            return
        self._append(tokens)
        while self.pending_len >= self.shard_tokens:
            self._flush_train(self.shard_tokens)

    def close(self) -> None:
        if self.in_val and self.pending_len:
            self._flush(f"{self.name}_val_000000.bin", self.pending_len)
        elif self.pending_len:
            self._flush_train(self.pending_len)

    def _append(self, tokens: np.ndarray) -> None:
        self.pending.append(tokens)
        self.pending_len += len(tokens)

    def _flush_train(self, count: int) -> None:
        self._flush(f"{self.name}_train_{self.next_train_index:06d}.bin", count)
        self.next_train_index += 1

    def _flush(self, filename: str, count: int) -> None:
        joined = np.concatenate(self.pending)
        shard, rest = joined[:count], joined[count:]
        self.pending = [rest] if len(rest) else []
        self.pending_len = len(rest)
        path = self.out_dir / filename
        write_token_shard(path, shard)
        self.byte_writer.write(path, shard)
        self.written.append(path)


def existing_shards(out_dir: Path, name: str, partial: bool = False) -> list[Path]:
    """Token and byte shards of this name already in out_dir (a training glob would pick them up); with
    partial, also the half-written ones (*.tmp)."""
    if not out_dir.is_dir():
        return []
    return sorted(p for kind in ("train", "val") for p in out_dir.glob(f"{name}_{kind}_*")
                  if p.suffix == ".bin" or p.suffix.startswith(".bytes") or (partial and p.suffix == ".tmp"))


def prepare_output(out_dir: Path, name: str, force: bool) -> list[Path]:
    """Creates out_dir; refuses one that holds shards of this name, unless force, which removes them. Returns
    the folders it created, innermost first."""
    created = [folder for folder in (out_dir, *out_dir.parents) if not folder.exists()]
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"cannot create the output folder {out_dir}: {e.strerror or e}")
    stale = existing_shards(out_dir, name)
    if stale and not force:
        raise InputError(f"{out_dir} already holds {len(stale)} shards named {name}_* (from an earlier run); "
                         "pass --force to replace them, or choose another --output or --name")
    for path in stale:
        path.unlink()
    return created


def remove_partial_output(out_dir: Path, name: str, created: list[Path]) -> None:
    """After a failed run: every shard of this name it wrote, whole or half, and the folders it created if
    they are empty."""
    for path in existing_shards(out_dir, name, partial=True):
        path.unlink()
    for folder in created:
        try:
            folder.rmdir()
        except OSError:  # not empty: something else lives there
            break


def tokenize_to_shards(inputs: list[Path], out_dir: Path, name: str, val_tokens: int, shard_tokens: int,
                       bytes_per_token: int, align: str, workers: int, force: bool = False) -> dict:
    created = prepare_output(out_dir, name, force)
    sink = ShardSink(out_dir, name, val_tokens, shard_tokens, ByteShardWriter(bytes_per_token, align))
    start, total, docs = time.perf_counter(), 0, 0
    try:
        with Pool(workers, initializer=_init_worker) as pool, \
                tqdm(unit="tok", unit_scale=True, desc="tokenizing", smoothing=0.1) as bar:
            for tokens in pool.imap(tokenize, documents(inputs), chunksize=16):
                sink.add(tokens)
                total += len(tokens)
                docs += 1
                bar.update(len(tokens))
        sink.close()
        if docs == 0:
            raise InputError(f"the inputs hold no documents: {' '.join(map(str, inputs))}")
        if sink.next_train_index == 1:
            raise InputError(f"all {total} tokens would go to the validation shard, none to training; lower "
                             f"--val_tokens (now {val_tokens}) or add text")
    except OSError as e:  # a read-only folder, a full disk
        remove_partial_output(out_dir, name, created)
        raise InputError(f"cannot write the shards into {out_dir}: {e.strerror or e}; free space there or choose "
                         "another --output") from None
    except BaseException:  # a bad input, an interrupt: no half-made data set is left for a run to train on
        remove_partial_output(out_dir, name, created)
        raise
    seconds = time.perf_counter() - start
    return dict(documents=docs, tokens=total, seconds=seconds, shards=sink.written)


def main(argv=None):
    parser = argparse.ArgumentParser(description="Tokenize text into GPT-2 token shards and per-token byte shards.")
    parser.add_argument("--input", nargs="+", required=True, type=Path,
                        help=".txt, .jsonl, .jsonl.xz, .jsonl.gz or .parquet files, read in this order")
    parser.add_argument("--output", required=True, type=Path, help="directory for the shards")
    parser.add_argument("--name", default="fineweb", help="shard name prefix (default fineweb)")
    parser.add_argument("--val_tokens", type=int, default=10_485_760,
                        help="whole documents from the start go to the val shard until it holds this many tokens")
    parser.add_argument("--shard_tokens", type=int, default=100_000_000, help="tokens per training shard")
    parser.add_argument("--bytes_per_token", type=int, default=16, help="byte slot width (default 16)")
    parser.add_argument("--align", choices=["left", "right"], default="right", help="byte alignment (default right)")
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="tokenizer processes")
    parser.add_argument("--force", action="store_true", help="replace shards of this name already in --output")
    args = parser.parse_args(argv)
    if args.shard_tokens < 1 or args.val_tokens < 0:
        raise SystemExit("error: --shard_tokens must be positive and --val_tokens not negative")
    if args.workers < 1 or args.bytes_per_token < 1:
        raise SystemExit("error: --workers and --bytes_per_token must be at least 1")
    for path in args.input:
        if not path.is_file():
            raise SystemExit(f"error: input {path} does not exist or is not a file")
    try:
        stats = tokenize_to_shards(args.input, args.output, args.name, args.val_tokens, args.shard_tokens,
                                   args.bytes_per_token, args.align, args.workers, args.force)
    except (InputError, DataError) as e:
        raise SystemExit(f"error: {e}")
    except KeyboardInterrupt:
        print(f"\nerror: interrupted; the shards written so far into {args.output} were removed", file=sys.stderr)
        raise SystemExit(130) from None
    rate = stats["tokens"] / max(stats["seconds"], 1e-9)
    print(f"{stats['documents']} documents, {stats['tokens']} tokens in {stats['seconds']:.1f} s "
          f"({rate:,.0f} tokens/s), {len(stats['shards'])} token shards in {args.output}")


if __name__ == "__main__":
    main()
