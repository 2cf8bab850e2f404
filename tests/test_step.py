"""The optimizer step: gradient accumulation with the FP8 head, the batched Muon, and the step's results."""
import pytest
import torch
import torch.nn.functional as F

import train_gpt as T
from helpers import CAP, SCALES, cpu_runtime


E4M3, E5M2 = torch.float8_e4m3fn, torch.float8_e5m2
FEATURE_STD = 6.0  # the head's input in the FP8 tests


class RecordFP8Product(torch.autograd.Function):
    """The record's FP8 head product written out with float32 matrix products of the dequantized casts: x and
    w scaled and cast to e4m3; in the backward, the bfloat16 output gradient scaled and cast to e5m2."""

    @staticmethod
    def forward(ctx, x, w):
        x_f8, w_f8 = (x * SCALES[0]).to(E4M3), (w * SCALES[1]).to(E4M3)
        ctx.save_for_backward(x_f8, w_f8)
        return ((x_f8.float() @ w_f8.float().T) / (SCALES[0] * SCALES[1])).bfloat16()

    @staticmethod
    def backward(ctx, grad):
        x_f8, w_f8 = ctx.saved_tensors
        grad_f8 = (grad * SCALES[2]).to(E5M2).float()
        grad_x = (grad_f8 @ w_f8.float()) / (SCALES[2] * SCALES[1])
        return grad_x.bfloat16(), (grad_f8.T @ x_f8.float()) / (SCALES[2] * SCALES[0])


def record_head_loss(x, w, targets):
    """The record's head and loss, unfused: FP8 product, softcap in float32, mean cross-entropy."""
    logits = RecordFP8Product.apply(x, w).float()
    return F.cross_entropy(2 * CAP * torch.sigmoid(logits * (2 / CAP)), targets)


@pytest.fixture
def eager():
    """The FP8 ops' inner torch.compile, run eagerly on CPU."""
    with torch._dynamo.config.patch(disable=True):
        yield


class FP8Head(torch.nn.Module):
    """The FP8 lm_head and the softcapped loss alone, on fixed features: the part of the model whose
    gradient depends on how the loss is scaled before its backward."""

    def __init__(self, vocab: int, dim: int, generator: torch.Generator):
        super().__init__()
        # scaled by 2**9, the weights stay inside e4m3's range (448: torch 2.11 casts beyond it to NaN, 2.13
        # saturates); with FEATURE_STD, the logits spread about 3.4
        self.weight = torch.nn.Parameter(torch.randn(vocab, dim, generator=generator) * 0.1)

    def forward(self, features, targets, window, table=None, target_weights=None):  # the model's call: next token
        next_token = targets[:, None]
        return T.fp8_head_loss(features, self.weight, next_token, torch.ones(next_token.shape), CAP, *SCALES)[0]

    def losses(self, *args, **kwargs):  # the training step's call: the loss and its next-token term, the same here
        loss = self(*args, **kwargs)
        return loss, loss.detach()


def test_fused_fp8_head_loss_is_the_records_head_and_loss(eager):
    """On CPU, where torch._scaled_mm accumulates as exactly as float32 products (on CUDA the record's FP8
    product accumulates in its fast mode); test_head_kernels_* checks the CUDA kernels against this code."""
    g = torch.Generator().manual_seed(1)
    vocab, dim, seq_len = 50304, 32, 256
    head = FP8Head(vocab, dim, g)
    features = (torch.randn(seq_len, dim, generator=g) * FEATURE_STD).bfloat16().requires_grad_()
    targets = torch.randint(0, vocab, (seq_len,), generator=g)
    results = []
    for loss_fn in (lambda: head(features, targets, None), lambda: record_head_loss(features, head.weight, targets)):
        features.grad = head.weight.grad = None
        loss = loss_fn()
        loss.backward()
        results.append((loss.detach(), features.grad, head.weight.grad))
    (loss, grad_x, grad_w), (want_loss, want_x, want_w) = results
    assert 13 < want_loss < 15  # about ln(50304) + the softcap's spread: the logits are not all equal
    torch.testing.assert_close(loss, want_loss, rtol=1e-6, atol=0)
    # the same e5m2 output gradient: the products differ in their float32 summation order (and so at most
    # in a bfloat16 rounding of grad_x)
    torch.testing.assert_close(grad_x, want_x, rtol=2 ** -7, atol=0)
    torch.testing.assert_close(grad_w, want_w, rtol=0, atol=1e-5 * want_w.abs().max().item())


def test_fp8_head_gradient_is_the_records_with_accumulation(eager):
    g = torch.Generator().manual_seed(0)
    vocab, dim, seq_len, global_batch_seqs = 50304, 32, 256, 8  # two micro-steps: one rank of four
    head = FP8Head(vocab, dim, g)
    batches = [((torch.randn(seq_len, dim, generator=g) * FEATURE_STD).bfloat16(),
                torch.randint(0, vocab, (seq_len,), generator=g))
               for _ in range(2)]
    expected = torch.zeros_like(head.weight)
    for features, targets in batches:  # the record: one unscaled backward per sequence, averaged afterwards
        head.weight.grad = None
        head(features, targets, None).backward()
        expected += head.weight.grad
    expected /= global_batch_seqs
    head.weight.grad = None
    stats = T.accumulate_gradients(head, iter(batches), torch.tensor(1), micro_steps=2)[:1]
    T.reduce_gradients(head, T.RowShardedAdam([dict(params=list(head.parameters()))]), stats, global_batch_seqs,
                       cpu_runtime())
    assert torch.equal(head.weight.grad, expected)
    # dividing the loss before its backward (as before) pushes gradient entries into float8_e5m2's
    # subnormals at these magnitudes: the same gradient then differs
    head.weight.grad = None
    for features, targets in batches:
        (head(features, targets, None) / global_batch_seqs).backward()
    assert not torch.equal(head.weight.grad, expected)


def per_matrix_muon(params, grads_per_step, lr, momentum, ns_steps):
    """Muon one matrix at a time, written out: Nesterov momentum, Newton-Schulz, shape-scaled step."""
    params = [p.detach().clone() for p in params]
    buffers = [torch.zeros_like(p) for p in params]
    for grads in grads_per_step:
        for p, buf, grad in zip(params, buffers, grads):
            buf.lerp_(grad, 1 - momentum)
            update = T.newton_schulz(grad.lerp(buf, momentum), ns_steps).float()
            p.add_(update, alpha=-lr * max(1.0, p.size(-2) / p.size(-1)) ** 0.5)
    return params


SHAPES = [(24, 16), (24, 16), (24, 16), (16, 24), (3, 16, 8), (3, 16, 8), (40, 10)]


@pytest.mark.parametrize("world_size", [1, 3])
def test_batched_muon_equals_muon_one_matrix_at_a_time(world_size):
    g = torch.Generator().manual_seed(3)
    params = [torch.nn.Parameter(torch.randn(shape, generator=g)) for shape in SHAPES]
    grads_per_step = [[torch.randn(shape, generator=g) for shape in SHAPES] for _ in range(3)]
    expected = per_matrix_muon(params, grads_per_step, lr=0.05, momentum=0.9, ns_steps=5)
    muons = [T.Muon(params, lr=0.05, momentum=0.9, ns_steps=5, rank=r, world_size=world_size, share_only=True)
             for r in range(world_size)]  # each rank's share, applied by its rank alone
    for grads in grads_per_step:
        for p, grad in zip(params, grads):
            p.grad = grad.clone()
        for muon in muons:
            muon.step()
    assert [len(group["params"]) for group in muons[0].param_groups] == [1, 2, 1, 3]  # by shape, largest first
    for p, want in zip(params, expected):
        torch.testing.assert_close(p.detach(), want, rtol=1e-5, atol=1e-6)


def test_muon_shares_are_contiguous_and_cover_every_matrix():
    muon = T.Muon([torch.nn.Parameter(torch.ones(2, 2))], lr=0.1, momentum=0.9, ns_steps=1, world_size=4)
    assert [muon.owner(i, 11) for i in range(11)] == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3]
    assert [muon.owner(i, 2) for i in range(2)] == [0, 1]


def test_step_results_are_read_without_a_sync_and_checked():
    copy = T.HostCopy(torch.tensor([2.5, 1.0]))
    assert copy.values() == [2.5, 1.0]
    cfg, logged = T.Hyperparameters(num_iterations=40), []
    log = lambda text, console=True: logged.append((text, console))  # noqa: E731
    assert T.check_step_stats([2.5, 2.0, 0.0], 3, cfg, log) is False and T.check_step_stats([2.5, 2.5, 1.0], 4, cfg, log)
    assert logged == [("step:3/40 train_loss:2.500000 next_token_loss:2.000000", False),
                      ("step:4/40 train_loss:2.500000 next_token_loss:2.500000", False)]
    with pytest.raises(T.RunError, match="training loss is nan at step 17"):
        T.check_step_stats([float("nan"), 1.0, 0.0], 17, cfg, log)
