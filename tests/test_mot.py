"""The Mixture-of-Tokenizers front end against dense references, on CPU."""
import numpy as np
import pytest
import torch

import train_gpt as T
from helpers import randomized

ALL_ON = ["--smoke", "--seq_len=64", "--val_seq_len=64", "--use_mot=1", "--byte_self_attn=1",
          "--byte_window_tokens=3", "--byte_doc_mask=1"]


def tiny_model(*overrides):
    """ALL_ON's model with overrides in place of its flags of the same names."""
    replaced = {flag.split("=")[0] for flag in overrides}
    cfg = T.parse_args([flag for flag in ALL_ON if flag.split("=")[0] not in replaced] + list(overrides))
    return cfg, randomized(T.build_model(cfg, T.select_runtime(cfg)))


def random_bytes(generator, shape):
    return torch.randint(0, 256, shape, generator=generator, dtype=torch.uint8)


@pytest.mark.parametrize("extra", [[], ["--byte_pool=4", "--mot_mix=replace"], ["--byte_doc_mask=0"],
                                   ["--bigram_hash_rows=97", "--byte_ngram_rows=101"],
                                   ["--bigram_hash_rows=97", "--bigram_placement=input"],
                                   ["--byte_mixer=ssm", "--byte_layers=2"], ["--byte_mixer=ssm", "--byte_doc_mask=0"]])
def test_no_token_sees_the_future(extra):
    cfg, model = tiny_model(*extra)
    g = torch.Generator().manual_seed(1)
    tokens = torch.randint(0, 50000, (64,), generator=g)
    tokens[[9, 33]] = T.EOT_TOKEN
    rows = random_bytes(g, (64, 16))
    window = torch.tensor(2)
    base = model.logits(tokens, window, rows)
    for t in (0, 20, 33, 50):
        tokens2, rows2 = tokens.clone(), rows.clone()
        tokens2[t + 1:] = torch.randint(0, 50000, (63 - t,), generator=g)
        rows2[t + 1:] = random_bytes(g, (63 - t, 16))
        logits = model.logits(tokens2, window, rows2)
        torch.testing.assert_close(logits[0, :t + 1], base[0, :t + 1], rtol=0, atol=0)
        assert not torch.allclose(logits[0, t + 1:], base[0, t + 1:])


@pytest.mark.parametrize("mixer", ["attention", "ssm"])
def test_bytes_of_one_document_do_not_reach_later_documents(mixer):
    cfg, model = tiny_model("--byte_window_tokens=40", f"--byte_mixer={mixer}")
    front = model.byte_front_end
    g = torch.Generator().manual_seed(2)
    tokens = torch.randint(0, 50000, (64,), generator=g)
    tokens[[0, 20, 41]] = T.EOT_TOKEN
    docs = T.document_ids(tokens)
    rows = random_bytes(g, (64, 16))
    base = front.byte_features(rows, docs)
    changed = rows.clone()
    changed[21:41] = random_bytes(g, (20, 16))  # the second document's bytes
    after = front.byte_features(changed, docs)
    torch.testing.assert_close(after[41:], base[41:], rtol=0, atol=0)  # the third document: untouched
    torch.testing.assert_close(after[:20], base[:20], rtol=0, atol=0)  # the first: earlier
    assert not torch.allclose(after[21:41], base[21:41])
    # without the document mask the window (40 tokens) or the scan carries them over
    cfg, model = tiny_model("--byte_window_tokens=40", "--byte_doc_mask=0", f"--byte_mixer={mixer}")
    front = model.byte_front_end
    assert not torch.allclose(front.byte_features(changed, docs)[41:], front.byte_features(rows, docs)[41:])


def reference_byte_mask(docs: np.ndarray, slots: int, window: int, doc_mask: bool) -> np.ndarray:
    n = len(docs) * slots
    allowed = np.zeros((n, n), dtype=bool)
    for q in range(n):
        for k in range(q + 1):
            near = q // slots - k // slots < window
            allowed[q, k] = near and (not doc_mask or docs[q // slots] == docs[k // slots])
    return allowed


def banded_mask_as_dense(block_mask, n: int) -> np.ndarray:
    """Token-level mask that the block lists let through, checking that the query-side lists (used by the
    backward pass) hold exactly the same block pairs as the key-side lists."""
    bs = block_mask.BLOCK_SIZE[0]
    pos = torch.arange(n)
    token_level = block_mask.mask_mod(0, 0, pos[:, None], pos[None, :]).numpy()
    num_blocks = -(-n // bs)  # a partial last block counts
    pairs_kv = {(qb, kb) for qb in range(num_blocks)
                for kb in block_mask.kv_indices[0, 0, qb, :block_mask.kv_num_blocks[0, 0, qb]].tolist()}
    pairs_q = {(qb, kb) for kb in range(num_blocks)
               for qb in block_mask.q_indices[0, 0, kb, :block_mask.q_num_blocks[0, 0, kb]].tolist()}
    assert pairs_kv == pairs_q
    allowed = np.zeros((n, n), dtype=bool)
    for qb, kb in pairs_kv:
        allowed[qb * bs:(qb + 1) * bs, kb * bs:(kb + 1) * bs] = token_level[qb * bs:(qb + 1) * bs, kb * bs:(kb + 1) * bs]
    return allowed


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("slots,window,doc_mask", [(16, 1, True), (16, 4, True), (16, 16, False), (4, 64, True),
                                                  (16, 9, True)])
def test_banded_byte_mask_equals_direct_mask(monkeypatch, seed, slots, window, doc_mask):
    monkeypatch.setattr(T, "BYTE_BLOCK_SIZE", 32)  # small blocks: many of them in a short stream
    rng = np.random.default_rng(seed)
    tokens = torch.from_numpy(rng.integers(0, 50000, 96))
    tokens[rng.random(96) < [0.0, 0.03, 0.2][seed]] = T.EOT_TOKEN
    docs = T.document_ids(tokens)
    expected = reference_byte_mask(docs.numpy(), slots, window, doc_mask)
    block_mask = T.FlexAttentionBackend.byte_mask(docs, slots, window, doc_mask)
    assert np.array_equal(banded_mask_as_dense(block_mask, len(expected)), expected)
    dense = T.DenseAttentionBackend.byte_mask(docs, slots, window, doc_mask).numpy()
    assert np.array_equal(dense, expected)


@pytest.mark.parametrize("tokens,slots", [(36, 4), (41, 16), (8, 16)])
def test_banded_byte_mask_covers_a_partial_last_block(tokens, slots):
    """Byte streams of 144, 656 and 128 positions: a partial last block of 128 in the first two."""
    rng = np.random.default_rng(tokens)
    ids = torch.from_numpy(rng.integers(0, 50000, tokens))
    ids[[0, tokens // 3]] = T.EOT_TOKEN
    docs = T.document_ids(ids)
    expected = reference_byte_mask(docs.numpy(), slots, 3, True)
    block_mask = T.FlexAttentionBackend.byte_mask(docs, slots, 3, True)
    assert np.array_equal(banded_mask_as_dense(block_mask, tokens * slots), expected)


def test_banded_mask_does_not_grow_with_documents():
    docs_a = T.document_ids(torch.arange(4096) % 50000)
    docs_b = T.document_ids(torch.where(torch.arange(4096) % 37 == 0, T.EOT_TOKEN, 5))
    a = T.FlexAttentionBackend.byte_mask(docs_a, 16, 16, True)
    b = T.FlexAttentionBackend.byte_mask(docs_b, 16, 16, True)
    assert torch.equal(a.kv_indices, b.kv_indices) and a.kv_indices.shape[-1] == (16 * 16 - 1) // 128 + 2


def test_cross_attention_equals_masked_dense_attention():
    cfg, model = tiny_model("--byte_heads=2")
    cross = model.byte_front_end.token_byte_cross_attn
    g = torch.Generator().manual_seed(3)
    T_, S = 10, 16
    token_x = torch.randn(T_, cfg.model_dim, generator=g)
    byte_x = torch.randn(T_, S, cfg.byte_dim, generator=g)
    out = cross(token_x, *cross.keys_values(byte_x))
    # reference: every token against the whole byte stream, masked to its own slots
    norm = torch.nn.functional.rms_norm
    q = norm((norm(token_x, (cfg.model_dim,)) @ cross.q_w.T).view(T_, 2, 64), (64,)).transpose(0, 1)
    kv = (norm(byte_x.reshape(T_ * S, -1), (cfg.byte_dim,)) @ cross.kv_w.flatten(0, 1).T).view(T_ * S, 2, 2, 64)
    k = norm(kv[:, 0], (64,)).transpose(0, 1)
    v = kv[:, 1].transpose(0, 1)
    own = torch.arange(T_)[:, None] == torch.arange(T_ * S)[None, :] // S
    scores = (q @ k.transpose(-1, -2) * cfg.attn_scale).masked_fill(~own, float("-inf"))
    reference = (scores.softmax(-1) @ v).transpose(0, 1).reshape(T_, -1) @ cross.c_proj.weight.T
    torch.testing.assert_close(out, reference, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_within_token_attention_equals_causal_sdpa(dtype):
    """Against PyTorch's causal attention in float64, with gradients; bfloat16 inputs keep a float32 softmax,
    so they land within bfloat16's rounding of the inputs and output."""
    g = torch.Generator().manual_seed(5)
    q, k, v, grad = (torch.randn(7, 2, 16, 64, generator=g, dtype=torch.float64) for _ in range(4))
    exact = [t.clone().requires_grad_() for t in (q, k, v)]
    reference = torch.nn.functional.scaled_dot_product_attention(*exact, is_causal=True, scale=0.12)
    reference.backward(grad)
    inputs = [t.to(dtype).requires_grad_() for t in (q, k, v)]
    out = T.within_token_attention(*inputs, 0.12)
    out.backward(grad.to(dtype))
    tolerance = dict(rtol=1e-12, atol=1e-12) if dtype == torch.float64 else dict(rtol=0.02, atol=0.02)
    for got, want in zip([out] + [t.grad for t in inputs], [reference] + [t.grad for t in exact]):
        assert got.dtype == dtype
        torch.testing.assert_close(got.double(), want, **tolerance)


def test_slot_tables_equal_per_byte_keys_and_values(monkeypatch):
    """Without self-attention or pooling, keys and values come from (slot, value) tables; they and their
    gradients must equal those computed byte by byte."""
    cfg, model = tiny_model("--byte_self_attn=0", "--byte_heads=2")
    front = model.byte_front_end
    g = torch.Generator().manual_seed(5)
    rows = random_bytes(g, (24, 16))
    docs = torch.zeros(24, dtype=torch.long)
    probe = [torch.randn(24, 16, 2, 64, generator=g) for _ in range(2)]

    def keys_values_and_grads(compute):
        model.zero_grad()
        k, v = compute()
        ((k * probe[0]).sum() + (v * probe[1]).sum()).backward()
        return k, v, front.byte_embed.weight.grad.clone(), front.byte_slot_embed.weight.grad.clone()

    with monkeypatch.context() as m:
        m.setattr(front, "byte_features", lambda *_: pytest.fail("the table path must not embed every byte"))
        tables = keys_values_and_grads(lambda: front.byte_keys_values(rows, docs))
    per_byte = keys_values_and_grads(
        lambda: front.token_byte_cross_attn.keys_values(front.byte_features(rows, docs)))
    for a, b in zip(tables, per_byte):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)  # float32, summed in another order
    assert per_byte[2].abs().sum() > 0


def test_byte_gradients_are_deterministic():
    """The same batch twice gives bit-identical gradients (a scatter-add over threads would not)."""
    cfg, model = tiny_model("--byte_self_attn=0", "--byte_heads=2", "--seq_len=2048")
    g = torch.Generator().manual_seed(6)
    tokens = torch.randint(0, 50000, (2049,), generator=g)
    rows = random_bytes(g, (2048, 16))
    rows[:, :9] = 0xFF  # mostly pads in the first slots, as in right-aligned shards
    grads = []
    for _ in range(3):
        model.zero_grad()
        model(tokens[:-1], tokens[1:], torch.tensor(4), rows).backward()
        grads.append([p.grad.clone() for p in model.byte_front_end.parameters()])
    for again in grads[1:]:
        assert all(torch.equal(a, b) for a, b in zip(grads[0], again))


@pytest.mark.parametrize("pool", [1, 2, 4, 16])
def test_byte_pool_sums_embedded_slots(pool):
    cfg, model = tiny_model(f"--byte_pool={pool}", "--byte_self_attn=0")
    front = model.byte_front_end
    g = torch.Generator().manual_seed(4)
    rows = random_bytes(g, (12, 16))
    features = front.byte_features(rows, torch.zeros(12, dtype=torch.long))
    assert features.shape == (12, 16 // pool, cfg.byte_dim)
    embedded = front.byte_embed.weight[rows.long()] + front.byte_slot_embed.weight  # slot i: position vector i
    for slot in range(16 // pool):
        torch.testing.assert_close(features[:, slot], embedded[:, slot * pool:(slot + 1) * pool].sum(1))


def test_mot_off_is_exactly_the_baseline():
    base_cfg = T.parse_args(["--smoke"])
    runtime = T.select_runtime(base_cfg)
    baseline = T.build_model(base_cfg, runtime)
    assert baseline.byte_front_end is None
    mot = T.build_model(T.parse_args(["--smoke", "--use_mot=1"]), runtime)
    assert set(baseline.state_dict()) < set(mot.state_dict())


def test_byte_parameters_go_to_adam_and_muon():
    cfg = T.parse_args([*ALL_ON, "--byte_layers=2", "--byte_mlp=1"])
    runtime = T.select_runtime(cfg)
    model = T.build_model(cfg, runtime)
    adam, muon = T.build_optimizers(model, cfg, runtime)
    front = model.byte_front_end
    in_muon = {id(p) for g in muon.param_groups for p in g["params"]}
    in_adam = {id(p) for g in adam.param_groups for p in g["params"]}
    assert len(front.byte_layers) == 2
    layer_matrices = [p for layer in front.byte_layers for p in (layer.mixer.qkv_w, layer.mixer.c_proj.weight,
                                                                  layer.mlp.c_fc.weight, layer.mlp.c_proj.weight)]
    for p in (*layer_matrices, front.token_byte_cross_attn.q_w, front.token_byte_cross_attn.kv_w,
              front.token_byte_cross_attn.c_proj.weight):
        assert id(p) in in_muon
    for p in (front.byte_embed.weight, front.byte_slot_embed.weight, front.mix_lambdas):
        assert id(p) in in_adam


def test_the_scans_matrices_go_to_muon_its_vectors_and_the_byte_heads_to_adam():
    cfg = T.parse_args([*ALL_ON, "--byte_mixer=ssm", "--byte_target_weight=0.25"])
    runtime = T.select_runtime(cfg)
    model = T.build_model(cfg, runtime)
    adam, muon = T.build_optimizers(model, cfg, runtime)
    scan = model.byte_front_end.byte_layers[0].mixer
    in_muon = {id(p) for g in muon.param_groups for p in g["params"]}
    assert {id(p) for p in (scan.xz_w, scan.bc_w, scan.dt_w, scan.c_proj.weight)} <= in_muon
    scalars, head = adam.param_groups[2]["params"], adam.param_groups[0]["params"]
    assert {id(p) for p in (scan.conv_taps, scan.dt_bias, scan.a_log, scan.d)} <= {id(p) for p in scalars}
    assert [id(p) for p in head] == [id(model.lm_head.weight), id(model.byte_target_head.weight)]
    assert not T.uses_vocab_table(cfg)  # the scan reads across tokens: per token


def test_byte_shards_that_disagree_with_their_tokens_are_an_error(tmp_path, capsys):
    smoke = T.Path(T.__file__).parent / "data" / "smoke"
    for path in smoke.glob("smoke_*"):
        (tmp_path / path.name).write_bytes(path.read_bytes())
    broken = tmp_path / "smoke_train_000001.bytes16"
    raw = bytearray(broken.read_bytes())
    raw[1024 + 16 * 5 + 15] ^= 0x01  # one byte of token 5
    broken.write_bytes(bytes(raw))
    code = T.main(["--smoke", "--use_mot=1", f"--train_files={tmp_path}/smoke_train_*.bin",
                   f"--val_files={tmp_path}/smoke_val_*.bin", f"--log_dir={tmp_path}"])
    assert code == 1
    assert f"{broken}: byte row 5 does not hold the bytes of token" in capsys.readouterr().err
    code = T.main(["--smoke", "--use_mot=1", "--byte_align=left", f"--log_dir={tmp_path}"])
    assert code == 1
    assert "16 bytes per token, right aligned; the run asks for 16, left aligned" in capsys.readouterr().err
