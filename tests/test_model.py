"""The model and optimizer on CPU: causality, layer pattern, warm-up restore, Newton-Schulz."""
import dataclasses
import types

import pytest
import torch
import torch.nn.functional as F

import train_gpt as T
from helpers import needs_cuda


@pytest.fixture(scope="module")
def tiny():
    cfg = T.parse_args(["--smoke", "--seq_len=64", "--val_seq_len=64", "--warmup_steps=2"])
    runtime = T.select_runtime(cfg)
    return cfg, runtime


def test_no_token_sees_the_future(tiny):
    cfg, runtime = tiny
    model = T.build_model(cfg, runtime)
    with torch.no_grad():  # zero-initialized output layers would hide any leak: randomize every weight
        for p in model.parameters():
            p.normal_(0, 0.5)
    generator = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, 50000, (64,), generator=generator)
    tokens[[5, 30]] = T.EOT_TOKEN
    window = torch.tensor(3)
    base = model.logits(tokens, window)
    for t in (0, 17, 40, 62):
        changed = tokens.clone()
        changed[t + 1:] = torch.randint(0, 50000, (63 - t,), generator=generator)
        logits = model.logits(changed, window)
        torch.testing.assert_close(logits[0, :t + 1], base[0, :t + 1], rtol=0, atol=0)
        assert not torch.allclose(logits[0, t + 1:], base[0, t + 1:])


def test_layer_pattern_matches_the_record():
    assert [T.value_embed_index(i, 12) for i in range(12)] == [0, 1, 2, None, None, None, None, None, None, 0, 1, 2]
    assert [i for i in range(12) if T.uses_long_window(i, 12)] == [0, 4, 7, 11]
    cfg = T.Hyperparameters()
    model = T.GPT(dataclasses.replace(cfg, model_dim=64, num_heads=2, head_dim=32, vocab_size=300),
                  T.DenseAttentionBackend(128), max_seq_len=128)
    assert [i for i, b in enumerate(model.blocks) if b.attn is None] == [7]
    assert model.lm_head.weight.shape == (384, 64)  # vocabulary padded to a multiple of 128
    assert T.padded_vocab_size(50257) == 50304
    for name, p in model.named_parameters():
        if name.endswith("c_proj.weight") or name == "lm_head.weight":
            assert not p.any(), f"{name} must start at zero"


def test_warm_up_leaves_model_and_optimizers_as_initialized(tiny):
    cfg, runtime = tiny
    model = T.build_model(cfg, runtime)
    optimizers = T.build_optimizers(model, cfg, runtime)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt_before = [o.state_dict() for o in optimizers]
    T.warm_up(model, optimizers, cfg, runtime, log=lambda *_: None)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    for opt, state in zip(optimizers, opt_before):
        assert not opt.state_dict()["state"] and not state["state"]
        assert [g["lr"] for g in opt.param_groups] == [g["lr"] for g in state["param_groups"]]
    # and a training step after warm-up equals one on a fresh model
    fresh = T.build_model(cfg, runtime)
    fresh_opts = T.build_optimizers(fresh, cfg, runtime)
    batch = next(T.random_batches(cfg, cfg.seq_len, runtime.device, None))
    for m, opts in ((model, optimizers), (fresh, fresh_opts)):
        T.train_step(m, opts, iter([batch] * 8), torch.tensor(2), 0, cfg, runtime)
    for (name, a), b in zip(model.state_dict().items(), fresh.state_dict().values()):
        assert torch.equal(a, b), name


@pytest.mark.parametrize("shape", [(64, 64), (96, 32), (32, 160), (3, 48, 48)])
def test_newton_schulz_orthogonalizes(shape):
    torch.manual_seed(0)
    grad = torch.randn(shape, dtype=torch.float64)
    out = T.newton_schulz(grad, steps=5)
    assert out.shape == grad.shape and out.is_contiguous()  # tall ones too: NCCL's all-gather sends it as it is
    out = out.double()
    u, s, vh = torch.linalg.svd(grad, full_matrices=False)
    # the output keeps the singular vectors and maps each singular value into a band around 1 (not
    # exactly 1: the quintic trades accuracy for a steep slope at zero); values below ~1/500 of the
    # Frobenius norm need more than 5 steps to get there
    mapped = (u.mT @ out @ vh.mT).diagonal(dim1=-2, dim2=-1)
    reachable = s / grad.norm(dim=(-2, -1), keepdim=True).squeeze(-1) > 0.005
    assert reachable.float().mean() > 0.9
    assert (mapped[reachable] > 0.5).all() and (mapped < 1.5).all()
    off_diagonal = u.mT @ out @ vh.mT - torch.diag_embed(mapped)
    assert off_diagonal.abs().max() < 0.05  # bfloat16 rounding, no mixing of singular directions


def test_every_parameter_has_one_optimizer(tiny):
    cfg, runtime = tiny
    model = T.build_model(cfg, runtime)
    adam, muon = T.build_optimizers(model, cfg, runtime)
    owners = [id(p) for opt in (adam, muon) for g in opt.param_groups for p in g["params"]]
    assert sorted(owners) == sorted(id(p) for p in model.parameters())
    assert all(p.ndim >= 2 for g in muon.param_groups for p in g["params"])
    assert model.lm_head.weight in adam.param_groups[0]["params"]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_mlp_through_its_two_ops_is_the_plain_mlp(dtype):
    """The MLP's CPU path (the ops' PyTorch code, the backward written out) against autograd through
    relu(x @ w_fc.T)^2 @ w_proj.T, bit for bit; the pre-activations straddle zero."""
    torch.manual_seed(0)
    mlp = T.MLP(32)
    with torch.no_grad():
        mlp.c_proj.weight.normal_(0, 0.1)  # zero-initialized
    x, grad_out = torch.randn(2, 5, 32, dtype=dtype), torch.randn(2, 5, 32, dtype=dtype)
    got_x = x.clone().requires_grad_()
    out = mlp(got_x)
    out.backward(grad_out)
    w_fc, w_proj = (w.detach().clone().requires_grad_() for w in (mlp.c_fc.weight, mlp.c_proj.weight))
    want_x = x.clone().requires_grad_()
    pre = F.linear(want_x, w_fc.to(dtype))
    want = F.linear(F.relu(pre).square(), w_proj.to(dtype))
    want.backward(grad_out)
    assert 0.3 < (pre > 0).float().mean() < 0.7
    for got, expected in [(out, want), (got_x.grad, want_x.grad), (mlp.c_fc.weight.grad, w_fc.grad),
                          (mlp.c_proj.weight.grad, w_proj.grad)]:
        assert got.dtype == expected.dtype and torch.equal(got, expected)


@needs_cuda
@pytest.mark.parametrize("rows, dim", [(1000, 768), (384, 256)])  # the trunk's MLP, ragged rows; the byte MLP's
def test_mlp_kernels_on_cuda_are_the_float64_products(rows, dim):
    """The Triton products against float64 ones rounded to bfloat16: within a rounding (float32 sums in
    another order), the activation exactly that of the kernel's own pre-activation, the gradient zero
    wherever the pre-activation is not positive."""
    gen = torch.Generator().manual_seed(3)
    x, grad_out = (torch.randn(rows, dim, generator=gen).bfloat16() for _ in range(2))
    w_fc = (torch.randn(4 * dim, dim, generator=gen) * dim ** -0.5).bfloat16()
    w_proj = (torch.randn(dim, 4 * dim, generator=gen) * dim ** -0.5).bfloat16()
    pre, post = (t.cpu() for t in T.relu_square_linear(x.cuda(), w_fc.cuda()))
    want_pre = (x.double() @ w_fc.double().T).bfloat16()
    torch.testing.assert_close(pre, want_pre, rtol=2 ** -7, atol=1e-3)
    assert (pre != want_pre).float().mean() < 1e-2
    assert torch.equal(post, F.relu(pre.float()).square().bfloat16())
    grad = T.relu_square_grad(grad_out.cuda(), w_proj.cuda(), pre.cuda()).cpu()
    want = ((grad_out.double() @ w_proj.double()).bfloat16().double() * 2 * F.relu(pre.double())).bfloat16()
    # two steps: where the product rounds the other way (one step), the results' roundings add one more
    torch.testing.assert_close(grad, want, rtol=2 ** -6, atol=1e-3)
    assert (grad != want).float().mean() < 1e-2
    assert (pre <= 0).float().mean() > 0.3 and torch.equal(grad[pre <= 0], torch.zeros_like(grad[pre <= 0]))


def test_device_kernels_leave_out_host_ops_and_the_optimizers_ranges():
    """The profiler's averaged events as the profile reads them: the optimizers' record_function ranges also
    appear on the GPU (spanning kernels listed on their own), host ops do not count, copies and sets do."""
    cuda, cpu = torch.autograd.DeviceType.CUDA, torch.autograd.DeviceType.CPU

    def event(key, device_type, us, count, annotation=False):
        return types.SimpleNamespace(key=key, device_type=device_type, self_device_time_total=us, count=count,
                                     is_user_annotation=annotation)

    events = [event("Optimizer.step#Muon.step", cuda, 1460.0, 1, annotation=True),
              event("aten::mm", cpu, 0.0, 40), event("Memset (Device)", cuda, 12.0, 3),
              event("nvjet_sm90_tst_192x192_64x3_2x1_v_bz_coopB_NNN", cuda, 10773.0, 56)]
    assert T.device_kernels(events) == [("Memset (Device)", 0.012, 3),
                                        ("nvjet_sm90_tst_192x192_64x3_2x1_v_bz_coopB_NNN", 10.773, 56)]


def test_kernels_are_grouped_by_family_from_their_names():
    """Kernel names from profiled H100 steps (422e3dd's baseline, ff897fe's norm whose fused name mentions the
    squared ReLU's gradient op), times in ms, launches."""
    kernels = [("nvjet_sm90_tst_192x192_64x3_2x1_v_bz_coopB_NNN", 10.773, 56),
               ("nvjet_sm90_qqtst_192x192_128x4_1x2_h_bz_coopB_TNN", 3.170, 1),
               ("triton_tem_fused_flex_attention_backward_transpose_view_6", 4.969, 11),
               ("triton_tem_fused__to_copy__unsafe_view_add_arange_bitwise_and_eq_flex_attention_floor_d", 2.022, 11),
               ("triton_poi_fused__unsafe_view_mul_pow_relu_threshold_backward_view_2", 3.562, 12),
               ("triton_poi_fused__unsafe_view_pow_relu_15", 2.391, 12),
               ("relu_square_product_kernel", 4.0, 24),
               ("triton_red_fused__fused_rms_norm__fused_rms_norm_backward__to_copy__unsafe_view_add_cat", 2.920, 11),
               ("triton_per_fused__fused_rms_norm__fused_rms_norm_backward_add_mul_relu_square_grad_sele", 0.433, 1),
               ("logit_grad_f8_kernel", 3.655, 1), ("logit_stats_kernel", 2.047, 1),
               ("Memcpy HtoD (Pinned -> Device)", 0.02, 3), ("triton_poi_fused_add_mul_3", 0.5, 4),
               ("void at::native::elementwise_kernel<128, 4>", 0.7, 6)]
    want = [("matrix products", 13.943, 57), ("FlexAttention", 6.991, 22), ("squared ReLU", 5.953, 24),
            ("the head's loss", 5.702, 2), ("MLP products with the squared ReLU", 4.0, 24),
            ("rms norms and what is fused with them", 3.353, 12), ("other", 1.2, 10),
            ("memory copies and sets", 0.02, 3)]
    got = T.kernel_families(kernels)
    assert [(f, n) for f, _, n in got] == [(f, n) for f, _, n in want]
    assert [spent for _, spent, _ in got] == pytest.approx([spent for _, spent, _ in want])
    table = T.family_table(kernels, steps=2).splitlines()
    assert table[2] == "| matrix products | 6.97 | 33.9 % | 28.5 |" and len(table) == 2 + 8 + 1 + 2 + 2
    assert table[-2:] == ["| void at::native::elementwise_kernel<128, 4> | 0.35 | 1.7 % | 3 |",
                          "| triton_poi_fused_add_mul_3 | 0.25 | 1.2 % | 2 |"]  # the unfiled, largest first
