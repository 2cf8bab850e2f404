"""The output targets: the prefix table against a trie over the vocabulary, the targets of a sequence
against a plain-Python reading of their definition, the schedule, and the weighted loss and its gradient
(the FP8 head's ops and the plain path) against a float64 reference written from the definition."""
import dataclasses

import numpy as np
import pytest
import torch
from torch._dynamo.testing import CompileCounter

import train_gpt as T
from helpers import CAP, SCALES, needs_cuda


@pytest.fixture(scope="module")
def spellings(encoding):
    from data.gpt2_tokenizer import token_bytes
    return token_bytes(encoding)[:T.EOT_TOKEN]


@pytest.fixture(scope="module")
def table():
    return T.prefix_table()


def test_prefix_table_is_the_longest_proper_prefix_token_of_every_id(spellings, table):
    trie = {}  # byte -> (child trie, token id ending here or None)
    for i, spelling in enumerate(spellings):
        node = trie
        for k, byte in enumerate(spelling):
            child, end = node.get(byte, ({}, None))
            node[byte] = (child, i if k == len(spelling) - 1 else end)
            node = child
    want = []
    for spelling in spellings:  # the last token met walking the trie before the spelling's last byte
        node, found = trie, -1
        for byte in spelling[:-1]:
            node, end = node[byte]
            found = end if end is not None else found
        want.append(found)
    assert table.dtype == np.int64 and table.shape == (50257,)
    assert table[:T.EOT_TOKEN].tolist() == want and table[T.EOT_TOKEN] == -1
    assert (table < 0).sum() == 257  # the 256 single bytes and end-of-text
    ids = {s: i for i, s in enumerate(spellings)}
    for word, prefix in ((b" singing", b" sing"), (b" Wikipedia", b" Wiki"), (b" understanding", b" understand")):
        assert table[ids[word]] == ids[prefix]


def test_prefix_chains_follow_the_table_down_to_the_first_byte(spellings, table):
    chains = T.prefix_chains(table, 21, 50304)
    assert chains.shape == (50304, 21) and (chains[50256:] == -1).all()
    for i in (0, 262, 4923, 17000, 33333, 50255):
        chain = [t for t in chains[i] if t >= 0]
        expected, t = [], table[i]
        while t >= 0:
            expected.append(t)
            t = table[t]
        assert chain == expected and (chains[i, len(chain):] == -1).all()
    ends = [chains[i][chains[i] >= 0][-1] for i in range(T.EOT_TOKEN) if table[i] >= 0]
    assert all(len(spellings[t]) == 1 for t in ends)  # depth 21 reaches every token's first byte
    two = T.prefix_chains(table, 2, 50257)
    assert (two[:, 0] == table).all() and (two[:, 1] == np.where(table >= 0, table[table], -1)).all()


def reference_targets(next_tokens: list[int], ahead: int, chains: np.ndarray | None) -> list[list[int]]:
    rows = []
    for t, token in enumerate(next_tokens):
        row = [token]
        for k in range(1, ahead + 1):
            later = t + k < len(next_tokens) and T.EOT_TOKEN not in next_tokens[t:t + k]
            row.append(next_tokens[t + k] if later else -1)
        rows.append(row + ([] if chains is None else chains[token].tolist()))
    return rows


def test_training_targets_stop_at_the_sequence_end_and_at_documents(table):
    g = torch.Generator().manual_seed(3)
    next_tokens = torch.randint(0, T.EOT_TOKEN, (40,), generator=g)
    next_tokens[[4, 5, 20, 38]] = T.EOT_TOKEN  # two in a row, one alone, one next to the end
    chains = T.prefix_chains(table, 3, 50257)
    for ahead, with_chains in ((0, False), (1, False), (3, True)):
        got = T.training_targets(next_tokens, ahead, torch.from_numpy(chains) if with_chains else None)
        want = reference_targets(next_tokens.tolist(), ahead, chains if with_chains else None)
        assert got.tolist() == want
    assert got[3].tolist()[:4] == [next_tokens[3].item(), T.EOT_TOKEN, -1, -1]  # the end-of-text is a target


def test_target_weights_follow_the_records_schedule():
    cfg = dataclasses.replace(T.Hyperparameters(), num_iterations=600, mtp_weights="0.5,0.25", prefix_weight=0.25,
                              prefix_depth=2)
    expected = {0: (1, 0.5, 0.25, 0.25, 0.125), 100: (1, 0.5, 0.125, 0.25, 0.125), 200: (1, 0.5, 0, 0.25, 0.125),
                300: (1, 0.25, 0, 0.125, 0.0625), 400: (1, 0, 0, 0, 0), 599: (1, 0, 0, 0, 0)}
    for step, weights in expected.items():
        assert T.target_weights(step, cfg) == pytest.approx(weights, abs=1e-12), step
    assert T.target_weights(0, T.Hyperparameters()) == (1.0,)
    assert T.target_weights(0, dataclasses.replace(cfg, mtp_weights="0.4")) == pytest.approx((1, 0.4, 0.25, 0.125))
    assert T.target_weights(200, dataclasses.replace(cfg, mtp_weights="0.4"))[1] == pytest.approx(0.2)
    kept = dataclasses.replace(cfg, prefix_weight=0.5, byte_target_weight=0.3, prefix_decay=False)
    for step in (0, 300, 599):  # multi-token prediction decays as before; the prefix tokens and byte targets stay
        assert T.target_weights(step, kept) == pytest.approx(expected[step][:3] + (0.5, 0.25, 0.3), abs=1e-12), step


def random_problem(rows: int, cols: int, targets_per_row: int, seed: int):
    """bfloat16 logits, (rows, K) targets with absent (-1) and repeated entries, and their row weights."""
    g = torch.Generator().manual_seed(seed)
    logits = (torch.randn(rows, cols, generator=g) * 3.4).bfloat16()
    targets = torch.randint(0, cols, (rows, targets_per_row), generator=g)
    targets[torch.rand(rows, targets_per_row, generator=g) < 0.2] = -1
    targets[:, 0] = torch.randint(0, cols, (rows,), generator=g)  # the next token is always there
    if targets_per_row > 2:
        targets[::7, 2] = targets[::7, 0]  # a further target on the next token's column
    weights = torch.tensor([1.0, 0.5, 0.25, 0.3, 0.15][:targets_per_row])
    return logits, targets, weights * (targets >= 0)


def reference_loss_and_grad(logits: torch.Tensor, targets: torch.Tensor, row_weights: torch.Tensor):
    """The definition in float64: mean over rows of sum_j w_j (log-sum-exp - capped logit of target j), and
    its gradient with respect to the (uncapped) logits, by autograd."""
    z = logits.double().requires_grad_()
    capped = 2 * CAP * torch.sigmoid(z * (2 / CAP))
    lse = torch.logsumexp(capped, dim=1)
    loss = sum((row_weights[r, j].item() * (lse[r] - capped[r, targets[r, j]])
                for r in range(len(targets)) for j in range(targets.size(1)) if targets[r, j] >= 0),
               torch.zeros((), dtype=torch.float64)) / len(targets)
    loss.backward()
    return loss.detach(), z.grad


def e5m2_codes_of(grad: torch.Tensor) -> torch.Tensor:
    """A float64 logits' gradient in the record's rounding (bfloat16, scaled, e5m2), as integer codes."""
    return (grad.bfloat16().float() * SCALES[2]).to(torch.float8_e5m2).view(torch.uint8).int()


def test_weighted_loss_and_gradient_match_the_definition():
    logits, targets, row_weights = random_problem(48, 300, 5, seed=4)
    want_loss, want_grad = reference_loss_and_grad(logits, targets, row_weights)
    log_sum_exp, target_logits = T.logit_stats(logits, targets, CAP)
    loss = ((log_sum_exp[:, None] - target_logits) * row_weights).sum(dim=1).mean()  # as fp8_head_loss
    torch.testing.assert_close(loss.double(), want_loss, rtol=1e-6, atol=0)
    grad, grad_t = T.logit_grad_f8(torch.tensor(1.0), logits, log_sum_exp, targets, row_weights, CAP, SCALES[2])
    codes, want_codes = grad.view(torch.uint8).int(), e5m2_codes_of(want_grad)
    assert (want_codes != 0).float().mean() > 0.9
    assert (codes != want_codes).float().mean() < 2e-3 and (codes - want_codes).abs().max() <= 1
    assert torch.equal(grad_t.view(torch.uint8), grad.T.contiguous().view(torch.uint8))
    # the plain path (CPU runs, GPUs without FP8) in float64: the same function
    z = logits.double().requires_grad_()
    plain, next_token = T.weighted_cross_entropy(2 * CAP * torch.sigmoid(z * (2 / CAP)), targets,
                                                 row_weights.double())
    plain.backward()
    capped = 2 * CAP * torch.sigmoid(logits.double() * (2 / CAP))
    want_next = (capped.logsumexp(dim=1) - capped[torch.arange(len(capped)), targets[:, 0]]).mean()
    torch.testing.assert_close(next_token, want_next, rtol=1e-12, atol=0)  # the logged term, weight 1, column 0
    torch.testing.assert_close(plain.detach(), want_loss, rtol=1e-12, atol=0)
    torch.testing.assert_close(z.grad, want_grad, rtol=1e-10, atol=1e-15)


@needs_cuda
@pytest.mark.parametrize("rows, cols, targets_per_row", [(1024, 50304, 1), (1000, 50257, 5)])
def test_head_kernels_with_several_targets_are_the_ops_pytorch_code(rows, cols, targets_per_row):
    logits, targets, row_weights = random_problem(rows, cols, targets_per_row, seed=5)
    grad_loss = torch.tensor(1.0)
    want_stats = T.logit_stats(logits, targets, CAP)
    want, _ = T.logit_grad_f8(grad_loss, logits, want_stats[0], targets, row_weights, CAP, SCALES[2])
    cuda = [t.cuda() for t in (grad_loss, logits, targets, row_weights)]
    stats = T.logit_stats(cuda[1], cuda[2], CAP)
    for got, expected in zip(stats, want_stats):
        torch.testing.assert_close(got.cpu(), expected, rtol=2e-6, atol=0)
    grad, grad_t = T.logit_grad_f8(cuda[0], cuda[1], want_stats[0].cuda(), cuda[2], cuda[3], CAP, SCALES[2])
    codes, want_codes = grad.cpu().view(torch.uint8).int(), want.view(torch.uint8).int()
    assert (want.float() != 0).float().mean() > 0.75
    assert (codes != want_codes).float().mean() < 1e-4 and (codes - want_codes).abs().max() <= 1
    present = targets >= 0
    rows_index = torch.arange(rows)[:, None].expand_as(targets)
    assert torch.equal(codes[rows_index[present], targets[present]], want_codes[rows_index[present], targets[present]])
    assert torch.equal(grad_t.cpu().view(torch.uint8), grad.cpu().T.contiguous().view(torch.uint8))


@pytest.fixture(scope="module")
def smoke_batch():
    cfg = T.parse_args(["--smoke", "--seq_len=64"])
    tokens = torch.from_numpy(T.load_token_shard(T.HERE / "data/smoke/smoke_train_000001.bin")[:65].astype(np.int64))
    tokens[[10, 11, 40]] = T.EOT_TOKEN
    return cfg, tokens[:-1].int(), tokens[1:]


def loss_and_grads(cfg, inputs, targets, weights):
    model = T.build_model(cfg, T.select_runtime(cfg))
    with torch.no_grad():  # the zero-initialized head would make every target's logit the same
        model.lm_head.weight.normal_(0, 0.5)
    loss = model(inputs, targets, torch.tensor(2), target_weights=weights)
    loss.backward()
    return loss.detach(), [p.grad for p in model.parameters()]


def test_targets_whose_weights_are_off_change_nothing(smoke_batch):
    cfg, inputs, targets = smoke_batch
    plain = loss_and_grads(cfg, inputs, targets, None)
    for extra in ({}, dict(mtp_weights="0.5,0.25", prefix_weight=0.25, prefix_depth=3)):
        with_targets = dataclasses.replace(cfg, **extra)
        weights = torch.tensor(T.target_weights(cfg.num_iterations - 1, with_targets))  # every extra one decayed
        loss, grads = loss_and_grads(with_targets, inputs, targets, weights)
        assert torch.equal(loss, plain[0]) and all(torch.equal(a, b) for a, b in zip(grads, plain[1]))
    on = dataclasses.replace(cfg, mtp_weights="0.5,0.25", prefix_weight=0.25, prefix_depth=3)
    loss, _ = loss_and_grads(on, inputs, targets, torch.tensor(T.target_weights(0, on)))
    assert loss > plain[0] * 1.5  # at step 0 they add to the loss


def test_changing_weights_recompile_nothing(smoke_batch):
    cfg, inputs, targets = smoke_batch
    cfg = dataclasses.replace(cfg, mtp_weights="0.5,0.25", prefix_weight=0.25)
    model = T.build_model(cfg, T.select_runtime(cfg))
    counter = CompileCounter()
    loss = torch.compile(model.trunk_loss, backend=counter, dynamic=False)
    embedding = model.embed_input(inputs).detach()
    losses = []
    for step in (0, 10, 20, 39):
        weights = T.device_values(T.target_weights(step, cfg), torch.device("cpu"))
        losses.append(loss(embedding, inputs, targets, torch.tensor(2), weights)[0].item())
    assert counter.frame_count == 1 and len(set(losses)) == 4
    assert T.device_values(T.target_weights(39, cfg), torch.device("cpu")) is weights  # made once


def test_fp8_ops_with_zero_extra_weights_are_the_next_token_ops_bit_for_bit():
    logits, targets, row_weights = random_problem(64, 500, 5, seed=6)
    zero_extra = row_weights * torch.tensor([1.0, 0, 0, 0, 0])
    results = []
    for t, w in ((targets[:, :1], row_weights[:, :1]), (targets, zero_extra)):
        log_sum_exp, target_logits = T.logit_stats(logits, t, CAP)
        loss = ((log_sum_exp[:, None] - target_logits) * w).sum(dim=1).mean()
        grad, _ = T.logit_grad_f8(torch.tensor(1.0), logits, log_sum_exp, t, w, CAP, SCALES[2])
        results.append((loss, grad.view(torch.uint8)))
    assert torch.equal(results[0][0], results[1][0]) and torch.equal(results[0][1], results[1][1])


def test_the_fp8_paths_compiled_targets_are_the_eager_ones(table):
    """GPT.fp8_loss builds its targets with a graph of their own (inductor; on CUDA in training)."""
    cfg = T.Hyperparameters(mtp_weights="0.5,0.25", prefix_weight=0.25, prefix_depth=2)
    next_tokens = torch.randint(0, T.EOT_TOKEN, (96,), generator=torch.Generator().manual_seed(7))
    next_tokens[[3, 4, 50, 95]] = T.EOT_TOKEN
    chains = torch.from_numpy(T.prefix_chains(table, 2, 50257))
    for step in (0, 250):
        weights = T.device_values(T.target_weights(step, cfg), torch.device("cpu"))
        compiled = T.lazy_compile(T.weighted_targets)(next_tokens, weights, 2, chains)
        for got, want in zip(compiled, T.weighted_targets(next_tokens, weights, 2, chains)):
            assert torch.equal(got, want)


def test_the_longest_prefix_chain_is_the_depth_limit(table):
    chains = T.prefix_chains(table, T.PREFIX_CHAIN_MAX + 1, 50257)
    assert (chains[:, T.PREFIX_CHAIN_MAX - 1] >= 0).any() and (chains[:, T.PREFIX_CHAIN_MAX] == -1).all()


def test_frequent_prefix_choice_is_the_most_counted_prefix_token(spellings, table):
    counts = np.random.default_rng(0).integers(0, 4, 50257)  # small counts: many ties, broken by length
    ids = {s: i for i, s in enumerate(spellings)}
    frequent = T.prefix_table(counts)
    for i in list(range(0, 50256, 97)) + [ids[b" singing"], ids[b" understanding"]]:
        candidates = [ids[spellings[i][:n]] for n in range(1, len(spellings[i])) if spellings[i][:n] in ids]
        if not candidates:
            assert frequent[i] == -1
            continue
        best = max(counts[c] for c in candidates)
        assert frequent[i] == max((c for c in candidates if counts[c] == best), key=lambda c: len(spellings[c]))
    assert (T.prefix_table(np.zeros(50257, dtype=np.int64)) == table).all()  # no counts: the longest


def test_token_counts_of_the_training_shards(tmp_path):
    from helpers import write_raw_token_shard
    write_raw_token_shard(tmp_path / "x_train_000001.bin", [5, 5, 50256, 7])
    write_raw_token_shard(tmp_path / "x_train_000002.bin", [7, 5])
    counts = T.training_token_counts(f"{tmp_path}/x_train_*.bin", 50257)
    assert counts.shape == (50257,) and counts.sum() == 6
    assert (counts[5], counts[7], counts[50256]) == (3, 2, 1)


def test_byte_target_labels_are_each_tokens_first_bytes(spellings):
    labels = T.byte_target_labels(4, 50304)
    assert labels.shape == (50304, 4) and labels.dtype == np.int64
    for i in list(range(0, 50256, 61)) + [50255]:
        first = list(spellings[i][:4])
        assert labels[i].tolist() == first + [T.BYTE_ENDED] * (4 - len(first)), i
    assert (labels[T.EOT_TOKEN:] == T.BYTE_END_OF_TEXT).all()  # end-of-text, and ids no data holds


def test_byte_target_loss_and_gradient_are_the_definitions(spellings):
    rng = torch.Generator().manual_seed(3)
    features = torch.randn(12, 16, dtype=torch.float64, generator=rng, requires_grad=True)
    weight = torch.randn(3 * T.BYTE_TARGET_CLASSES, 16, dtype=torch.float64, generator=rng, requires_grad=True)
    table = torch.from_numpy(T.byte_target_labels(3, 50257))
    next_tokens = torch.tensor([0, 262, 50256, 4923, 995, 50256, 17000, 11, 33333, 50255, 1, 13])
    loss = T.byte_target_loss(features, weight, table, next_tokens, torch.tensor(0.25, dtype=torch.float64))
    loss.backward()
    want = 0.0
    for t, token in enumerate(next_tokens.tolist()):  # the sum over heads of the mean over positions
        raw = list(spellings[token][:3]) if token != T.EOT_TOKEN else []
        for head in range(3):
            label = T.BYTE_END_OF_TEXT if token == T.EOT_TOKEN else (raw[head] if head < len(raw) else T.BYTE_ENDED)
            logits = weight[head * T.BYTE_TARGET_CLASSES:(head + 1) * T.BYTE_TARGET_CLASSES] @ features[t]
            want = want + 0.25 * (logits.logsumexp(0) - logits[label]) / len(next_tokens)
    want_grads = torch.autograd.grad(want, (features, weight))
    torch.testing.assert_close(loss, want, rtol=1e-12, atol=0)
    torch.testing.assert_close(features.grad, want_grads[0], rtol=1e-10, atol=1e-14)
    torch.testing.assert_close(weight.grad, want_grads[1], rtol=1e-10, atol=1e-14)


def test_byte_targets_at_zero_weight_are_the_plain_loss_bit_for_bit(smoke_batch):
    cfg, inputs, targets = smoke_batch
    plain = loss_and_grads(cfg, inputs, targets, None)
    on = dataclasses.replace(cfg, byte_target_weight=0.25, byte_target_count=2)
    decayed = torch.tensor(T.target_weights(cfg.num_iterations - 1, on))
    assert decayed.tolist() == [1.0, 0.0]
    loss, grads = loss_and_grads(on, inputs, targets, decayed)
    assert torch.equal(loss, plain[0]) and all(torch.equal(a, b) for a, b in zip(grads, plain[1]))
    model = T.build_model(on, T.select_runtime(on))
    with torch.no_grad():
        model.byte_target_head.weight.normal_(0, 0.5)
    losses = [model.losses(inputs, targets, torch.tensor(2), target_weights=torch.tensor(T.target_weights(s, on)))
              for s in (0, cfg.num_iterations - 1)]
    assert losses[0][0] > losses[0][1] * 1.1 and torch.equal(losses[0][1], losses[1][1])  # the logged next-token term
    assert torch.equal(losses[1][0], losses[1][1])
