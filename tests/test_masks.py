"""Attention masks against masks computed directly, and the two attention paths against each other."""
import numpy as np
import pytest
import torch
from torch.nn.attention.flex_attention import flex_attention

import train_gpt as T
from helpers import needs_cuda


def random_tokens(rng, length, eot_rate):
    tokens = rng.integers(0, 50000, size=length)
    tokens[rng.random(length) < eot_rate] = T.EOT_TOKEN
    return torch.from_numpy(tokens)


def reference_mask(tokens: np.ndarray, block_size: int, window_blocks: int) -> np.ndarray:
    """Query i sees key j iff j <= i, no end-of-text in (j, i], and i, j lie less than window_blocks blocks apart."""
    n = len(tokens)
    allowed = np.zeros((n, n), dtype=bool)
    for i in range(n):
        j = i
        while j >= 0 and i // block_size - j // block_size < window_blocks:
            allowed[i, j] = True
            if tokens[j] == T.EOT_TOKEN:
                break
            j -= 1
    return allowed


def block_mask_as_dense(block_mask, docs: torch.Tensor, block_size: int) -> np.ndarray:
    """What the FlexAttention block mask lets through: full blocks whole, partial blocks where mask_mod allows."""
    n = len(docs)
    pos = torch.arange(n)
    token_level = block_mask.mask_mod(0, 0, pos[:, None], pos[None, :]).numpy()
    allowed = np.zeros((n, n), dtype=bool)
    num_blocks = n // block_size
    for kind_counts, kind_indices, full in ((block_mask.kv_num_blocks, block_mask.kv_indices, False),
                                           (block_mask.full_kv_num_blocks, block_mask.full_kv_indices, True)):
        for qb in range(num_blocks):
            for kb in kind_indices[0, 0, qb, :kind_counts[0, 0, qb]].tolist():
                rows, cols = slice(qb * block_size, (qb + 1) * block_size), slice(kb * block_size, (kb + 1) * block_size)
                assert not allowed[rows, cols].any(), "a key block is listed twice"
                allowed[rows, cols] = True if full else token_level[rows, cols]
    return allowed


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("block_size,num_blocks,window_blocks", [(16, 12, 1), (16, 12, 3), (8, 20, 7), (32, 6, 6)])
def test_block_mask_equals_direct_mask(seed, block_size, num_blocks, window_blocks):
    rng = np.random.default_rng(seed)
    tokens = random_tokens(rng, block_size * num_blocks, eot_rate=[0.0, 0.01, 0.05, 0.2][seed])
    docs = T.document_ids(tokens)
    expected = reference_mask(tokens.numpy(), block_size, window_blocks)
    block_mask = T.flex_block_mask(docs, block_size, torch.tensor(window_blocks))
    assert np.array_equal(block_mask_as_dense(block_mask, docs, block_size), expected)
    dense = T.dense_attention_mask(docs, block_size, torch.tensor(window_blocks)).numpy()
    assert np.array_equal(dense, expected)


def test_full_blocks_need_no_mask_evaluation():
    """Blocks of one document strictly below the diagonal are full blocks: mask_mod is not needed there."""
    tokens = torch.full((64,), 7)
    tokens[0] = T.EOT_TOKEN
    partial, full = T.block_structure(T.document_ids(tokens), 16, torch.tensor(4))
    assert torch.equal(full, torch.tril(torch.ones(4, 4, dtype=torch.bool), diagonal=-1))
    assert torch.equal(partial, torch.eye(4, dtype=torch.bool))


@pytest.mark.parametrize("window_blocks", [1, 2, 5])
def test_dense_attention_equals_flex_attention(window_blocks):
    torch.manual_seed(window_blocks)
    rng = np.random.default_rng(window_blocks)
    block_size, n = 16, 128
    docs = T.document_ids(random_tokens(rng, n, eot_rate=0.03))
    q, k, v = (torch.randn(1, 2, n, 32, dtype=torch.float64) for _ in range(3))
    window = torch.tensor(window_blocks)
    dense = T.DenseAttentionBackend(block_size)
    flex = T.FlexAttentionBackend(block_size)
    out_dense = dense.attend(q, k, v, dense.mask(docs, window), 0.12)
    out_flex = flex_attention(q, k, v, block_mask=flex.mask(docs, window), scale=0.12)
    torch.testing.assert_close(out_dense, out_flex, rtol=1e-10, atol=1e-10)
    # and both equal softmax attention written out by hand
    allowed = torch.from_numpy(reference_mask(np.where(docs.diff(prepend=docs[:1]) > 0, T.EOT_TOKEN, 0), block_size,
                                              window_blocks))
    scores = (q @ k.transpose(-1, -2) * 0.12).masked_fill(~allowed, float("-inf"))
    torch.testing.assert_close(out_dense, scores.softmax(-1) @ v, rtol=1e-10, atol=1e-10)


def test_schedule_values_keep_their_shape_on_the_device():
    """A window scalar that turned 1-d crashed FlexAttention's CUDA lowering (the CPU compiles it)."""
    cfg = T.Hyperparameters(num_iterations=400)
    window = T.step_window(200, cfg, torch.device("cpu"))
    assert window.shape == () and window.dtype == torch.int32 and window.item() == T.window_blocks(200, cfg)
    assert T.device_values((1.0, 0.5), torch.device("cpu")).shape == (2,)
    assert T.to_device(np.zeros((2, 3)), torch.float32, torch.device("cpu")).shape == (2, 3)


@needs_cuda
def test_compiled_flex_attention_with_the_step_window_on_cuda_is_dense_attention():
    """The trunk's masks and the byte stream's, through the schedule's device scalar, compiled as on a GPU run."""
    rng = np.random.default_rng(3)
    block_size, n = 128, 1024
    device = torch.device("cuda")
    docs = T.document_ids(random_tokens(rng, n, eot_rate=0.005)).to(device)
    window = T.step_window(120, T.Hyperparameters(num_iterations=400), device)  # 4 blocks of 128
    q, k, v = (torch.randn(1, 2, n, 64, device=device) for _ in range(3))
    flex, dense = T.FlexAttentionBackend(block_size), T.DenseAttentionBackend(block_size)
    attend = torch.compile(flex.attend, dynamic=False)
    for flex_mask, dense_mask in ((flex.mask(docs, window), dense.mask(docs, window)),
                                  (flex.byte_mask(docs[:64], 16, 3, True), dense.byte_mask(docs[:64], 16, 3, True))):
        got = attend(q, k, v, flex_mask, 0.12)
        want = dense.attend(q.double(), k.double(), v.double(), dense_mask, 0.12)
        torch.testing.assert_close(got.double(), want, rtol=2e-3, atol=2e-3)
