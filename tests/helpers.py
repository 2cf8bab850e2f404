"""Small writers of shard files for tests, independent of the project's writers, a CPU runtime, a weight
randomizer, a gloo launcher, and the head's constants."""
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import train_gpt as T

SCALES = (2.0, 2.0 ** 9, 2.0 ** 19)  # the model's FP8 scales: the head's input, weight and gradient
CAP = 15.0  # the record's logit cap
def needs_cuda(test):
    """A CUDA test: skipped without a GPU, run by records/gpu_check.py (pytest -m cuda)."""
    skip = pytest.mark.skipif(not torch.cuda.is_available() or T.triton is None, reason="needs CUDA and Triton")
    return pytest.mark.cuda(skip(test))


def write_raw_token_shard(path: Path, tokens, magic=20240520, version=1, claimed=None) -> Path:
    header = np.zeros(256, dtype=np.int32)
    header[:3] = [magic, version, len(tokens) if claimed is None else claimed]
    path.write_bytes(header.tobytes() + np.asarray(tokens, dtype=np.uint16).tobytes())
    return path


def cpu_runtime(rank: int = 0, world_size: int = 1):
    """The runtime select_runtime gives on CPU, as rank of world_size processes."""
    return T.Runtime(torch.device("cpu"), rank, world_size, compiled=False, flex=False, fp8_head=False,
                     embed_dtype=torch.float32)


def scalar_adam(model, runtime):
    """An Adam of the model's scalars alone, which splits nothing over the ranks: reduce_gradients with it
    reduces every gradient whole."""
    return T.RowShardedAdam([dict(params=[p for p in model.parameters() if p.ndim < 2])], runtime.rank,
                            runtime.world_size)


def randomized(model):
    """Every weight random: zero-initialized projections would hide leaks and wrong wiring."""
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.5)
    return model


def _gloo_worker(rank: int, world_size: int, init_file: str, out_file: str, train) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        result = train(rank, world_size)
        if rank == 0:
            torch.save(result, out_file)
    finally:
        dist.destroy_process_group()


def rank0_result_over_gloo(train, world_size: int, tmp_path: Path):
    """Runs train(rank, world_size), a module-level function, in world_size gloo processes; rank 0's result."""
    out_file = tmp_path / "rank0.pt"
    mp.spawn(_gloo_worker, args=(world_size, str(tmp_path / "init"), str(out_file), train), nprocs=world_size,
             join=True)
    return torch.load(out_file)
