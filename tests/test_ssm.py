"""The state-space byte mixer: its chunked scan and convolution against sequential float64 references written
from the recurrence, its state reset at document starts, and on CUDA, its compiled graphs against the CPU."""
import pytest
import torch

import train_gpt as T
from helpers import needs_cuda, randomized


def sequential_scan(x, log_decay, b, c, starts):
    """The recurrence, one position at a time: S_t = exp(log_decay_t) S_(t-1) + b_t x_t^T (zero where a
    document starts, before adding), y_t = c_t . S_t."""
    state = x.new_zeros(x.size(1), b.size(1), x.size(2))
    ys = []
    for t in range(len(x)):
        if starts is not None and starts[t]:
            state = torch.zeros_like(state)
        state = log_decay[t].exp()[:, None, None] * state + b[t][None, :, None] * x[t][:, None, :]
        ys.append(torch.einsum("s,hsp->hp", c[t], state))
    return torch.stack(ys)


def scan_problem(length, reset_rate, seed, heads=3, width=5, state=4):
    g = torch.Generator().manual_seed(seed)
    draw = lambda *shape: torch.randn(*shape, dtype=torch.float64, generator=g)  # noqa: E731
    x, b, c = draw(length, heads, width), draw(length, state), draw(length, state)
    log_decay = -torch.rand(length, heads, dtype=torch.float64, generator=g)
    starts = torch.rand(length, generator=g) < reset_rate
    return [t.requires_grad_() for t in (x, log_decay, b, c)], starts


@pytest.mark.parametrize("length, chunk, reset_rate", [(37, 8, 0.0), (200, 8, 0.05), (700, 4, 0.02), (130, 64, 0.3)])
def test_chunked_scan_is_the_recurrence_with_its_gradients(length, chunk, reset_rate):
    """700 positions in chunks of 4: the chunks' recurrence is itself split, three levels deep."""
    inputs, starts = scan_problem(length, reset_rate, seed=length)
    got = T.selective_scan(*inputs, starts, chunk)
    want = sequential_scan(*inputs, starts)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)
    probe = torch.randn_like(want)
    got_grads = torch.autograd.grad((got * probe).sum(), inputs)
    want_grads = torch.autograd.grad((want * probe).sum(), inputs)
    for g, w in zip(got_grads, want_grads):
        torch.testing.assert_close(g, w, rtol=1e-9, atol=1e-9)


def test_a_document_start_resets_the_state():
    inputs, _ = scan_problem(90, 0.0, seed=5)
    starts = torch.zeros(90, dtype=torch.bool)
    starts[41] = True
    with torch.no_grad():
        whole = T.selective_scan(*inputs, starts, 16)
        fresh = T.selective_scan(*(t[41:] for t in inputs), None, 16)
        unbroken = T.selective_scan(*inputs, None, 16)
    torch.testing.assert_close(whole[41:], fresh, rtol=1e-12, atol=1e-12)  # as if the sequence began there
    assert not torch.allclose(unbroken[41:], fresh)


def test_causal_convolution_reads_earlier_positions_of_its_document():
    g = torch.Generator().manual_seed(8)
    x, taps = torch.randn(30, 6, generator=g, dtype=torch.float64), torch.randn(T.SSM_CONV, 6, generator=g,
                                                                                dtype=torch.float64)
    docs = torch.tensor([0] * 10 + [1] * 2 + [2] * 18)
    got = T.causal_conv(x, taps, docs)
    for t in range(30):
        want = sum(taps[k] * x[t - k] for k in range(T.SSM_CONV) if t - k >= 0 and docs[t - k] == docs[t])
        torch.testing.assert_close(got[t], want, rtol=1e-12, atol=1e-12)
    assert not torch.allclose(T.causal_conv(x, taps, None)[10], got[10])  # one document: reads across


def ssm_layer(seed=0, byte_dim=64):
    cfg = T.parse_args(["--smoke", "--use_mot=1", "--byte_self_attn=1", "--byte_mixer=ssm", f"--byte_dim={byte_dim}"])
    torch.manual_seed(seed)
    return randomized(T.ByteSSM(cfg))


def test_the_mixer_starts_as_the_identity_and_reads_no_later_byte():
    cfg = T.parse_args(["--smoke", "--use_mot=1", "--byte_self_attn=1", "--byte_mixer=ssm"])
    x = torch.randn(12, 4, cfg.byte_dim)
    torch.testing.assert_close(T.ByteSSM(cfg)(x, None), x, rtol=0, atol=0)  # zero-initialized projection
    layer = ssm_layer().double()
    x = torch.randn(12, 4, 64, dtype=torch.float64, requires_grad=True)
    out = layer(x, None).reshape(48, 64)
    for position in (0, 17, 47):
        grad, = torch.autograd.grad(out[position].sum(), x, retain_graph=True)
        reached = grad.reshape(48, 64).abs().sum(dim=1) > 0
        assert reached[:position + 1].all() and not reached[position + 1:].any()


@needs_cuda
def test_compiled_mixer_on_cuda_is_the_cpu_mixer():
    layer = ssm_layer(byte_dim=128)
    g = torch.Generator().manual_seed(4)
    x = torch.randn(96, 4, 128, generator=g)
    docs = torch.tensor([0] * 100 + [1] * 200 + [2] * 84)
    want = layer.double()(x.double(), docs)
    compiled = torch.compile(layer.float().cuda(), dynamic=False)
    got = compiled(x.cuda(), docs.cuda())
    torch.testing.assert_close(got.double().cpu(), want, rtol=2e-4, atol=2e-4)
    got.square().sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in layer.parameters())
