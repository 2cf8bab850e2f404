"""train_gpt.py with the vocabulary table's backward split into CHUNKS row blocks as CHUNKS ranks split it
(each block computed and backpropagated on its own, the front end's gradients summed in float32): the same
math as the unsplit run, other bfloat16 roundings of the front end's gradients. Where a one-process run
and this one part by as much as one process and several ranks do, the ranks' gap is rounding, not a
difference of math. CPU_BF16=1 keeps the embedding tables in bfloat16 on CPU too, as on CUDA (the CPU
runtime's float32 tables hide the rounding in question); it works under torchrun as well. SPECTRUM=1 prints
the largest singular values of the cross-attention's output projection's gradient at every step.

    CHUNKS=2 python records/2026-12-06_rehearsal/chunked.py [train_gpt.py arguments]
    CPU_BF16=1 torchrun --nproc_per_node=2 records/2026-12-06_rehearsal/chunked.py --smoke ...
"""
import dataclasses
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import train_gpt as T  # noqa: E402

CHUNKS = int(os.environ.get("CHUNKS", "1"))


def chunked_backward(self) -> None:
    """VocabTable.backward of one process, as CHUNKS ranks run it: each block of rows (the ranks' shares)
    computed again and backpropagated on its own."""
    grad = self.table.grad[:self.share]
    size = 16 * -(-self.share // (16 * CHUNKS))
    for first in range(0, self.share, size):
        self.model.vocab_embedding(self.first + first, self.byte_rows[first:first + size]).backward(
            grad[first:first + size])
    self.own = self.table = None


def with_bf16_tables_on_cpu(select_runtime):
    def select(cfg):
        runtime = select_runtime(cfg)
        on_cpu = runtime.device.type == "cpu"
        return dataclasses.replace(runtime, embed_dtype=torch.bfloat16) if on_cpu else runtime
    return select


def with_spectrum(reduce_gradients):
    def reduce(model, adam, stats, global_batch_seqs, runtime):
        reduce_gradients(model, adam, stats, global_batch_seqs, runtime)
        grad = model.byte_front_end.token_byte_cross_attn.c_proj.weight.grad
        if runtime.rank == 0 and grad is not None:
            print("c_proj gradient, largest singular values:",
                  " ".join(f"{s:.2e}" for s in torch.linalg.svdvals(grad.float())[:6].tolist()), flush=True)
    return reduce


if __name__ == "__main__":
    if CHUNKS > 1:
        assert int(os.environ.get("WORLD_SIZE", 1)) == 1, "CHUNKS splits one process's table; run it alone"
        T.VocabTable.backward = chunked_backward
    if os.environ.get("CPU_BF16") == "1":
        T.select_runtime = with_bf16_tables_on_cpu(T.select_runtime)
    if os.environ.get("SPECTRUM") == "1":
        T.reduce_gradients = with_spectrum(T.reduce_gradients)
    sys.exit(T.main(sys.argv[1:]))
