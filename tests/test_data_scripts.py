"""data/: tokenizer, token shards and byte shards, on real text."""
import gzip
import json
import lzma
import os
import subprocess
import sys
import zlib

import numpy as np
import pytest

import train_gpt as T
from conftest import ROOT
from data import fineweb
from data.byte_shards import ByteShardWriter
from data.gpt2_tokenizer import EOT_BYTE, PAD_BYTE, tokens_with_marker_bytes
from helpers import write_raw_token_shard


def test_known_ids(encoding):
    assert encoding.encode_ordinary("Hello world") == [15496, 995]
    assert encoding.n_vocab == 50257
    assert encoding.encode("<|endoftext|>", allowed_special="all") == [50256]


def write_inputs(tmp_path, docs):
    """The same documents spread over the four input formats, in a known order."""
    a, b, c, d = docs[:100], docs[100:180], docs[180:181], docs[181:]
    paths = [tmp_path / "a.jsonl", tmp_path / "b.jsonl.xz", tmp_path / "c.txt", tmp_path / "d.jsonl.gz"]
    paths[0].write_text("".join(json.dumps({"text": t}) + "\n" for t in a), encoding="utf-8")
    with lzma.open(paths[1], "wt", encoding="utf-8") as f:
        f.writelines(json.dumps({"text": t, "id": i}) + "\n" for i, t in enumerate(b))
    paths[2].write_text(c[0], encoding="utf-8")
    with gzip.open(paths[3], "wt", encoding="utf-8") as f:
        f.writelines(json.dumps({"text": t}) + "\n" for t in d)
    return paths


@pytest.fixture(scope="module")
def built(tmp_path_factory, wiki_leads):
    tmp = tmp_path_factory.mktemp("shards")
    inputs = write_inputs(tmp, wiki_leads)
    out = tmp / "out"
    stats = fineweb.tokenize_to_shards(inputs, out, "wiki", val_tokens=5000, shard_tokens=8000,
                                       bytes_per_token=16, align="right", workers=2)
    return out, stats


def test_decoded_shards_equal_the_documents(built, wiki_leads, encoding):
    out, stats = built
    val = sorted(out.glob("wiki_val_*.bin"))
    train = sorted(out.glob("wiki_train_*.bin"))
    assert [p.name for p in val] == ["wiki_val_000000.bin"]
    assert [p.name for p in train] == [f"wiki_train_{i:06d}.bin" for i in range(1, len(train) + 1)]
    assert all(T.token_shard_length(p) == 8000 for p in train[:-1]) and len(train) > 2
    stream = np.concatenate([T.load_token_shard(p) for p in val + train])
    assert stats["tokens"] == len(stream) and stats["documents"] == len(wiki_leads)
    text = encoding.decode(stream.tolist())
    assert text == "".join("<|endoftext|>" + doc for doc in wiki_leads)


def test_validation_shard_holds_whole_documents(built):
    out, _ = built
    val = T.load_token_shard(out / "wiki_val_000000.bin")
    first_train = T.load_token_shard(out / "wiki_train_000001.bin")
    assert val[0] == T.EOT_TOKEN and first_train[0] == T.EOT_TOKEN
    assert len(val) >= 5000
    last_doc_start = np.flatnonzero(val == T.EOT_TOKEN)[-1]
    assert last_doc_start < 5000  # one document fewer would not have reached val_tokens


@pytest.mark.parametrize("align", ["left", "right"])
def test_byte_rows_are_the_tokens_bytes(tmp_path, built, encoding, align):
    out, _ = built
    token_path = out / "wiki_train_000001.bin"
    tokens = T.load_token_shard(token_path)
    local = tmp_path / token_path.name
    local.write_bytes(token_path.read_bytes())
    ByteShardWriter(16, align, encoding).write(local, tokens)
    byte_path = T.byte_shard_path(local, 16)
    header = np.fromfile(byte_path, dtype=np.int32, count=256)
    checksum = np.array(zlib.crc32(tokens.astype("<u2").tobytes()), dtype=np.uint32).view(np.int32)
    assert list(header[:8]) == [20250223, 2, len(tokens), 16, {"left": 0, "right": 1}[align], PAD_BYTE, EOT_BYTE,
                                checksum]
    rows = T.load_byte_shard(byte_path, len(tokens), 16, align)
    for token, row in zip(tokens.tolist(), rows):
        raw = bytes([EOT_BYTE]) if token == T.EOT_TOKEN else encoding.decode_single_token_bytes(token)
        kept = raw[:16] if align == "left" else raw[-16:]
        pads = 16 - len(kept)
        expected_row = kept + bytes([PAD_BYTE]) * pads if align == "left" else bytes([PAD_BYTE]) * pads + kept
        assert bytes(row) == expected_row


@pytest.mark.parametrize("align,kept", [("left", slice(0, 16)), ("right", slice(-16, None))])
def test_long_tokens_are_truncated_as_documented(tmp_path, encoding, align, kept):
    long_ids = [i for i in range(50256) if len(encoding.decode_single_token_bytes(i)) > 16]
    assert len(long_ids) == 72
    path = write_raw_token_shard(tmp_path / "long.bin", long_ids)
    ByteShardWriter(16, align, encoding).write(path, T.load_token_shard(path))
    rows = T.load_byte_shard(T.byte_shard_path(path, 16), len(long_ids), 16, align)
    for token, row in zip(long_ids, rows):
        assert bytes(row) == encoding.decode_single_token_bytes(token)[kept]


def test_token_with_marker_bytes_fails_loudly(tmp_path, encoding):
    bad = int(tokens_with_marker_bytes(encoding)[0])
    assert {PAD_BYTE, EOT_BYTE} & set(encoding.decode_single_token_bytes(bad))
    path = write_raw_token_shard(tmp_path / "bad.bin", [15496, bad, 995])
    with pytest.raises(T.DataError, match=f"{path}: token {bad} at position 1 has a byte equal to the pad"):
        ByteShardWriter(16, "right", encoding).write(path, T.load_token_shard(path))


def test_byte_builder_cli_skips_current_and_rejects_bad_shards(tmp_path):
    write_raw_token_shard(tmp_path / "s_train_000001.bin", [15496, 995, 50256])
    run = lambda *args: subprocess.run([sys.executable, str(ROOT / "data" / "byte_shards.py"), *args],  # noqa: E731
                                       capture_output=True, text=True)
    first = run(str(tmp_path))
    assert first.returncode == 0 and "wrote 1 byte shards" in first.stdout
    assert "wrote 0 byte shards" in run(str(tmp_path)).stdout
    write_raw_token_shard(tmp_path / "s_train_000002.bin", [1, 2], claimed=9)
    failed = run(str(tmp_path))
    assert failed.returncode == 1
    assert failed.stderr.strip().splitlines()[-1].startswith(f"error: {tmp_path / 's_train_000002.bin'}: header promises 9")


@pytest.mark.parametrize("name,content,message", [
    ("broken.jsonl.xz", b"this is not xz", "cannot read"),
    ("broken.jsonl", b'{"text": "ok"}\n{"title": "no text"}\n', "broken.jsonl:2: not a JSON object with a 'text' field"),
    ("broken.txt", b"\xff\xfe invalid utf-8", "cannot read"),
    ("number.jsonl", b'{"text": 5}\n', "number.jsonl:1: 'text' is int, not a string"),
    ("empty.jsonl", b"", "the inputs hold no documents"),
])
def test_unreadable_input_is_one_clear_line(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    result = subprocess.run([sys.executable, str(ROOT / "data" / "fineweb.py"), "--input", str(path),
                             "--output", str(tmp_path / "out"), "--workers", "1"], capture_output=True, text=True)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and message in last and name in last
    assert "Traceback" not in result.stderr


def run_fineweb(*args):
    return subprocess.run([sys.executable, str(ROOT / "data" / "fineweb.py"), *map(str, args)], capture_output=True,
                          text=True)


def test_bad_tokenizer_arguments_are_one_clear_line(tmp_path):
    text = tmp_path / "a.jsonl"
    text.write_text('{"text": "Hello world"}\n')
    (tmp_path / "a_file").write_text("")
    for args, message in ((["--workers", "0"], "--workers and --bytes_per_token must be at least 1"),
                          (["--output", tmp_path / "a_file"], "cannot create the output folder"),
                          (["--val_tokens", "1"], "would go to the validation shard, none to training")):
        output = [] if "--output" in args else ["--output", tmp_path / "out"]
        result = run_fineweb("--input", text, *output, *args)
        last = result.stderr.strip().splitlines()[-1]  # after the progress bar, if any
        assert result.returncode == 1 and "Traceback" not in result.stderr
        assert last.startswith("error: ") and message in last, result.stderr
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())  # nothing half-made left


def test_a_bad_line_after_written_shards_leaves_no_shards(tmp_path, wiki_leads):
    text = tmp_path / "late.jsonl"
    text.write_text("".join(json.dumps({"text": doc}) + "\n" for doc in wiki_leads[:40]) + '{"title": "no text"}\n')
    result = run_fineweb("--input", text, "--output", tmp_path / "out", "--val_tokens", 500, "--shard_tokens", 1000,
                         "--workers", 1)
    assert result.returncode == 1 and "late.jsonl:41: not a JSON object" in result.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "out").exists()  # shards were written before the bad line: all removed, and the folder


@pytest.mark.parametrize("errno, reason", [(28, "No space left on device"), (30, "Read-only file system")])
def test_a_failed_write_is_one_line_and_leaves_nothing(tmp_path, wiki_leads, monkeypatch, capsys, errno, reason):
    """A full disk or a read-only folder, met after two shards and half of a third were written (root writes
    into read-only folders, so the failure is injected where the byte shard's file is written)."""
    text = tmp_path / "docs.jsonl"
    text.write_text("".join(json.dumps({"text": doc}) + "\n" for doc in wiki_leads[:60]))
    (tmp_path / "keep").mkdir()
    (tmp_path / "keep" / "other.txt").write_text("not ours")
    written, write = [], ByteShardWriter.write

    def failing_write(self, token_path, tokens):
        written.append(token_path)
        if len(written) == 3:
            token_path.with_name(token_path.stem + ".bytes16.tmp").write_bytes(b"half")
            raise OSError(errno, reason)
        return write(self, token_path, tokens)

    monkeypatch.setattr(ByteShardWriter, "write", failing_write)
    for out in (tmp_path / "new" / "deeper", tmp_path / "keep"):
        written.clear()
        with pytest.raises(SystemExit) as stopped:
            fineweb.main(["--input", str(text), "--output", str(out), "--val_tokens", "500", "--shard_tokens", "1000",
                          "--workers", "1"])
        assert str(stopped.value) == f"error: cannot write the shards into {out}: {reason}; free space there or " \
                                     "choose another --output"
    assert not (tmp_path / "new").exists()  # the folders it made: removed
    assert [p.name for p in (tmp_path / "keep").iterdir()] == ["other.txt"]  # no shard, no half-written .tmp


def test_an_interrupt_is_one_line_with_exit_130_and_leaves_no_shards(tmp_path, wiki_leads, monkeypatch, capsys):
    text = tmp_path / "docs.jsonl"
    text.write_text("".join(json.dumps({"text": doc}) + "\n" for doc in wiki_leads[:60]))
    added, add = [], fineweb.ShardSink.add

    def interrupted(self, tokens):
        added.append(len(tokens))
        if sum(added) > 2500:  # after the validation shard and a training shard
            raise KeyboardInterrupt
        add(self, tokens)

    monkeypatch.setattr(fineweb.ShardSink, "add", interrupted)
    with pytest.raises(SystemExit) as stopped:
        fineweb.main(["--input", str(text), "--output", str(tmp_path / "out"), "--val_tokens", "500",
                      "--shard_tokens", "1000", "--workers", "1"])
    assert stopped.value.code == 130 and not (tmp_path / "out").exists()
    assert capsys.readouterr().err.strip().splitlines()[-1] == f"error: interrupted; the shards written so far into " \
                                                               f"{tmp_path / 'out'} were removed"


def test_rerun_into_a_folder_with_shards_needs_force_and_leaves_no_stale_shards(tmp_path, wiki_leads):
    inputs = write_inputs(tmp_path, wiki_leads)
    out = tmp_path / "out"
    assert run_fineweb("--input", *inputs, "--output", out, "--name", "w", "--val_tokens", 5000, "--shard_tokens",
                       8000, "--workers", 1).returncode == 0
    before = sorted(p.name for p in out.iterdir())
    refused = run_fineweb("--input", *inputs, "--output", out, "--name", "w", "--shard_tokens", 30000)
    assert refused.returncode == 1 and "pass --force" in refused.stderr
    assert sorted(p.name for p in out.iterdir()) == before
    forced = run_fineweb("--input", *inputs, "--output", out, "--name", "w", "--val_tokens", 5000, "--shard_tokens",
                         30000, "--workers", 1, "--force")
    assert forced.returncode == 0, forced.stderr
    train = sorted(out.glob("w_train_*.bin"))
    assert len(train) < len([n for n in before if n.startswith("w_train_") and n.endswith(".bin")])
    stream = np.concatenate([T.load_token_shard(p) for p in [out / "w_val_000000.bin", *train]])
    assert (stream == T.EOT_TOKEN).sum() == len(wiki_leads)  # every document once, none from the first run
    assert sorted(out.glob("*.bytes16")) == sorted(p.with_suffix(".bytes16") for p in [out / "w_val_000000.bin", *train])


def test_download_without_network_is_one_clear_line(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, str(ROOT / "data" / "cached_fineweb10B.py"), "1"],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: could not download fineweb_val_000000.bin")
    assert "kjj0/fineweb10B-gpt2" in lines[0] and "HF_ENDPOINT" in lines[0] and "data/fineweb.py" in lines[0]
