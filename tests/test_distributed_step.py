"""A whole training step in two gloo processes equals the same step in one process (the model with every
optional input feature on): gradient reduction and scaling, Muon's shares, the loader's rank slices; Adam
split by rows over the ranks takes one process's steps and checkpoints in one process's layout."""
import copy
import functools
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

import train_gpt as T
from helpers import cpu_runtime, rank0_result_over_gloo

FEATURES = ["--use_mot=1", "--byte_self_attn=1", "--byte_pool=4", "--bigram_hash_rows=97", "--byte_ngram_rows=101"]


def gathered(rows: torch.Tensor, length: int, world_size: int) -> torch.Tensor:
    """The whole matrix of length rows of which each rank holds a share (the last one's may be short)."""
    share = -(-length // world_size)
    parts = [rows.new_empty((share, rows.size(1))) for _ in range(world_size)]
    dist.all_gather(parts, torch.nn.functional.pad(rows, (0, 0, 0, share - rows.size(0))))
    return torch.cat(parts)[:length]


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
             / cfg.global_batch_seqs)[:1]
    T.reduce_gradients(model, adam, stats, cfg.global_batch_seqs, runtime)
    grads = {name: p.grad.clone() for name, p in model.named_parameters()}
    names = {id(p): name for name, p in model.named_parameters()}
    assert len(adam.splits) >= 5 or world_size == 1  # token, value embeddings, head: split by rows
    for rows, p, _ in adam.splits:  # Adam's tables: each rank holds the reduced gradient of its own rows
        grads[names[id(p)]] = gathered(rows.grad, p.size(0), world_size)
    muon.step()
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


def adam_steps(rank: int, world_size: int, resume_from: Path | None = None):
    """Two Adam steps on the same gradients in every process (each rank's sum over ranks, scaled by the
    batch of world_size sequences, is the gradient itself, exactly): the parameters after them and the
    checkpoint state. With resume_from (a file of one process's state after the first step, read by each
    rank as restore() reads a checkpoint), the second step alone."""
    cfg = T.parse_args(["--smoke", f"--global_batch_seqs={world_size}", "--bigram_hash_rows=96"])
    runtime = cpu_runtime(rank, world_size)
    model = T.build_model(cfg, runtime)
    adam, _ = T.build_optimizers(model, cfg, runtime)
    params = [p for group in adam.param_groups for p in group["params"]]
    steps = [1] if resume_from else [0, 1]
    if resume_from:
        state = torch.load(resume_from)
        model.load_state_dict(state["model"])
        adam.load_whole_state_dict(state["adam"])
    for step in steps:
        generator = torch.Generator().manual_seed(step)
        for p in model.parameters():
            p.grad = torch.randn(p.shape, generator=generator)
        T.reduce_gradients(model, adam, torch.zeros(2), world_size, runtime)
        adam.step()
        adam.gather_rows()
        adam.finish_gather()
        model.zero_grad(set_to_none=True)
        if step == 0:
            after_first = copy.deepcopy(dict(model=model.state_dict(), adam=adam.whole_state_dict()))
    named = {name: p.detach().clone() for name, p in model.named_parameters()}
    return len(adam.splits), len(params), named, adam.whole_state_dict(), None if resume_from else after_first


def test_adam_split_by_rows_takes_one_process_steps_and_checkpoints(tmp_path):
    one_splits, count, one, one_state, one_first = adam_steps(0, 1)
    two_splits, two_count, two, two_state, _ = rank0_result_over_gloo(adam_steps, 2, tmp_path)
    assert one_splits == 0 and two_splits >= 6 and two_count == count  # tables and head split, bigram too
    for name, value in one.items():
        assert torch.equal(two[name], value), name  # rows updated elsewhere arrive through the all-gather
    assert two_state["param_groups"] == one_state["param_groups"]
    for index, state in one_state["state"].items():
        for key, value in state.items():
            assert torch.equal(two_state["state"][index][key], value), (index, key)
    (tmp_path / "resumed").mkdir()
    torch.save(one_first, tmp_path / "first_step.pt")
    *_, resumed, _, _ = rank0_result_over_gloo(functools.partial(adam_steps, resume_from=tmp_path / "first_step.pt"),
                                               2, tmp_path / "resumed")
    for name, value in one.items():
        assert torch.equal(resumed[name], value), name  # one process's checkpoint, resumed on two


def test_one_rank_of_several_updates_its_rows_alone():
    """bench_ranks' Adam (share_only): rank 1 of 3 moves rows 4-7 of a 10-row table as whole-tensor Adam
    does, and no other row; a 2-row table stays whole (some rank would hold none of it)."""
    table, small, scalar = torch.randn(10, 4), torch.randn(2, 4), torch.randn(3)
    grads = [torch.randn(10, 4), torch.randn(2, 4), torch.randn(3)]
    whole = [t.clone().requires_grad_() for t in (table, small, scalar)]
    shared = [torch.nn.Parameter(t.clone()) for t in (table, small, scalar)]
    reference = torch.optim.Adam([dict(params=whole, lr=0.1)], betas=(0.8, 0.95), eps=1e-10)
    adam = T.RowShardedAdam([dict(params=shared, lr=0.1)], rank=1, world_size=3, share_only=True,
                            betas=(0.8, 0.95), eps=1e-10)
    assert [p.shape for rows, p, _ in adam.splits] == [(10, 4)]
    for p, q, g in zip(whole, shared, grads):
        p.grad, q.grad = g.clone(), g.clone()
    reference.step()
    T.reduce_gradients(torch.nn.ParameterList(shared), adam, torch.zeros(2), 1, cpu_runtime())
    adam.step()
    adam.gather_rows()
    adam.finish_gather()
    assert torch.equal(shared[0][4:8], whole[0][4:8]) and torch.equal(shared[0][:4], table[:4])
    assert torch.equal(shared[0][8:], table[8:])
    assert torch.equal(shared[1], whole[1]) and torch.equal(shared[2], whole[2])
