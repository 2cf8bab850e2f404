"""Which collectives gloo runs on CUDA tensors, and whether those that train_gpt.py uses give the values they
must: torchrun --nproc_per_node=N gloo_probe.py, every rank on GPU 0."""
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import train_gpt as T  # noqa: E402

rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
torch.cuda.set_device(0)
dist.init_process_group("gloo")
native = {
    "all_reduce": lambda d: dist.all_reduce(torch.full((4,), rank + 1.0, device=d)),
    "broadcast": lambda d: dist.broadcast(torch.full((4,), rank + 1.0, device=d), 0),
    "all_gather_into_tensor": lambda d: T.all_gather_single(torch.empty(4 * world, device=d), torch.ones(4, device=d)),
    "reduce_scatter_tensor": lambda d: T.reduce_scatter_single(torch.empty(4, device=d), torch.ones(4 * world, device=d)),
}
for name, op in native.items():
    for device in ("cpu", "cuda"):
        try:
            op(device)
            verdict = "runs"
        except Exception as e:  # noqa: BLE001 - the probe reports whatever gloo raises
            verdict = f"fails: {type(e).__name__}: {str(e).splitlines()[0][:120]}"
        if rank == 0:
            print(f"gloo {name} on {device} tensors: {verdict}", flush=True)

# the four on CUDA tensors, against their definitions
d = torch.device("cuda", 0)
x = torch.arange(8.0, device=d) + rank
dist.all_reduce(x)
assert torch.equal(x.cpu(), sum(torch.arange(8.0) + r for r in range(world)))
gathered = torch.empty(3 * world, device=d)
T.all_gather_single(gathered, torch.full((3,), float(rank), device=d), async_op=True).wait()
assert torch.equal(gathered.cpu(), torch.arange(world).float().repeat_interleave(3))
share = torch.empty(2, device=d)
T.reduce_scatter_single(share, torch.arange(2.0 * world, device=d) * (rank + 1), async_op=True).wait()
assert torch.equal(share.cpu(), torch.arange(2.0 * world)[2 * rank:2 * rank + 2] * sum(range(1, world + 1)))
y = torch.full((5,), float(rank), device=d)
dist.broadcast(y, src=world - 1)
assert torch.equal(y.cpu(), torch.full((5,), float(world - 1)))
if rank == 0:
    print(f"gloo's four collectives on CUDA tensors, {world} ranks on one GPU: values right", flush=True)
dist.destroy_process_group()
