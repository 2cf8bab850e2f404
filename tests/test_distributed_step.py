"""A whole training step in two gloo processes equals the same step in one process (the model with every
optional input feature on): gradient reduction and scaling, Muon's shares, the loader's rank slices."""
import pytest
import torch

import train_gpt as T
from helpers import cpu_runtime, rank0_result_over_gloo

FEATURES = ["--use_mot=1", "--byte_self_attn=1", "--byte_pool=4", "--bigram_hash_rows=97", "--byte_ngram_rows=101"]


def train(rank: int, world_size: int):
    """One optimizer step: its loss, its reduced gradients, and the matrices after Muon's update, where two
    processes differ from one by summation order alone. (Adam's first step moves each parameter by about
    its learning rate with its gradient's sign, so Adam's parameters part wherever a gradient is near zero.)"""
    cfg = T.parse_args(["--smoke", "--global_batch_seqs=4", *FEATURES])
    runtime = cpu_runtime(rank, world_size)
    model = T.build_model(cfg, runtime)
    generator = torch.Generator().manual_seed(5)
    with torch.no_grad():  # no zero-initialized layer: every parameter gets a gradient in the first step
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=generator) * 0.05)
    adam, muon = T.build_optimizers(model, cfg, runtime)
    batches = T.rank_batches(T.open_stream(cfg, cfg.train_files, "training"), cfg.global_batch_seqs, cfg.seq_len,
                             rank, world_size, runtime.device)
    stats = (T.accumulate_gradients(model, batches, torch.tensor(2), cfg.global_batch_seqs // world_size)
             / cfg.global_batch_seqs)[None]
    T.reduce_gradients(model, stats, cfg.global_batch_seqs, runtime)
    grads = {name: p.grad.clone() for name, p in model.named_parameters()}
    muon.step()
    names = {id(p): name for name, p in model.named_parameters()}
    matrices = {names[id(p)]: p.detach().clone() for group in muon.param_groups for p in group["params"]}
    return stats.item(), grads, matrices


def test_two_processes_take_the_same_step_as_one(tmp_path):
    two_loss, two_grads, two_matrices = rank0_result_over_gloo(train, 2, tmp_path)
    one_loss, one_grads, one_matrices = train(0, 1)
    assert two_loss == pytest.approx(one_loss, abs=1e-6)
    for name, grad in one_grads.items():
        assert grad.norm() > 0, name  # every parameter, the optional features' too, takes part in the step
        assert (two_grads[name] - grad).norm() <= 1e-5 * grad.norm(), name
    assert len(one_matrices) > 40
    for name, matrix in one_matrices.items():
        # Newton-Schulz runs in bfloat16, where a rounding flip of its input moves the update by about 1 %;
        # a wrong share or a missing update would be off by a whole step (muon_lr = 0.05)
        assert (two_matrices[name] - matrix).abs().max() < 0.005, name
