"""Builds the per-token byte shard beside each GPT-2 token shard.

Usage: python data/byte_shards.py DIR_OR_SHARD [...] [--bytes_per_token 16] [--align right] [--force]

For every token shard X.bin it writes X.bytes<bytes_per_token>: a header of 256 int32
(magic 20250223, version 2, token count, bytes per token, alignment 0=left 1=right, pad byte,
end-of-text byte, CRC-32 of the token shard's tokens as int32) followed by uint8[token count, bytes per token], row i holding token i's UTF-8
bytes padded with the pad byte (on the right when left-aligned, on the left when right-aligned).
Tokens longer than the slot keep their first bytes (left) or their last bytes (right).
"""
import argparse
import os
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from data.gpt2_tokenizer import (ALIGN_CODES, EOT_BYTE, PAD_BYTE, load_gpt2_encoding,  # noqa: E402
                                 token_byte_table, tokens_with_marker_bytes)
from train_gpt import (BYTE_SHARD_MAGIC, BYTE_SHARD_VERSION, SHARD_HEADER_INTS, DataError,  # noqa: E402
                       byte_shard_path, load_byte_shard, load_token_shard, token_checksum)


class ByteShardWriter:
    """Turns token arrays into byte shards with one lookup table built once."""

    def __init__(self, bytes_per_token: int = 16, align: str = "right", encoding=None):
        if align not in ALIGN_CODES:
            raise SystemExit(f"error: --align must be left or right, got {align!r}")
        if bytes_per_token < 1:
            raise SystemExit(f"error: --bytes_per_token must be positive, got {bytes_per_token}")
        encoding = encoding or load_gpt2_encoding()
        self.bytes_per_token = bytes_per_token
        self.align = align
        self.table = token_byte_table(encoding, bytes_per_token, align)
        self.marker_tokens = tokens_with_marker_bytes(encoding)

    def header(self, tokens: np.ndarray) -> np.ndarray:
        header = np.zeros(SHARD_HEADER_INTS, dtype=np.int32)
        header[:8] = [BYTE_SHARD_MAGIC, BYTE_SHARD_VERSION, len(tokens), self.bytes_per_token,
                      ALIGN_CODES[self.align], PAD_BYTE, EOT_BYTE, token_checksum(tokens)]
        return header

    def write(self, token_path: Path, tokens: np.ndarray) -> Path:
        """Writes the byte shard of `tokens` (the contents of token_path) atomically; returns its path."""
        bad = np.isin(tokens, self.marker_tokens)
        if bad.any():
            pos = int(np.argmax(bad))
            raise DataError(f"{token_path}: token {int(tokens[pos])} at position {pos} has a byte equal to the "
                            f"pad ({PAD_BYTE:#x}) or end-of-text ({EOT_BYTE:#x}) marker, which tokenized UTF-8 "
                            "text never produces; the shard was not made from valid text")
        if tokens.size and int(tokens.max()) >= len(self.table):
            raise DataError(f"{token_path}: token id {int(tokens.max())} is outside the GPT-2 vocabulary")
        out = byte_shard_path(token_path, self.bytes_per_token)
        tmp = out.with_name(out.name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(self.header(tokens).tobytes())
            f.write(self.table[tokens].tobytes())
        os.replace(tmp, out)
        return out

    def is_current(self, token_path: Path, tokens: np.ndarray) -> bool:
        """True when token_path's byte shard exists, its header matches this writer and it was built from
        these tokens."""
        try:
            load_byte_shard(byte_shard_path(token_path, self.bytes_per_token), len(tokens),
                            self.bytes_per_token, self.align, tokens, header_only=True)
            return True
        except DataError:
            return False

    def build(self, token_paths: list[Path], skip_current: bool = False) -> list[Path]:
        written = []
        for path in tqdm(token_paths, desc="byte shards", unit="shard"):
            tokens = load_token_shard(path)
            if skip_current and self.is_current(path, tokens):
                continue
            written.append(self.write(path, tokens))
        return written


def token_shards_in(targets: list[str]) -> list[Path]:
    paths = []
    for target in map(Path, targets):
        if target.is_dir():
            paths += sorted(target.glob("*.bin"))
        elif target.is_file():
            paths.append(target)
        else:
            raise SystemExit(f"error: {target} is neither a token shard nor a directory")
    if not paths:
        raise SystemExit(f"error: no token shards (*.bin) in {' '.join(targets)}")
    return paths


def main(argv=None):
    parser = argparse.ArgumentParser(description="Build per-token byte shards beside GPT-2 token shards.")
    parser.add_argument("targets", nargs="+", help="token shards or directories holding *.bin token shards")
    parser.add_argument("--bytes_per_token", type=int, default=16, help="slot width in bytes (default 16)")
    parser.add_argument("--align", choices=sorted(ALIGN_CODES), default="right",
                        help="keep and align the first (left) or last (right) bytes (default right)")
    parser.add_argument("--force", action="store_true", help="rebuild byte shards whose header already matches")
    args = parser.parse_args(argv)
    writer = ByteShardWriter(args.bytes_per_token, args.align)
    try:
        written = writer.build(token_shards_in(args.targets), skip_current=not args.force)
    except DataError as e:
        raise SystemExit(f"error: {e}")
    print(f"wrote {len(written)} byte shards")


if __name__ == "__main__":
    main()
