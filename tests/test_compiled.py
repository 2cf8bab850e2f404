"""Training steps under torch.compile on the CPU (inductor's C++ backend, the dense attention backend): what
fails only when compiled shows here, before a GPU run. CUDA's own lowering (FlexAttention, Triton) is the
GPU check's (records/gpu_check.py)."""
import dataclasses

import pytest
import torch

import train_gpt as T
from helpers import cpu_runtime

# every part of the model that compiles, on a 2-layer smoke model: the byte front end with the scan mixer and
# pooling, the hashed tables, and every output target
EVERY_PART = ["--smoke", "--num_layers=2", "--use_mot=1", "--byte_self_attn=1", "--byte_mixer=ssm", "--byte_pool=4",
              "--bigram_hash_rows=1024", "--byte_ngram_rows=1024", "--mtp_weights=0.5,0.25", "--prefix_weight=0.25",
              "--byte_target_weight=0.25"]


def training_losses(cfg: T.Hyperparameters, compiled: bool, fp8_head: bool, steps: int = 3) -> list[float]:
    """The mean training loss of each of the first steps on warm-up batches, with the model's graphs compiled
    as train() compiles them, or eager with dynamo off (the FP8 head's own small graphs included; Muon eager
    in both: its compiled steps are the next test's)."""
    runtime = dataclasses.replace(cpu_runtime(), fp8_head=fp8_head)
    model = T.build_model(cfg, runtime)
    optimizers = T.build_optimizers(model, cfg, runtime)
    if compiled:
        T.compile_model(model)
    batches = T.random_batches(cfg, cfg.seq_len, runtime.device, T.load_byte_table(cfg))
    with torch._dynamo.config.patch(disable=not compiled):
        return [T.train_step(model, optimizers, batches, T.step_window(step, cfg, runtime.device), step, cfg,
                             runtime)[0].item() for step in range(steps)]


# with fp8_head, the path of every H100 run: the trunk's graph ends at the features, and the head's FP8 product
# and loss run outside it (torch._scaled_mm runs on CPU too), with the targets' and the product's own graphs
@pytest.mark.parametrize("fp8_head", [False, True], ids=["plain_head", "fp8_head"])
def test_compiled_training_steps_are_the_eager_ones(fp8_head):
    cfg = T.parse_args(EVERY_PART)
    eager = training_losses(cfg, compiled=False, fp8_head=fp8_head)
    compiled = training_losses(cfg, compiled=True, fp8_head=fp8_head)
    assert eager[0] > 20 and len(set(eager)) == 3  # every target adds to the first loss, and the steps train
    # inductor fuses and reorders float32 sums: the same steps within rounding, three optimizer steps deep
    torch.testing.assert_close(compiled, eager, rtol=2e-4, atol=0)


def test_compiled_muon_is_eager_muon():
    g = torch.Generator().manual_seed(5)
    shapes = [(24, 16), (24, 16), (16, 24)]  # two groups: a batch of two and a wide matrix alone
    grads = [[torch.randn(shape, generator=g) for shape in shapes] for _ in range(2)]
    results = []
    for compiled in (False, True):
        params = [torch.nn.Parameter(torch.ones(shape)) for shape in shapes]
        muon = T.Muon(params, lr=0.05, momentum=0.9, ns_steps=5, compiled=compiled)
        for step_grads in grads:
            for p, grad in zip(params, step_grads):
                p.grad = grad.clone()
            muon.step()
        results.append([p.detach() for p in params])
    moved = [p - 1 for p in results[0]]
    assert all(step.abs().mean() > 1e-2 for step in moved)  # every matrix moved
    # Newton-Schulz runs in bfloat16, where inductor rounds a fused sum once and eager rounds each product:
    # 3-4 % apart after two steps (the shape's scale alone, if lost, would be 22 %)
    for got, step in zip(results[1], moved):
        assert (got - 1 - step).norm() < 0.06 * step.norm()
