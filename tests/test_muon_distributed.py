"""Muon spread over two gloo processes gives the same parameters as Muon in one process."""
import torch

import train_gpt as T
from helpers import rank0_result_over_gloo

# shapes: a group of three (not a multiple of two ranks), a group of two batched 3-D matrices, a tall and a
# wide matrix of the same size, and single matrices (the second rank's share of their groups is empty)
SHAPES = [(24, 16), (24, 16), (24, 16), (3, 16, 8), (3, 16, 8), (20, 12), (12, 20), (40, 10)]
STEPS = 3


def make_params():
    generator = torch.Generator().manual_seed(0)
    return [torch.nn.Parameter(torch.randn(shape, generator=generator)) for shape in SHAPES]


def gradients(step: int):
    generator = torch.Generator().manual_seed(100 + step)
    return [torch.randn(shape, generator=generator) for shape in SHAPES]


def train(rank: int, world_size: int) -> list[torch.Tensor]:
    params = make_params()
    muon = T.Muon(params, lr=0.05, momentum=0.9, ns_steps=5, rank=rank, world_size=world_size)
    for step in range(STEPS):
        for p, g in zip(params, gradients(step)):
            p.grad = g.clone()
        muon.step()
    return [p.detach().clone() for p in params]


def test_two_process_muon_equals_one_process(tmp_path):
    two = rank0_result_over_gloo(train, 2, tmp_path)
    one = train(0, 1)
    start = make_params()
    for a, b, p0 in zip(two, one, start):
        assert not torch.equal(b, p0.detach())  # every matrix moved
        torch.testing.assert_close(a, b, rtol=0, atol=0)
