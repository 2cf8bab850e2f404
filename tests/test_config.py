"""Command-line overrides, schedules and one-line errors."""
import dataclasses

import pytest
import torch

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
    assert T.parse_args(["--model_dim=32", "--smoke"]).model_dim == 32  # before it too


@pytest.mark.parametrize("argv,message", [
    (["--not_a_constant=3"], "unknown constant 'not_a_constant': python train_gpt.py --help lists them"),
    (["--prefix_weights=0.2"], "unknown constant 'prefix_weights': did you mean --prefix_weight?"),
    (["--num_iterations=400", "--num_iterations=379"], "--num_iterations is given twice (the second: "),
    (["--num_iterations=ten"], "--num_iterations=ten: expected int"),
    (["--coordinate_descent_tuning=maybe"], "expected bool"),
    (["num_iterations=3"], "use --name=value, --smoke or --help"),
    (["--num_iterations"], "use --name=value, --smoke or --help"),
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



def test_readme_table_and_help_come_from_the_constants(capsys):
    readme = (T.Path(T.__file__).parent / "README.md").read_text()
    table = T.constants_table()
    assert table in readme, "README.md's constants table is stale: paste train_gpt.constants_table()"
    for name in T.Hyperparameters.__dataclass_fields__:
        assert f"| `{name}` |" in table, name
    assert T.main(["--help"]) == 0
    shown = capsys.readouterr().out
    assert "--seq_len=49152  (48 * 1024) tokens per micro-step on one GPU (one packed sequence)" in shown
    assert all(f"--{name}=" in shown for name in T.Hyperparameters.__dataclass_fields__)
    typed_back = [line.split()[0] for line in shown.splitlines() if line.startswith("    --")]
    assert len(typed_back) == len(T.Hyperparameters.__dataclass_fields__)
    assert T.parse_args(typed_back) == T.Hyperparameters()  # every default shown can be typed back as it is


BAD_CONSTANTS = [
    ("--seq_len=-128", "seq_len=-128 must be positive"), ("--model_dim=-64", "model_dim=-64 must be positive"),
    ("--global_batch_seqs=0", "global_batch_seqs=0 must be positive"),
    ("--attn_block_size=0", "attn_block_size=0 must be positive"), ("--num_heads=0", "num_heads=0 must be positive"),
    ("--bytes_per_token=0", "bytes_per_token=0 must be positive"),
    ("--vocab_size=100", "vocab_size=100: must hold the end-of-text token 50256"),
    ("--muon_lr=-1", "muon_lr=-1.0 must not be negative"), ("--adam_embed_lr=-0.1", "must not be negative"),
    ("--cooldown_frac=1.5", "cooldown_frac=1.5 must lie in [0, 1]"),
    ("--adam_beta2=1", "adam_beta2=1.0 must lie in [0, 1)"), ("--save_every=-5", "save_every=-5 must not be negative"),
    ("--logit_cap=50", "logit_cap=50.0 must be at most 40"),
    ("--head_dim=2 --num_heads=32", "head_dim=2 must be a multiple of 4"), ("--no_attn_layer=12", "no_attn_layer is -1 or a layer"),
    ("--num_layers=4", "needs at least 6 layers"), ("--byte_pool=3", "byte_pool=3 must divide bytes_per_token=16"),
    ("--bigram_hash_rows=1", "bigram_hash_rows=1: use 0 (off) or at least 2"),
    ("--byte_ngram_max=17", "byte_ngram_max=17: n-grams span 2 to bytes_per_token=16"),
    ("--mot_mix=add", "mot_mix='add': use residual or replace"), ("--device=tpu", "device='tpu': use auto"),
    ("--byte_layers=0", "byte_layers=0 must be positive"),
    ("--byte_layers=2", "byte_layers=2, byte_mlp=False shape the byte self-attention: add --byte_self_attn=1"),
    ("--byte_mlp=1", "byte_layers=1, byte_mlp=True shape the byte self-attention"),
    ("--seed_count=0", "seed_count=0 must be positive"),
    ("--seed_count=2 --save_every=10", "seed_count=2 with resume, checkpoints or profile_steps: those are for one run"),
    ("--mtp_weights=0.5;0.25", "mtp_weights='0.5;0.25': give comma-separated numbers"),
    ("--mtp_weights=0.5,-1", "mtp_weights='0.5,-1': -1.0 must lie in [0, 1] (the next token's weight is 1)"),
    ("--mtp_weights=0.5,inf", "mtp_weights='0.5,inf': inf must lie in [0, 1]"),
    ("--mtp_weights=" + ",".join(["0.1"] * 200), "mtp_weights has 200 weights, targets up to 201 tokens ahead, but a "
                                                "sequence holds seq_len=128 tokens"),
    ("--prefix_weight=1e30", "prefix_weight=1e+30 must lie in [0, 1]"),
    ("--byte_target_weight=2", "byte_target_weight=2.0 must lie in [0, 1]"),
    ("--prefix_depth=1000", "prefix_depth=1000: GPT-2's longest prefix chain has 21 links"),
    ("--prefix_choice=often", "prefix_choice='often': use longest or frequent"),
    ("--flex_kernel_options=BLOCK_M:64", "flex_kernel_options='BLOCK_M:64': give name=integer pairs separated by "
                                         "commas"),
    ("--flex_kernel_options=num_warps=four", "flex_kernel_options='num_warps=four': give name=integer pairs"),
    ("--byte_target_count=17", "byte_target_count=17: at most bytes_per_token=16"),
    ("--byte_mixer=ssm --byte_self_attn=0", "byte_mixer='ssm' with byte_self_attn=False, byte_dim=64: the scan mixes"),
    ("--byte_mixer=ssm --byte_self_attn=1 --byte_dim=48", "heads of 64 over twice byte_dim (a multiple of 32)"),
    ("--stop_step=50", "stop_step=50 is past num_iterations=40: lower it"),
    ("--seed=1 --seed=2", "--seed is given twice (the second: '--seed=2'); give each constant once"),
    ("--bench_ranks=3", "bench_ranks=3: the global batch of 8 sequences splits over 1, 2, 4, 8 ranks"),
    ("--rehearse=1", "rehearse=1 lets the ranks of a GPU launch share GPUs; on CPU several processes run as they are"),
    ("--bigram_hash_rows=1000000000000", "bigram_hash_rows=1000000000000, byte_ngram_rows=0: the hashed tables need "
                                         "about 953,674 GiB with their gradients and Adam's moments, more than the"),
    ("--prefix_weight=nan", "prefix_weight=nan must be a finite number"),
    ("--muon_lr=nan", "muon_lr=nan must be a finite number"), ("--attn_scale=inf", "attn_scale=inf must be a finite"),
    ("--num_heads=3", "num_heads=3 x head_dim=32 must equal model_dim=64"),
    ("--model_dim=128", "num_heads=2 x head_dim=32 must equal model_dim=128"),
    ("--seed=99999999999999999999999", "seed=99999999999999999999999: use a whole number from 0 to 2**63"),
    ("--seed=-1", "seed=-1: use a whole number from 0"),
    ("--prefix_depth=0", "prefix_depth=0 must be positive"),
]


@pytest.mark.parametrize("flag,message", BAD_CONSTANTS)
def test_constants_out_of_range_are_one_line_before_any_work(tmp_path, capsys, flag, message):
    assert T.main(["--smoke", *flag.split(), "--use_mot=1", f"--log_dir={tmp_path}"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1, err
    assert not list(tmp_path.iterdir())  # refused before a log was even opened


def test_bench_ranks_under_torchrun_is_one_line_before_any_work(tmp_path, capsys, monkeypatch):
    """bench_ranks times one rank of a larger run in one process: a torchrun launch (WORLD_SIZE set) is refused."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    assert T.main(["--smoke", "--bench_ranks=8", f"--log_dir={tmp_path}"]) == 1
    assert capsys.readouterr().err == "error: bench_ranks=8 times one rank on one process; run it without torchrun\n"
    assert not list(tmp_path.iterdir())


def test_smoke_preset_finds_its_shards_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = T.parse_args(["--smoke"])
    T.check_token_budget(cfg, 1)


def test_a_later_shard_without_its_byte_shard_is_found_at_start(tmp_path, capsys):
    for path in (T.HERE / "data" / "smoke").glob("smoke_*"):
        if not path.name.startswith("smoke_train_000003.bytes"):
            (tmp_path / path.name).symlink_to(path)
    flags = [f"--train_files={tmp_path}/smoke_train_*.bin", f"--val_files={tmp_path}/smoke_val_*.bin",
             f"--log_dir={tmp_path}/logs"]
    assert T.main(["--smoke", "--byte_ngram_rows=101", *flags]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"error: {tmp_path}/smoke_train_000003.bytes16: byte shard is missing; build it with python " \
                  f"data/byte_shards.py {tmp_path}"
    log = next((tmp_path / "logs").glob("*.txt")).read_text()
    assert "\nwarm-up" not in log and log.rstrip().endswith(err)


EDITED = {"num_iterations: int = 1770": "num_iterations: int = 20", "use_mot: bool = False": "use_mot: bool = True"}


def test_file_edits_show_as_changed_constants_and_smoke_overrides_are_logged(tmp_path):
    """A copy of train_gpt.py committed in a fresh repository, then edited as a user would."""
    import subprocess
    import sys
    script = tmp_path / "train_gpt.py"
    script.write_text((T.HERE / "train_gpt.py").read_text())
    git = lambda *args: subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)  # noqa: E731
    git("init", "-q")
    git("add", "train_gpt.py")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "copy")
    source = script.read_text()
    for old, new in EDITED.items():
        assert old in source
        source = source.replace(old, new)
    script.write_text(source)
    probe = ("import train_gpt as T; d = T.committed_defaults(); print(T.changed_constants(T.parse_args(['--seed=3']), d));"
             "print(T.preset_notes(['--smoke'], d)); print(T.preset_notes(['--smoke', '--num_iterations=20'], d))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=True)
    changed, notes, kept = out.stdout.splitlines()
    assert changed == "{'use_mot': True, 'num_iterations': 20, 'seed': 3}"
    assert notes == "['--smoke sets num_iterations=40 over the edited num_iterations=20 (pass --num_iterations=20 to keep it)']"
    assert kept == "[]"


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


@pytest.fixture
def two_fake_gpus(monkeypatch):
    """select_runtime's view of a host with two Hopper GPUs, on a machine without any."""
    monkeypatch.setattr(T.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(T.torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(T.torch.cuda, "set_device", lambda device: None)
    monkeypatch.setattr(T.torch.cuda, "get_device_capability", lambda device: (9, 0))


@pytest.mark.parametrize("rank", [0, 1, 2, 5, 7])
def test_rehearsal_ranks_share_the_gpus_over_gloo(two_fake_gpus, monkeypatch, capsys, rank):
    monkeypatch.setenv("WORLD_SIZE", "8")
    monkeypatch.setenv("RANK", str(rank))
    monkeypatch.setenv("LOCAL_RANK", str(rank))
    cfg = T.parse_args(["--rehearse=1"])
    runtime = T.select_runtime(cfg)
    assert (runtime.device, runtime.exchange, runtime.gpus) == (T.torch.device("cuda", rank % 2), "gloo", 2)
    monkeypatch.setattr(T.torch.cuda, "get_device_name", lambda device: "H100")
    monkeypatch.setattr(T.torch.cuda, "max_memory_allocated", lambda: 0)
    line = T.result_line(cfg, runtime, 3.0, 1.0, 1.0)
    assert " 8 ranks on 2 x H100 (a rehearsal: its times are not the run's) " in line
    if rank < 2:  # as many ranks as GPUs: a real launch, the flag changes nothing
        monkeypatch.setenv("WORLD_SIZE", "2")
        launch = T.select_runtime(cfg)
        assert launch.exchange == "nccl" and not launch.rehearsal
        assert " 2 x H100 `" in T.result_line(cfg, launch, 3.0, 1.0, 1.0)
        return
    monkeypatch.setenv("WORLD_SIZE", "8")
    with pytest.raises(T.RunError, match=f"local rank {rank} but 2 GPU\\(s\\) visible: .* add --rehearse=1"):
        T.select_runtime(T.parse_args([]))
    assert T.main(["--num_iterations=3"]) == 1  # one line, from rank 0 alone
    assert capsys.readouterr().err == ""


def test_bad_shard_patterns_and_an_unwritable_devlog_are_one_line_before_any_work(tmp_path, capsys, monkeypatch):
    smoke = T.HERE / "data" / "smoke"
    cases = [([f"--train_files={smoke}"], f"{smoke} (training) is not a file: give a glob of shard files"),
             ([f"--val_files={smoke}/smoke_train_000001.bin"],
              f"{smoke}/smoke_train_000001.bin is both a training and a validation shard"),
             (["--devlog=note"], f"--devlog: cannot append to {tmp_path}")]
    monkeypatch.setattr(T, "DEVLOG", tmp_path)  # a directory: no file can be appended there
    for flags, message in cases:
        assert T.main(["--smoke", *flags, f"--log_dir={tmp_path}/logs"]) == 1
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1, err


def test_run_sh_prints_the_help_once():
    result = T.subprocess.run(["bash", str(T.HERE / "run.sh"), "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.count("Constants (override as --name=value") == 1


def test_the_launch_check_needs_the_gpus_it_launches_on(capsys, monkeypatch):
    if T.torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    monkeypatch.setenv("WORLD_SIZE", "8")
    assert T.main(["--check", "--rehearse=1", "--seq_len=4096"]) == 1  # README's rehearsal, on a CPU machine
    assert capsys.readouterr().err == "error: no CUDA device found: the full run needs GPUs; try python train_gpt.py " \
                                      "--smoke on CPU\n"


def test_run_sh_checks_the_launch_in_one_process_first(tmp_path):
    """A bad constant or missing data is one line from one process, before torchrun starts any rank."""
    for flags, message in ((["--num_heads=3"], "error: num_heads=3 x head_dim=128 must equal model_dim=768"),
                           ([f"--train_files={tmp_path}/none_*.bin", "--device=cpu"], "error: no training shards match")):
        result = T.subprocess.run(["bash", str(T.HERE / "run.sh"), *flags, f"--log_dir={tmp_path}"],
                                  capture_output=True, text=True, timeout=120)
        assert result.returncode == 1 and result.stderr.strip().startswith(message), result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and "torchrun" not in result.stderr
    env = dict(T.os.environ, WORLD_SIZE="2")
    checked = T.subprocess.run([T.sys.executable, str(T.HERE / "train_gpt.py"), "--check", "--smoke"], env=env,
                               capture_output=True, text=True, timeout=120)
    assert checked.returncode == 0 and "fit a run of 2 process(es)" in checked.stdout


def test_a_relative_log_dir_gives_absolute_printed_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = T.parse_args(["--smoke", "--log_dir=runs"])
    log = T.Logger(cfg, T.select_runtime(cfg))
    assert log.path.is_absolute() and log.path.parent == tmp_path / "runs" and log.path.is_file()


def test_flex_kernel_options_reach_the_flexattention_backend():
    assert T.parse_kernel_options("") == {}
    assert T.parse_kernel_options("BLOCK_M=64, num_warps=4") == {"BLOCK_M": 64, "num_warps": 4}
    flex = T.Runtime(torch.device("cpu"), 0, 1, compiled=False, flex=True, fp8_head=False, embed_dtype=torch.float32)
    cfg = T.parse_args(["--flex_kernel_options=BLOCK_M=64,BLOCK_N=32"])
    assert T.attention_backend(flex, cfg).kernel_options == {"BLOCK_M": 64, "BLOCK_N": 32}
    assert T.attention_backend(flex, T.parse_args([])).kernel_options is None  # FlexAttention's own choice
    assert isinstance(T.attention_backend(dataclasses.replace(flex, flex=False), cfg), T.DenseAttentionBackend)
