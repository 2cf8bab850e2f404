"""Hashed token-bigram and byte n-gram embeddings against references computed from the text in Python."""
import numpy as np
import pytest
import torch

import train_gpt as T
from conftest import ROOT
from data.gpt2_tokenizer import token_byte_table

MASK32 = 2 ** 32
MARKER_BYTE_TOKENS = [186, 187, 186]  # the single bytes 0xFE (the end-of-text marker's) and 0xFF (the pad's)


@pytest.fixture(scope="module")
def text_tokens(encoding):
    """The first 3,000 tokens of the committed sample (Wikipedia introductions, many documents), with two
    tokens of over 16 bytes put in (slot truncation) and a document that starts at position 0."""
    tokens = T.load_token_shard(ROOT / "data" / "smoke" / "smoke_val_000000.bin")[:3000].astype(np.int64)
    long_ids = [i for i in range(T.EOT_TOKEN) if len(encoding.decode_single_token_bytes(i)) > 16][:2]
    tokens[[700, 1500]] = long_ids
    tokens[[900, 901, 1200]] = MARKER_BYTE_TOKENS  # bytes no valid UTF-8 holds, but a shard may
    assert tokens[0] == T.EOT_TOKEN and (tokens == T.EOT_TOKEN).sum() > 10
    return torch.from_numpy(tokens)


def reference_bigram_rows(tokens: list[int], rows: int) -> list[int]:
    out = []
    for t, token in enumerate(tokens):
        if t == 0 or token == T.EOT_TOKEN:
            out.append(rows - 1)
        else:
            out.append(((1_000_003 * token) ^ (998_244_353 * tokens[t - 1])) % (rows - 1))
    return out


def token_text_bytes(encoding, token: int, slot: int, align: str) -> list[int]:
    if token == T.EOT_TOKEN:
        return [256]  # the marker: no byte's value
    raw = encoding.decode_single_token_bytes(token)
    return list(raw[-slot:] if align == "right" else raw[:slot])


def reference_ngram_rows(encoding, tokens: list[int], max_n: int, rows: int, align: str):
    """Per token: {n: row} of the n-grams ending at its last byte, over its document's byte stream from the
    document's end-of-text marker or the sequence's first position, whichever is later."""
    out, stream = [], []
    for token in tokens:
        if token == T.EOT_TOKEN:
            stream = []
        stream += token_text_bytes(encoding, token, 16, align)
        grams = {}
        for n in range(2, max_n + 1):
            if len(stream) >= n:
                h = 0
                for byte in reversed(stream[-n:]):
                    h = (257 * h + byte + 1) % (2 ** 31 - 1)
                grams[n] = ((h * 2_654_435_761 + n) % MASK32) % rows
        out.append(grams)
    return out


def test_bigram_rows_equal_the_reference(text_tokens):
    rows = 251_527
    assert T.bigram_hash(text_tokens, rows).tolist() == reference_bigram_rows(text_tokens.tolist(), rows)
    # a sequence that starts inside a document: its first position has no previous token either
    assert T.bigram_hash(text_tokens[5:], rows).tolist() == reference_bigram_rows(text_tokens[5:].tolist(), rows)


@pytest.mark.parametrize("align", ["right", "left"])
def test_byte_ngram_rows_equal_the_reference(encoding, text_tokens, align):
    rows = 100_003
    byte_rows = torch.from_numpy(token_byte_table(encoding, 16, align)[text_tokens.numpy()])
    hashes, exists = T.byte_ngram_hashes(text_tokens, byte_rows, 6, rows, align)
    got = [{n: row for n, row, ok in zip(range(2, 7), h, e) if ok} for h, e in zip(hashes.tolist(), exists.tolist())]
    assert got == reference_ngram_rows(encoding, text_tokens.tolist(), 6, rows, align)
    # a sequence that starts inside a document sees none of the bytes before its first position
    hashes, exists = T.byte_ngram_hashes(text_tokens[3:], byte_rows[3:], 6, rows, align)
    got = [{n: row for n, row, ok in zip(range(2, 7), h, e) if ok} for h, e in zip(hashes.tolist(), exists.tolist())]
    assert got == reference_ngram_rows(encoding, text_tokens[3:].tolist(), 6, rows, align)
    assert [encoding.decode_single_token_bytes(t) for t in MARKER_BYTE_TOKENS[:2]] == [b"\xfe", b"\xff"]
    for length in (1, 2, 4):  # sequences shorter than the longest n-gram's tokens
        start = 899
        piece = slice(start, start + length)
        hashes, exists = T.byte_ngram_hashes(text_tokens[piece], byte_rows[piece], 6, rows, align)
        got = [{n: row for n, row, ok in zip(range(2, 7), h, e) if ok} for h, e in zip(hashes.tolist(), exists.tolist())]
        assert got == reference_ngram_rows(encoding, text_tokens[piece].tolist(), 6, rows, align)


def features(tokens, byte_rows):
    return T.bigram_hash(tokens, 1009), T.byte_ngram_hashes(tokens, byte_rows, 6, 1013, "right")


def test_features_see_neither_later_tokens_nor_earlier_documents(encoding, text_tokens):
    table = token_byte_table(encoding, 16, "right")
    tokens = text_tokens[:400].clone()
    ends = torch.nonzero(tokens == T.EOT_TOKEN).flatten().tolist()
    second, third = ends[1], ends[2]
    base_bigram, (base_rows, base_exists) = features(tokens, torch.from_numpy(table[tokens.numpy()]))
    changed = tokens.clone()
    changed[second + 1:third] = torch.randint(0, 50000, (third - second - 1,), generator=torch.Generator().manual_seed(0))
    bigram, (rows, exists) = features(changed, torch.from_numpy(table[changed.numpy()]))
    # positions before the change: nothing moved (no future); the next document: nothing moved (no leak)
    for part in (slice(0, second + 1), slice(third, None)):
        assert torch.equal(bigram[part], base_bigram[part])
        assert torch.equal(rows[part] * exists[part], base_rows[part] * base_exists[part])
        assert torch.equal(exists[part], base_exists[part])
    assert not torch.equal(bigram[second + 1:third], base_bigram[second + 1:third])


def test_off_is_exactly_the_baseline_and_on_starts_from_it():
    base_cfg = T.parse_args(["--smoke"])
    runtime = T.select_runtime(base_cfg)
    base = T.build_model(base_cfg, runtime).state_dict()
    on_cfg = T.parse_args(["--smoke", "--bigram_hash_rows=97", "--byte_ngram_rows=101"])
    on = T.build_model(on_cfg, runtime)
    extra = {"bigram_embed.table.weight", "bigram_lambdas", "byte_ngram_embed.table.weight"}
    assert set(on.state_dict()) == set(base) | extra
    for name, value in base.items():
        assert torch.equal(on.state_dict()[name], value), name  # every other weight: the baseline's
    assert not on.bigram_embed.table.weight.any() and not on.byte_ngram_embed.table.weight.any()
    off = T.build_model(T.parse_args(["--smoke", "--bigram_hash_rows=0", "--byte_ngram_rows=0"]), runtime)
    assert off.state_dict().keys() == base.keys()


@pytest.mark.parametrize("placement", ["blocks", "input"])
def test_gradients_reach_the_tables_at_the_rows_used(encoding, text_tokens, placement):
    cfg = T.parse_args(["--smoke", "--seq_len=256", "--bigram_hash_rows=97", "--byte_ngram_rows=101",
                        f"--bigram_placement={placement}"])
    model = T.build_model(cfg, T.select_runtime(cfg))
    with torch.no_grad():
        model.lm_head.weight.normal_(0, 0.5)  # a zero head passes no gradient back
    tokens = text_tokens[:257]
    byte_rows = torch.from_numpy(token_byte_table(encoding, 16, "right")[tokens[:-1].numpy()])
    model(tokens[:-1], tokens[1:], torch.tensor(2), byte_rows).backward()
    used_bigrams = set(T.bigram_hash(tokens[:-1], 97).tolist())
    hashes, exists = T.byte_ngram_hashes(tokens[:-1], byte_rows, 6, 101, "right")
    used_ngrams = set(hashes[exists].tolist())
    for table, used in ((model.bigram_embed.table, used_bigrams), (model.byte_ngram_embed.table, used_ngrams)):
        touched = set(torch.nonzero(table.weight.grad.abs().sum(dim=1)).flatten().tolist())
        assert touched == used
    assert (model.bigram_lambdas is not None) == (placement == "blocks")
