"""Command-line overrides, schedules and one-line errors."""
import pytest

import train_gpt as T


def test_overrides_are_parsed_to_the_constants_types():
    cfg = T.parse_args(["--num_iterations=40", "--muon_lr=0.02", "--train_files=a/*.bin",
                        "--coordinate_descent_tuning=1", "--val_tokens=1_048_576"])
    assert cfg.num_iterations == 40 and isinstance(cfg.num_iterations, int)
    assert cfg.muon_lr == 0.02 and cfg.train_files == "a/*.bin"
    assert cfg.coordinate_descent_tuning is True and cfg.val_tokens == 1048576
    assert T.parse_args(["--coordinate_descent_tuning=false"]).coordinate_descent_tuning is False
    assert T.changed_constants(cfg) == {"num_iterations": 40, "muon_lr": 0.02, "train_files": "a/*.bin",
                                        "coordinate_descent_tuning": True, "val_tokens": 1048576}


def test_smoke_preset_then_overrides_win_in_any_order():
    smoke = T.parse_args(["--smoke"])
    assert smoke.device == "cpu" and smoke.model_dim == T.SMOKE_PRESET["model_dim"]
    assert T.parse_args(["--num_iterations=7", "--smoke"]).num_iterations == 7
    assert T.parse_args(["--smoke", "--model_dim=32"]).model_dim == 32
    assert T.parse_args([]).model_dim == 768
    # a later flag for the same constant wins: the runners append --extra flags after their own
    assert T.parse_args(["--num_iterations=400", "--num_iterations=379"]).num_iterations == 379


@pytest.mark.parametrize("argv,message", [
    (["--not_a_constant=3"], "unknown constant 'not_a_constant'; valid names: train_files, val_files"),
    (["--num_iterations=ten"], "--num_iterations=ten: expected int"),
    (["--coordinate_descent_tuning=maybe"], "expected bool"),
    (["num_iterations=3"], "use --name=value or --smoke"),
    (["--num_iterations"], "use --name=value or --smoke"),
])
def test_bad_overrides_fail_with_a_message(argv, message):
    with pytest.raises(T.RunError, match=message.replace("(", r"\(")):
        T.parse_args(argv)


def test_every_constant_of_the_smoke_preset_exists():
    names = {f for f in T.Hyperparameters.__dataclass_fields__}
    assert set(T.SMOKE_PRESET) <= names


def test_schedules_follow_the_record():
    cfg = T.Hyperparameters()
    assert T.lr_multiplier(0, cfg) == 1.0
    assert T.lr_multiplier(int(0.6 * 1770), cfg) == 1.0
    assert T.lr_multiplier(1770, cfg) == pytest.approx(0.1)
    assert T.lr_multiplier(1416, cfg) == pytest.approx(0.1 + 0.9 * (354 / 1770) / 0.4)
    assert T.muon_momentum(0, cfg) == 0.85 and T.muon_momentum(150, cfg) == pytest.approx(0.9)
    assert T.muon_momentum(1000, cfg) == 0.95
    # the long window grows in whole blocks of 128 tokens from 1 block to 1792 tokens
    assert T.window_blocks(0, cfg) == 1 and T.window_blocks(1770, cfg) == 14
    assert T.window_blocks(885, cfg) == 7  # 864 tokens round up to 7 blocks


def test_world_size_that_does_not_divide_the_batch_is_an_error(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "3")
    with pytest.raises(T.RunError, match="world size 3 does not divide global_batch_seqs=8"):
        T.select_runtime(T.parse_args(["--smoke"]))


def test_full_run_without_cuda_suggests_smoke(capsys):
    if T.torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert T.main(["--num_iterations=3"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == "error: no CUDA device found: the full run needs GPUs; try python train_gpt.py --smoke on CPU"


def test_missing_shards_name_the_command_that_fetches_them(tmp_path, capsys):
    assert T.main(["--smoke", f"--train_files={tmp_path}/none_*.bin", f"--log_dir={tmp_path}"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: no training shards match") and "data/cached_fineweb10B.py" in err
    assert len(err.splitlines()) == 1


def test_too_few_tokens_for_the_steps_is_an_error(tmp_path, capsys):
    assert T.main(["--smoke", "--num_iterations=100000", f"--log_dir={tmp_path}"]) == 1
    assert "error: training needs 102400001 tokens (100000 steps of 8 x 128)" in capsys.readouterr().err


def test_nan_loss_stops_and_names_the_step():
    with pytest.raises(T.RunError, match="training loss is nan at step 17"):
        T.check_finite(T.torch.tensor(float("nan")), 17)
    T.check_finite(T.torch.tensor(2.5), 1)


def test_readme_documents_every_constant():
    readme = (T.Path(T.__file__).parent / "README.md").read_text()
    for name in T.Hyperparameters.__dataclass_fields__:
        assert f"| `{name}` |" in readme, f"README.md does not document --{name}"


def test_devlog_appends_the_result_line_with_its_note(tmp_path, monkeypatch):
    journal = tmp_path / "DEVLOG.md"
    journal.write_text("# DEVLOG\n")
    monkeypatch.setattr(T, "DEVLOG", journal)
    cfg = T.parse_args(["--smoke", "--use_mot=1", "--log_dir=/somewhere"])
    line = T.result_line(cfg, T.select_runtime(cfg), 7.12345, 64_000.0, 1016.4)
    assert line.startswith("- ") and "use_mot=True" in line and "log_dir" not in line
    assert "val_loss 7.1235, train_time 64.0 s, median step 1016.40 ms" in line
    assert T.append_to_devlog(line, "first MoT smoke") == journal
    assert journal.read_text() == f"# DEVLOG\n{line}. first MoT smoke\n"
