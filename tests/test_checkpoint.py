"""Checkpoints: what they hold, bad files, differing constants, and a clean stop on SIGTERM."""
import re
import signal
import subprocess
import sys
import time

import pytest
import torch

import train_gpt as T
from conftest import ROOT


@pytest.fixture
def saved(tmp_path):
    cfg = T.parse_args(["--smoke"])
    runtime = T.select_runtime(cfg)
    model = T.build_model(cfg, runtime)
    optimizers = T.build_optimizers(model, cfg, runtime)
    batches = T.random_batches(cfg, cfg.seq_len, runtime.device, None)
    for step in range(2):
        T.train_step(model, optimizers, batches, torch.tensor(1), step, cfg, runtime)
    path = tmp_path / "state_step000002.pt"
    T.write_checkpoint(path, 2, 1234.0, cfg, runtime, model, optimizers)
    return cfg, runtime, model, optimizers, path


def test_checkpoint_restores_model_optimizers_and_position(saved):
    cfg, runtime, model, optimizers, path = saved
    assert not list(path.parent.glob("*.tmp"))
    state = T.load_checkpoint(str(path), cfg, runtime)
    assert state["step"] == 2 and state["train_ms"] == 1234.0
    assert state["tokens_consumed"] == 2 * cfg.global_batch_seqs * cfg.seq_len
    fresh = T.build_model(cfg, runtime)
    fresh_opts = T.build_optimizers(fresh, cfg, runtime)
    T.restore(state, fresh, fresh_opts, runtime)
    for (name, a), b in zip(model.state_dict().items(), fresh.state_dict().values()):
        assert torch.equal(a, b), name
    for opt, restored in zip(optimizers, fresh_opts):
        for p, q in zip((p for g in opt.param_groups for p in g["params"]),
                        (q for g in restored.param_groups for q in g["params"])):
            for key, value in opt.state[p].items():
                assert torch.equal(torch.as_tensor(value), torch.as_tensor(restored.state[q][key])), key


def test_differing_constants_are_refused_unless_forced(saved):
    cfg, runtime, *_, path = saved
    changed = T.parse_args(["--smoke", "--muon_lr=0.01", "--stop_step=30", "--log_dir=elsewhere"])
    with pytest.raises(T.RunError, match=r"constants differ from the checkpoint's \(muon_lr: 0.05 -> 0.01\); "
                                         r"pass --resume_force=1"):
        T.load_checkpoint(str(path), changed, runtime)
    forced = T.parse_args(["--smoke", "--muon_lr=0.01", "--resume_force=1"])
    assert T.load_checkpoint(str(path), forced, runtime)["step"] == 2


def test_bad_checkpoint_files_are_clear_errors(saved, tmp_path):
    cfg, runtime, *_, path = saved
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    noise = tmp_path / "noise.pt"
    noise.write_bytes(b"not a checkpoint at all")
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    for bad, message in ((truncated, "not a readable checkpoint"), (noise, "not a readable checkpoint"),
                         (empty, "not a readable checkpoint"),
                         (foreign, "not a checkpoint of this script"), (tmp_path / "missing.pt", "no such file")):
        with pytest.raises(T.RunError, match=message) as info:
            T.load_checkpoint(str(bad), cfg, runtime)
        assert str(bad) in str(info.value) and "\n" not in str(info.value)


def test_unwritable_log_dir_is_an_error(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert T.main(["--smoke", f"--log_dir={blocker}/logs"]) == 1
    assert "error: cannot write the log" in capsys.readouterr().err


def start_smoke(tmp_path, *extra):
    return subprocess.Popen([sys.executable, "train_gpt.py", "--smoke", "--num_iterations=150", "--val_loss_every=0",
                             f"--log_dir={tmp_path}", *extra], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def wait_for_line(process, pattern: str, timeout: float = 180) -> str:
    deadline, seen = time.time() + timeout, ""
    while time.time() < deadline:
        line = process.stdout.readline()
        seen += line
        if re.search(pattern, line):
            return seen
        if not line and process.poll() is not None:
            break
    process.kill()
    raise AssertionError(f"no line matching {pattern!r} in:\n{seen[-2000:]}")


def test_sigterm_finishes_the_step_saves_and_exits_nonzero(tmp_path):
    process = start_smoke(tmp_path)
    wait_for_line(process, r"^step:3/150 train_time")
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=180)
    assert process.returncode == 128 + signal.SIGTERM
    assert "received SIGTERM: stopping after this step" in output
    saved = re.search(r"^checkpoint: (\S+)$", output, re.M)
    assert saved, output[-2000:]
    stopped = re.search(rf"stopped on request after step (\d+); continue with --resume={re.escape(saved[1])}", output)
    cfg = T.parse_args(["--smoke", "--num_iterations=150", "--val_loss_every=0"])
    state = T.load_checkpoint(saved[1], cfg, T.select_runtime(cfg))
    # one process finishes the step in progress when the signal came (none, the 4th, or the 5th if the signal
    # came late) and stops there: no further step
    assert stopped and int(stopped[1]) == state["step"] in (3, 4, 5)
    assert not re.search(rf"^step:{state['step'] + 1}/150", output, re.M)


def test_second_signal_exits_at_once(tmp_path):
    process = start_smoke(tmp_path)
    wait_for_line(process, r"^step:2/150 train_time")
    process.send_signal(signal.SIGINT)
    wait_for_line(process, "received SIGINT")
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGINT
    assert "checkpoint:" not in output


def test_bad_resume_path_fails_before_training(tmp_path, capsys):
    assert T.main(["--smoke", f"--resume={tmp_path}/missing.pt", f"--log_dir={tmp_path}"]) == 1
    assert capsys.readouterr().err.strip() == f"error: --resume={tmp_path}/missing.pt: no such file"
    log = next(tmp_path.glob("*.txt")).read_text().splitlines()
    assert not [line for line in log if line.startswith("warm-up")]
    assert log[-1] == f"error: --resume={tmp_path}/missing.pt: no such file"  # the run's log says why it ended


def test_resume_that_cannot_continue_is_refused_before_compiling(saved, tmp_path, capsys):
    cfg, runtime, *_, path = saved
    with pytest.raises(T.RunError, match="the checkpoint is at step 2, so a run of 2 steps has nothing left to train"):
        T.load_checkpoint(str(path), T.parse_args(["--smoke", "--stop_step=2"]), runtime)
    assert T.main(["--smoke", f"--resume={path}", "--resume_force=1", "--model_dim=32", "--head_dim=16",
                   f"--log_dir={tmp_path}"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: --resume={path}: the checkpoint's model has other tensors or shapes than this one")
    assert len(err.splitlines()) == 1
