"""The GPT-2 tokenizer built offline from the vendored BPE files, and the per-token byte table."""
import hashlib
from pathlib import Path

import numpy as np

GPT2_DIR = Path(__file__).resolve().parent / "gpt2"
BPE_FILE_SHA256 = {
    "vocab.bpe": "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
    "encoder.json": "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783",
}
# GPT-2's pre-tokenizer split pattern, as in the original encoder.py
GPT2_SPLIT_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
VOCAB_SIZE = 50257
EOT_TOKEN = 50256

# Byte shards: byte values that valid UTF-8 never contains mark padding and end-of-text
PAD_BYTE = 0xFF
EOT_BYTE = 0xFE
ALIGN_CODES = {"left": 0, "right": 1}


def check_bpe_files(directory: Path = GPT2_DIR) -> None:
    for name, expected in BPE_FILE_SHA256.items():
        path = directory / name
        if not path.is_file():
            raise SystemExit(f"error: {path} is missing; restore data/gpt2/ from the repository")
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != expected:
            raise SystemExit(f"error: {path} has sha256 {digest}, expected {expected}; restore it from the repository")


def load_gpt2_encoding():
    """tiktoken's exact `gpt2` encoding, built from data/gpt2/ without network access."""
    import tiktoken
    from tiktoken.load import data_gym_to_mergeable_bpe_ranks

    check_bpe_files()
    ranks = data_gym_to_mergeable_bpe_ranks(
        vocab_bpe_file=str(GPT2_DIR / "vocab.bpe"), encoder_json_file=str(GPT2_DIR / "encoder.json"))
    return tiktoken.Encoding(name="gpt2", pat_str=GPT2_SPLIT_PATTERN, mergeable_ranks=ranks,
                             special_tokens={"<|endoftext|>": EOT_TOKEN}, explicit_n_vocab=VOCAB_SIZE)


def token_bytes(encoding) -> list[bytes]:
    """The UTF-8 bytes of every token id; end-of-text is the single byte EOT_BYTE."""
    out = [encoding.decode_single_token_bytes(i) for i in range(EOT_TOKEN)]
    return out + [bytes([EOT_BYTE])]


def fit_to_slot(raw: bytes, width: int, align: str) -> bytes:
    """Pads or truncates one token's bytes to `width`: left alignment keeps the first bytes and pads
    on the right; right alignment keeps the last bytes and pads on the left."""
    if align == "left":
        return raw[:width].ljust(width, bytes([PAD_BYTE]))
    if align == "right":
        return raw[-width:].rjust(width, bytes([PAD_BYTE]))
    raise ValueError(f"align must be 'left' or 'right', got {align!r}")


def token_byte_table(encoding, bytes_per_token: int, align: str) -> np.ndarray:
    """A (VOCAB_SIZE, bytes_per_token) uint8 table: row i is token i's bytes in its slot."""
    rows = [fit_to_slot(raw, bytes_per_token, align) for raw in token_bytes(encoding)]
    return np.frombuffer(b"".join(rows), dtype=np.uint8).reshape(VOCAB_SIZE, bytes_per_token)


def tokens_with_marker_bytes(encoding) -> np.ndarray:
    """Ids of ordinary tokens whose bytes contain PAD_BYTE or EOT_BYTE (never produced from valid UTF-8)."""
    markers = {PAD_BYTE, EOT_BYTE}
    return np.array([i for i, raw in enumerate(token_bytes(encoding)[:EOT_TOKEN]) if markers & set(raw)],
                    dtype=np.int64)
