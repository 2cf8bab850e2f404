"""The front end's vocabulary table (once per token id per step) against the per-token front end it
replaces: the same loss and gradients, in one process and in two, and no token seeing later ones.

The vocabulary is cut to the first VOCAB token ids (the full table is 50,272 rows, seconds on this CPU);
their byte rows are the GPT-2 tokenizer's, and the last id stands in for the end-of-text token."""
import numpy as np
import pytest
import torch

import train_gpt as T
from conftest import ROOT
from data.gpt2_tokenizer import load_gpt2_encoding, token_byte_table
from helpers import cpu_runtime, randomized, rank0_result_over_gloo, scalar_adam

VOCAB = 700
EOT = VOCAB - 1
SEQ_LEN, MICRO_STEPS = 64, 2
WITHIN_TOKEN = ["--byte_self_attn=1", "--byte_window_tokens=1"]
FRONT_ENDS = {
    "cross": [],
    "replace_pool4": ["--mot_mix=replace", "--byte_pool=4"],
    "left_aligned": ["--byte_align=left"],
    "within_token": WITHIN_TOKEN,
    "two_layers_mlp_pool2": [*WITHIN_TOKEN, "--byte_layers=2", "--byte_mlp=1", "--byte_pool=2"],
    "with_hashed_features": [*WITHIN_TOKEN, "--byte_ngram_rows=101", "--bigram_hash_rows=97"],
}


@pytest.fixture
def small_vocabulary(monkeypatch):
    monkeypatch.setattr(T, "EOT_TOKEN", EOT)


def setup(flags: list[str]):
    """A randomized model over the cut vocabulary, its byte table, and 2 * MICRO_STEPS sequences of random
    tokens (a document every ~16 tokens) with their byte rows: one optimizer step of two ranks."""
    cfg = T.parse_args(["--smoke", "--use_mot=1", "--mot_vocab_table=1", f"--vocab_size={VOCAB}",
                        f"--seq_len={SEQ_LEN}", *flags])
    model = randomized(T.build_model(cfg, cpu_runtime())).double()  # float64 up to the float32 logits
    byte_table = token_byte_table(load_gpt2_encoding(), cfg.bytes_per_token, cfg.byte_align)[:VOCAB]
    g = torch.Generator().manual_seed(7)
    sequences = []
    for _ in range(2 * MICRO_STEPS):
        tokens = torch.randint(0, VOCAB - 1, (SEQ_LEN + 1,), generator=g)
        tokens[torch.rand(SEQ_LEN + 1, generator=g) < 1 / 16] = EOT
        sequences.append((tokens[:-1], tokens[1:], torch.from_numpy(byte_table[tokens[:-1].numpy()])))
    return cfg, model, byte_table, sequences


def step_gradients(model, batches, byte_table, runtime, use_table: bool, recompute: bool = False):
    """One step's mean loss over the ranks, every parameter's reduced gradient, and the table if used."""
    model.zero_grad()
    vocab_table = table = None
    if use_table:
        vocab_table = T.VocabTable(model, byte_table, runtime.device, runtime.rank, runtime.world_size,
                                   recompute=recompute)
        table = vocab_table.forward()
        if not T.uses_bytes(model.cfg):  # the loader then reads no byte rows
            batches = [batch[:2] for batch in batches]
    loss = T.accumulate_gradients(model, iter(batches), torch.tensor(2), len(batches), table)[0]
    gathered = table.detach().clone() if use_table else None
    if use_table:
        vocab_table.backward()
    stats = loss[None] / (len(batches) * runtime.world_size)
    T.reduce_gradients(model, scalar_adam(model, runtime), stats, len(batches) * runtime.world_size, runtime)
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    return stats.item(), grads, gathered


def assert_same_step(one, other):
    loss, grads, _ = one
    other_loss, other_grads, _ = other
    assert other_loss == pytest.approx(loss, rel=1e-12)
    assert set(other_grads) == set(grads)
    for name, grad in grads.items():
        assert (other_grads[name] - grad).norm() <= 1e-5 * grad.norm(), name


@pytest.mark.parametrize("front_end", FRONT_ENDS)
def test_table_path_gives_the_per_token_loss_and_gradients(small_vocabulary, front_end):
    cfg, model, byte_table, sequences = setup(FRONT_ENDS[front_end])
    assert T.uses_vocab_table(cfg)
    batches = sequences[:MICRO_STEPS]
    per_token = step_gradients(model, batches, byte_table, cpu_runtime(), use_table=False)
    through_table = step_gradients(model, batches, byte_table, cpu_runtime(), use_table=True)
    assert_same_step(per_token, through_table)
    front_end_grads = [name for name in per_token[1] if name.startswith("byte_front_end.")]
    assert len(front_end_grads) >= 5
    for name in front_end_grads:  # the front end really trains through the table
        assert through_table[1][name].norm() > 0, name
    # padding rows (ids past the vocabulary) hold pads only
    vocab_table = T.VocabTable(model, byte_table, torch.device("cpu"), 0, 1)
    assert len(vocab_table.byte_rows) % 16 == 0 and len(vocab_table.byte_rows) >= VOCAB
    assert (vocab_table.byte_rows[VOCAB:] == T.PAD_BYTE).all()
    assert torch.equal(vocab_table.byte_rows[:VOCAB], torch.tensor(byte_table))


def test_validation_reads_the_table_rows_the_per_token_path_computes(small_vocabulary):
    cfg, model, byte_table, batches = setup(FRONT_ENDS["two_layers_mlp_pool2"])
    table = T.VocabTable(model, byte_table, torch.device("cpu"), 0, 1).evaluate()
    assert not table.requires_grad
    with torch.no_grad():
        for tokens, _, rows in batches:
            per_token = model.embed_input(tokens, rows)
            torch.testing.assert_close(model.embed_input(tokens, None, table), per_token, rtol=1e-5, atol=1e-6)


def test_within_token_attention_equals_the_window_of_one_token_mask(small_vocabulary):
    """Attention over each token's own slots (the tokens as a batch) against the byte stream's dense mask
    with a window of one token, built from the same mask function as FlexAttention's."""
    cfg, model, byte_table, batches = setup(WITHIN_TOKEN)
    attn = model.byte_front_end.byte_layers[0].mixer
    tokens = batches[0][0][:24]
    docs = T.document_ids(tokens)
    x = torch.randn(24, 16, cfg.byte_dim, generator=torch.Generator().manual_seed(3))
    mask = T.DenseAttentionBackend.byte_mask(docs, 16, 1, True)
    torch.testing.assert_close(attn(x, None), attn(x, mask), rtol=1e-5, atol=1e-5)
    changed = x.clone()
    changed[5, 9:] += 1.0  # later bytes of token 5: no other token and no earlier byte moves
    out, base = attn(changed, None), attn(x, None)
    torch.testing.assert_close(out[torch.arange(24) != 5], base[torch.arange(24) != 5], rtol=0, atol=0)
    torch.testing.assert_close(out[5, :9], base[5, :9], rtol=0, atol=0)


@pytest.mark.parametrize("front_end", ["cross", "two_layers_mlp_pool2"])
def test_no_token_sees_later_tokens_through_the_table(small_vocabulary, front_end):
    cfg, model, byte_table, batches = setup(FRONT_ENDS[front_end])
    table = T.VocabTable(model, byte_table, torch.device("cpu"), 0, 1).evaluate()
    tokens = batches[0][0]
    window = torch.tensor(2)
    with torch.no_grad():
        base = model.logits(tokens, window, None, table)
        for t in (0, 30, 50):
            changed = tokens.clone()
            changed[t + 1:] = (changed[t + 1:] + 1) % (VOCAB - 1)
            logits = model.logits(changed, window, None, table)
            torch.testing.assert_close(logits[0, :t + 1], base[0, :t + 1], rtol=0, atol=0)
            assert not torch.allclose(logits[0, t + 1:], base[0, t + 1:])


def two_rank_step(rank: int, world_size: int):
    T.EOT_TOKEN = EOT  # a spawned process
    cfg, model, byte_table, sequences = setup(FRONT_ENDS["two_layers_mlp_pool2"])
    batches = sequences[rank * MICRO_STEPS:(rank + 1) * MICRO_STEPS]
    return step_gradients(model, batches, byte_table, cpu_runtime(rank, world_size), use_table=True, recompute=True)


def test_two_processes_share_the_table_and_take_the_same_step(small_vocabulary, tmp_path):
    """Each rank computes half of the rows and gathers the rest; the table's gradient, summed over the
    ranks, flows back through each rank's own rows: the same step as one process over both halves."""
    two = rank0_result_over_gloo(two_rank_step, 2, tmp_path)
    cfg, model, byte_table, sequences = setup(FRONT_ENDS["two_layers_mlp_pool2"])
    one = step_gradients(model, sequences, byte_table, cpu_runtime(), use_table=True)
    assert_same_step(one, two)
    torch.testing.assert_close(two[2][:VOCAB], one[2][:VOCAB], rtol=1e-9, atol=1e-9)
    assert T.VocabTable(model, byte_table, torch.device("cpu"), 1, 2).first == len(two[2]) // 2


def saved_by_forward(vocab_table) -> int:
    """How many tensors the table's forward keeps for the backward."""
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        vocab_table.forward()
    return len(saved)


@pytest.mark.parametrize("front_end", ["cross", "two_layers_mlp_pool2"])
def test_a_recomputed_table_keeps_no_activations_and_takes_the_same_step(small_vocabulary, front_end):
    """Serving several micro-steps, the table's rows are computed without the front end's activations and
    again with them for the step's backward: nothing is kept between, and the step is the same bit for bit."""
    cfg, model, byte_table, sequences = setup(FRONT_ENDS[front_end])
    kept = step_gradients(model, sequences[:MICRO_STEPS], byte_table, cpu_runtime(), use_table=True)
    recomputed = step_gradients(model, sequences[:MICRO_STEPS], byte_table, cpu_runtime(), use_table=True,
                                recompute=True)
    assert recomputed[0] == kept[0] and torch.equal(recomputed[2], kept[2])
    assert set(recomputed[1]) == set(kept[1])
    for name, grad in kept[1].items():
        assert torch.equal(recomputed[1][name], grad), name
    build = lambda seqs: T.build_vocab_table(  # noqa: E731
        model, T.parse_args(["--smoke", "--use_mot=1", "--mot_vocab_table=1", f"--global_batch_seqs={seqs}",
                           *FRONT_ENDS[front_end]]),
        cpu_runtime(), byte_table)
    assert not build(1).recompute and build(4).recompute  # one micro-step per step holds nothing over
    assert saved_by_forward(build(1)) > 10 and saved_by_forward(build(4)) == 0


def test_the_table_is_chosen_where_it_computes_the_same_function():
    chosen = lambda *flags: T.uses_vocab_table(T.parse_args(["--smoke", "--mot_vocab_table=1", *flags]))  # noqa: E731
    assert chosen("--use_mot=1") and chosen("--use_mot=1", *WITHIN_TOKEN, "--byte_layers=3")
    assert not chosen("--use_mot=1", "--byte_self_attn=1", "--byte_window_tokens=2")  # context from other tokens
    assert not chosen() and not chosen("--byte_ngram_rows=101")
    assert not T.uses_vocab_table(T.parse_args(["--smoke", "--use_mot=1", "--mot_vocab_table=0"]))
    reads_bytes = lambda *flags: T.uses_bytes(T.parse_args(["--smoke", "--mot_vocab_table=1", *flags]))  # noqa: E731
    assert not reads_bytes("--use_mot=1") and reads_bytes("--use_mot=1", "--byte_ngram_rows=101")
    assert reads_bytes("--use_mot=1", "--byte_self_attn=1")


def test_a_table_run_needs_no_byte_shards(tmp_path, capsys):
    """The whole run (training and validation) through the table, on token shards alone; the per-token
    path on the same files stops at the missing byte shard."""
    for path in (ROOT / "data" / "smoke").glob("smoke_*.bin"):
        (tmp_path / path.name).write_bytes(path.read_bytes())
    flags = ["--smoke", "--use_mot=1", f"--train_files={tmp_path}/smoke_train_*.bin",
             f"--val_files={tmp_path}/smoke_val_*.bin", f"--log_dir={tmp_path}", "--num_iterations=1",
             "--warmup_steps=0", "--val_loss_every=0", "--val_tokens=512"]
    assert T.main([*flags, "--mot_vocab_table=1"]) == 0
    assert np.isfinite(float(capsys.readouterr().out.split("final val_loss:")[1].split()[0]))
    assert T.main([*flags, "--mot_vocab_table=0"]) == 1
    assert "smoke_train_000001.bytes16" in capsys.readouterr().err
