"""The distributed data loader returns exactly the shards' tokens, and bad shards fail with their name."""
import zlib

import numpy as np
import pytest
import torch

import train_gpt as T
from helpers import write_raw_token_shard


@pytest.fixture
def shards(tmp_path):
    """Five shards of uneven length whose tokens count up from 0 across all of them."""
    lengths = [37, 100, 5, 64, 250]
    tokens = np.arange(sum(lengths)) % 50000
    files, start = [], 0
    for i, n in enumerate(lengths):
        files.append(write_raw_token_shard(tmp_path / f"t_train_{i:06d}.bin", tokens[start:start + n]))
        start += n
    return files, tokens


@pytest.mark.parametrize("world_size", [1, 2, 4])
def test_ranks_read_disjoint_slices_that_cover_the_stream(shards, world_size):
    files, tokens = shards
    seqs_per_step, seq_len, steps = 4, 11, 9
    per_rank = [T.rank_batches(T.TokenStream(files), seqs_per_step, seq_len, r, world_size, torch.device("cpu"))
                for r in range(world_size)]
    inputs, targets = [], []
    for _ in range(steps):
        for rank_iter in per_rank:  # rank r holds sequences r*A .. r*A+A-1 of the step, in order
            for _ in range(seqs_per_step // world_size):
                x, y = next(rank_iter)
                assert x.dtype == torch.int32 and y.dtype == torch.int64 and len(x) == seq_len
                inputs.append(x.numpy())
                targets.append(y.numpy())
    n = steps * seqs_per_step * seq_len
    assert np.array_equal(np.concatenate(inputs), tokens[:n])
    assert np.array_equal(np.concatenate(targets), tokens[1:n + 1])


def test_stream_crosses_shards_and_reports_the_end(shards):
    files, tokens = shards
    stream = T.TokenStream(files)
    got = [stream.take(n)[0] for n in (30, 30, 200, 100, 96)]
    assert np.array_equal(np.concatenate(got), tokens[:456])
    with pytest.raises(T.DataError, match="ran out of tokens after the last of 5 shards"):
        stream.take(1)


def test_token_shard_checks_name_the_file(tmp_path):
    good = write_raw_token_shard(tmp_path / "good.bin", [1, 2, 3])
    assert list(T.load_token_shard(good)) == [1, 2, 3]
    cases = {
        "magic": (write_raw_token_shard(tmp_path / "magic.bin", [1, 2], magic=123), "not a token shard"),
        "version": (write_raw_token_shard(tmp_path / "version.bin", [1, 2], version=7), "version 7 is not supported"),
        "lies": (write_raw_token_shard(tmp_path / "lies.bin", [1, 2], claimed=5), "header promises 5 tokens"),
    }
    short = tmp_path / "short.bin"
    short.write_bytes(b"\0" * 100)
    cases["short"] = (short, "truncated token shard")
    for path, message in cases.values():
        with pytest.raises(T.DataError, match=message) as info:
            T.load_token_shard(path)
        assert str(path) in str(info.value)


def test_byte_shard_must_match_its_token_shard(tmp_path):
    token_path = write_raw_token_shard(tmp_path / "x.bin", [1, 2, 3])
    byte_path = T.byte_shard_path(token_path, 16)
    assert byte_path.name == "x.bytes16"
    with pytest.raises(T.DataError, match="byte shard is missing"):
        T.load_byte_shard(byte_path, 3, 16, "right")
    header = np.zeros(256, dtype=np.int32)
    checksum = np.array(zlib.crc32(np.array([1, 2, 3], dtype="<u2").tobytes()), dtype=np.uint32).view(np.int32)
    header[:8] = [20250223, 2, 3, 16, 1, 255, 254, checksum]
    byte_path.write_bytes(header.tobytes() + bytes(range(48)))
    rows = T.load_byte_shard(byte_path, 3, 16, "right", np.array([1, 2, 3], dtype=np.uint16))
    assert rows.shape == (3, 16) and rows[2, 15] == 47
    with pytest.raises(T.DataError, match="built from other tokens than its token shard holds"):
        T.load_byte_shard(byte_path, 3, 16, "right", np.array([1, 2, 4], dtype=np.uint16))
    header[1] = 1
    byte_path.write_bytes(header.tobytes() + bytes(range(48)))
    with pytest.raises(T.DataError, match="byte shard version 1 is not supported .* data/byte_shards.py --force"):
        T.load_byte_shard(byte_path, 3, 16, "right")
    header[1] = 2
    byte_path.write_bytes(header.tobytes() + bytes(range(48)))
    with pytest.raises(T.DataError, match="byte shard holds 3 tokens but its token shard holds 4"):
        T.load_byte_shard(byte_path, 4, 16, "right")
    with pytest.raises(T.DataError, match="16 bytes per token, right aligned; the run asks for 16, left aligned"):
        T.load_byte_shard(byte_path, 3, 16, "left")
    byte_path.write_bytes(header.tobytes() + bytes(range(40)))
    with pytest.raises(T.DataError, match="it is truncated or corrupt"):
        T.load_byte_shard(byte_path, 3, 16, "right")


def test_missing_pattern_names_the_fetch_command(tmp_path):
    with pytest.raises(T.DataError, match="python data/cached_fineweb10B.py"):
        T.shard_files(str(tmp_path / "*.bin"), "training")


def test_skip_lands_where_take_would(shards):
    files, tokens = shards
    for n in (0, 36, 37, 141, 300):
        stream = T.TokenStream(files)
        stream.skip(n)
        assert np.array_equal(stream.take(50)[0], tokens[n:n + 50])


def test_token_ids_outside_the_vocabulary_are_refused_on_loading(tmp_path):
    path = write_raw_token_shard(tmp_path / "x.bin", [5, 50256, 50300, 7])
    assert list(T.load_token_shard(path)) == [5, 50256, 50300, 7]  # no vocabulary given: the format alone
    with pytest.raises(T.DataError, match="token id 50300 at position 2 is not below vocab_size=50257"):
        T.TokenStream([path], vocab_size=50257).take(2)
