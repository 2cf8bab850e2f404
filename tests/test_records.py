"""records/plot.py reads train_gpt.py logs; records/bench_mot.py reads the profiler's totals; records/study.py's
statistics over seeds; records/short_track.py at equal time."""
import re
import subprocess
import sys
import threading
import time

import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / "records"))
import bench_mot  # noqa: E402
import plot  # noqa: E402
import study  # noqa: E402

LOG = """changed constants (against the committed defaults): {{'use_mot': {mot}, 'seed': {seed}, 'log_dir': 'x'}}
step:0/100 val_loss:10.8258 train_time:0ms step_avg:0.02ms
step:1/100 train_time:100ms step_avg:100.00ms
step:50/100 val_loss:6.0000 train_time:{t50}ms step_avg:100.00ms
step:100/100 val_loss:5.0000 train_time:{t100}ms step_avg:100.00ms
final val_loss:5.0000 train_time:{t100}ms median step:100.00ms
"""
VAL_LINES = re.compile(r"^step:\d+/\d+ val_loss:[\d.]+", re.M)


def shard_folder(path):
    """path holding one (empty) training shard of the runners' default name: their upfront check passes, and
    the runs themselves are faked."""
    path.mkdir(exist_ok=True)
    (path / "fineweb_train_000001.bin").touch()
    return path


def write_log(path, mot, seed, t50, t100):
    path.write_text(LOG.format(mot=mot, seed=seed, t50=t50, t100=t100))
    return plot.read_log(path)


def test_runs_are_labelled_by_what_differs_and_compared_at_equal_time(tmp_path):
    fast = write_log(tmp_path / "a.txt", False, 0, 5000, 10000)
    slow = write_log(tmp_path / "b.txt", True, 0, 6000, 12000)
    assert fast["points"] == [(0, 0.0, 10.8258), (50, 5.0, 6.0), (100, 10.0, 5.0)]
    assert plot.distinguishing_labels([fast, slow]) == ["use_mot=False", "use_mot=True"]
    # at the fast run's 10 s the slow one sits between its validations at 6 s (6.0) and 12 s (5.0)
    assert plot.loss_at_time(slow["points"], 10.0) == pytest.approx(6.0 - 4 / 6)
    table = plot.markdown_table([fast, slow], ["fast", "slow"])
    assert "| slow | 100 | 5.0000 | 12.0 | 5.3333 |" in table
    assert "| fast | 100 | 5.0000 | 10.0 | 5.0000 |" in table


def test_plot_writes_a_png(tmp_path):
    write_log(tmp_path / "a.txt", False, 0, 5000, 10000)
    write_log(tmp_path / "b.txt", False, 1, 5100, 10100)
    plot.main([str(tmp_path / "a.txt"), str(tmp_path / "b.txt"), "--out", str(tmp_path / "p.png")])
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_log_without_validation_is_an_error(tmp_path):
    (tmp_path / "empty.txt").write_text("step:1/100 train_time:100ms step_avg:100.00ms\n")
    with pytest.raises(SystemExit, match="has no validation lines"):
        plot.read_log(tmp_path / "empty.txt")


def test_profiler_totals_are_read_in_milliseconds():
    assert bench_mot.milliseconds("175.385ms") == pytest.approx(175.385)
    assert bench_mot.milliseconds("830.5us") == pytest.approx(0.8305)
    assert bench_mot.milliseconds("1.25s") == pytest.approx(1250.0)


FAKE_RUN = """warm-up and compile: 30.0s
final val_loss:5.2000 train_time:1000ms median step:{step}ms ({micro}ms per micro-step, steps 21-40)
peak memory allocated: 30000 MiB reserved: 50000 MiB
Self CUDA time total: {kernel}
"""


def test_bench_times_per_micro_step_and_divides_by_the_baseline(monkeypatch, capsys, tmp_path):
    """Each variant runs with --micro_steps micro-steps per step; kernel time is per micro-step."""
    commands = []

    def fake_run(command, **kwargs):
        commands.append(command)
        cross = "--use_mot=1" in command
        text = FAKE_RUN.format(step=880.0 if cross else 800.0, micro=110.0 if cross else 100.0,
                               kernel="1.76s" if cross else "1.6s")  # two profiled steps of 8 micro-steps
        return bench_mot.subprocess.CompletedProcess(command, 0, stdout=text, stderr="")

    monkeypatch.setattr(bench_mot.subprocess, "run", fake_run)
    bench_mot.main(["--data", str(shard_folder(tmp_path)), "--variants", "baseline,cross", "--micro_steps", "8",
                    "--profile_steps", "2", "--log_dir", str(tmp_path / "logs")])
    assert all("--global_batch_seqs=8" in c and "--profile_steps=2" in c for c in commands)
    table = capsys.readouterr().out
    assert "| baseline | 100.00 | 1.000 | 100.00 | 1.000 | 30000 | 30 | 5.2000 |" in table
    assert "| cross | 110.00 | 1.100 | 110.00 | 1.100 | 30000 | 30 | 5.2000 |" in table


def fake_trainer(monkeypatch, ms: float, kernel: str) -> list[list[str]]:
    """Every bench run prints ms per step (one micro-step) and the kernel total; returns their commands."""
    commands = []

    def fake_run(command, **kwargs):
        commands.append(command)
        return bench_mot.subprocess.CompletedProcess(command, 0, stdout=FAKE_RUN.format(step=ms, micro=ms,
                                                                                        kernel=kernel), stderr="")

    monkeypatch.setattr(bench_mot.subprocess, "run", fake_run)
    return commands


def test_bench_estimates_one_rank_of_a_larger_run(monkeypatch, capsys, tmp_path):
    commands = fake_trainer(monkeypatch, 90.0, "85ms")
    bench_mot.main(["--data", str(shard_folder(tmp_path)), "--variants", "baseline", "--ranks", "8"])
    assert "--global_batch_seqs=1" in commands[0] and "--bench_ranks=8" in commands[0]
    out = capsys.readouterr().out
    assert "1 micro-steps per optimizer step one rank of 8 GPUs" in out
    assert "| baseline | 90.00 | 1.000 | 85.00 | 1.000 |" in out


def test_bench_runs_several_gpus_through_torchrun(monkeypatch, capsys, tmp_path):
    commands = fake_trainer(monkeypatch, 92.0, "88ms")
    bench_mot.main(["--data", str(shard_folder(tmp_path)), "--variants", "baseline", "--nproc", "2", "--micro_steps",
                    "1"])
    command = commands[0]
    assert command[:5] == [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    assert command[5] == str(bench_mot.ROOT / "train_gpt.py")
    assert "--global_batch_seqs=2" in command and "--val_tokens=524288" in command  # each rank: its own share
    out = capsys.readouterr().out
    assert "1 micro-steps per optimizer step on each of 2 GPUs" in out and "| baseline | 92.00 | 1.000 | 88.00 |" in out
    with pytest.raises(SystemExit, match="give --nproc only without it"):
        bench_mot.main(["--data", str(tmp_path), "--nproc", "2", "--ranks", "8"])


def test_bench_times_another_checkout_beside_this_one(monkeypatch, capsys, tmp_path):
    """--against runs every variant in both trees, one after the other in alternating order, each divided by
    its own tree's baseline, and a last table of this tree over the other; --against_data gives the other
    tree its own shards."""
    old, old_shards = tmp_path / "old", shard_folder(tmp_path / "old_shards")
    shard_folder(tmp_path)
    old.mkdir()
    (old / "train_gpt.py").write_text("")
    runs = []

    def fake_run(command, **kwargs):
        tree = "old" if command[1] == str(old / "train_gpt.py") else "new"
        assert kwargs["cwd"] == (old if tree == "old" else bench_mot.ROOT)
        assert command[2] == f"--train_files={old_shards if tree == 'old' else tmp_path}/fineweb_train_*.bin"
        runs.append((tree, "--use_mot=1" in command))
        ms = {("new", False): 90.0, ("new", True): 99.0, ("old", False): 100.0, ("old", True): 120.0}[runs[-1]]
        text = FAKE_RUN.format(step=ms, micro=ms, kernel=f"{ms - 10}ms")
        return bench_mot.subprocess.CompletedProcess(command, 0, stdout=text, stderr="")

    monkeypatch.setattr(bench_mot.subprocess, "run", fake_run)
    bench_mot.main(["--data", str(tmp_path), "--variants", "baseline,cross", "--ranks", "8", "--against", str(old),
                    "--against_data", str(old_shards)])
    assert runs == [("new", False), ("old", False), ("old", True), ("new", True)]
    out = capsys.readouterr().out
    assert "| cross | 99.00 | 1.100 | 89.00 | 1.113 |" in out
    assert "| cross@old | 120.00 | 1.200 | 110.00 | 1.222 |" in out
    assert "| baseline | 0.900 | 0.889 |" in out and "| cross | 0.825 | 0.809 |" in out
    with pytest.raises(SystemExit, match="holds no train_gpt.py"):
        bench_mot.main(["--data", str(tmp_path), "--against", str(tmp_path / "missing")])


def test_short_track_runs_each_variant_and_seed_at_equal_time_and_plots(tmp_path, capsys, monkeypatch):
    import short_track
    monkeypatch.chdir(tmp_path)  # relative --out and --data are taken from here, not from the runs' directory
    out = tmp_path / "experiment"
    (tmp_path / "costs.md").write_text("| variant | ms / micro-step | x baseline |\n| --- | --- | --- |\n"
                                       "| baseline | 80.00 | 1.000 |\n| cross | 160.00 | 2.000 |\n")
    (tmp_path / "shards").symlink_to(ROOT / "data" / "smoke")
    common = ["--data", "shards", "--name", "smoke", "--steps", "4", "--equal_time", "costs.md",
              "--extra=--smoke --val_loss_every=2 --val_tokens=2048"]
    short_track.main([*common, "--out", "experiment", "--variants", "baseline,cross", "--seeds", "0,1",
                      "--seeds_per_process", "2"])
    logs = sorted(p.name for p in out.glob("*.txt"))
    assert logs == ["baseline_seed0.txt", "baseline_seed1.txt", "cross_seed0.txt", "cross_seed1.txt"]
    assert not (out / "logs").exists()
    second = (out / "baseline_seed1.txt").read_text()
    assert "'seed': 1" in second and "seed 1: run 2 of 2 in this process" in second
    short_track.main([*common, "--out", "alone", "--variants", "baseline", "--seeds", "1"])
    alone = (tmp_path / "alone" / "baseline_seed1.txt").read_text()
    assert "run 2 of 2" not in alone
    assert VAL_LINES.findall(second) == VAL_LINES.findall(alone) != []  # as if it had a process of its own
    cross = (out / "cross_seed0.txt").read_text()
    assert "'use_mot': True" in cross and "'num_iterations': 2" in cross  # twice the baseline's cost: half the steps
    assert "'num_iterations': 4" in (out / "baseline_seed0.txt").read_text()
    assert (out / "val_loss.png").exists()
    table = capsys.readouterr().out
    assert "| baseline_seed0 | 4 |" in table and "| cross_seed1 | 2 |" in table
    with pytest.raises(SystemExit, match="costs.md has no cost for self_w16"):
        short_track.main(["--data", "shards", "--name", "smoke", "--out", "x", "--variants", "self_w16",
                          "--equal_time", "costs.md"])


def test_seeds_are_grouped_into_consecutive_runs_per_process():
    import short_track
    assert short_track.seed_groups([0, 1, 2, 3], 3) == [[0, 1, 2], [3]]
    assert short_track.seed_groups([0, 2, 3, 4, 7], 2) == [[0], [2, 3], [4], [7]]
    assert short_track.seed_groups([5, 4], 4) == [[5], [4]]
    assert short_track.seed_groups([0, 1], 1) == [[0], [1]]


def test_short_track_reports_a_failed_run(tmp_path):
    """A real train_gpt.py process without validation shards: its one error line."""
    import short_track
    shard_folder(tmp_path)
    with pytest.raises(SystemExit, match=f"baseline seed 0 failed: error: no validation shards match '{tmp_path}"):
        short_track.main(["--data", str(tmp_path), "--out", str(tmp_path / "x"), "--variants", "baseline",
                          "--extra=--device=cpu"])


def test_short_track_keeps_the_seeds_that_finished_before_the_deadline(tmp_path, monkeypatch):
    import short_track
    timeouts = []

    def fake_train(command, timeout=None, **kwargs):  # cross is stopped after its first seed
        mot = "--use_mot=1" in command
        first = int(next(a for a in command if a.startswith("--seed="))[7:])
        logs = [tmp_path / f"{mot}{seed}.log" for seed in (first, first + 1)]
        for seed, log in zip((first, first + 1), logs):
            write_log(log, mot, seed, 5000, 10000)
        timeouts.append(timeout)
        if mot:
            raise subprocess.TimeoutExpired(command, timeout, output=f"log: {logs[0]}\n".encode())
        return subprocess.CompletedProcess(command, 0, stdout="".join(f"log: {log}\n" for log in logs), stderr="")

    monkeypatch.setattr(short_track.subprocess, "run", fake_train)
    out = tmp_path / "experiment"
    common = ["--data", str(shard_folder(tmp_path)), "--out", str(out), "--variants", "baseline,cross", "--seeds",
              "0,1", "--seeds_per_process", "2"]
    with pytest.raises(SystemExit, match=r"1 of 2 processes did not finish every seed: cross seed 1 stopped at the "
                                         r"deadline$"):
        short_track.main([*common, "--deadline", "100"])
    assert sorted(p.name for p in out.glob("*.txt")) == ["baseline_seed0.txt", "baseline_seed1.txt", "cross_seed0.txt"]
    assert "'seed': 0" in (out / "cross_seed0.txt").read_text() and (out / "val_loss.png").exists()
    assert len(timeouts) == 2 and all(0 < t <= 100 for t in timeouts)
    with pytest.raises(SystemExit, match="baseline seed 0,1 not started before the deadline; cross seed 0,1 not"):
        short_track.main([*common, "--out", str(tmp_path / "late"), "--deadline", "0"])
    assert len(timeouts) == 2 and not list((tmp_path / "late").glob("*.txt"))


def test_student_t_quantiles_match_the_tables():
    for df, expected in ((1, 12.7062), (2, 4.3027), (5, 2.5706), (30, 2.0423), (10 ** 6, 1.9600)):
        assert study.student_t_quantile(0.975, df) == pytest.approx(expected, abs=2e-4)


def test_welch_interval_by_hand():
    # means 3.1 and 3.3875, variances 0.01 and 0.021875 / 3; se^2 = 0.01 / 3 + 0.021875 / 12 = 0.00515625;
    # df = se^4 / ((0.01 / 3)^2 / 2 + (0.021875 / 12)^2 / 3) = 3.990; t(0.975, 3.990) = 2.7777
    diff, low, high = study.welch_interval([3.0, 3.1, 3.2], [3.3, 3.35, 3.5, 3.4])
    assert diff == pytest.approx(-0.2875)
    assert high - diff == pytest.approx(2.7777 * 0.00515625 ** 0.5, rel=1e-3) and diff - low == pytest.approx(high - diff)


def test_study_table_groups_seeds_by_variant(tmp_path):
    for name, seed, t100 in (("baseline", 0, 10000), ("baseline", 1, 10000), ("cross", 0, 11000), ("cross", 1, 11000)):
        write_log(tmp_path / f"{name}_seed{seed}.txt", name == "cross", seed, t100 // 2, t100)
    (tmp_path / "baseline_seed1.txt").write_text((tmp_path / "baseline_seed1.txt").read_text()
                                                 .replace("step:100/100 val_loss:5.0000", "step:100/100 val_loss:5.2000"))
    runs = study.read_runs([tmp_path])
    table = study.results_table(runs, "baseline")
    assert "| baseline | 100 | 2 | 5.1000 | 0.1414 | | |" in table
    assert "| cross | 100 | 2 | 5.0000 | 0.0000 | -0.1000 | [-1.3706, +1.1706] |" in table  # t(0.975, 1) x 0.1
    study.plot_bands(runs, tmp_path / "bands.png", "test", {"baseline": 1.0, "cross": 1.1})
    assert (tmp_path / "bands.png").stat().st_size > 1000
    (tmp_path / "cross_seed2.txt").write_text(LOG.format(mot=True, seed=2, t50=1, t100=2).replace("/100", "/90")
                                              .replace("step:100/", "step:90/"))
    with pytest.raises(SystemExit, match="the runs of cross end at different steps"):
        study.read_runs([tmp_path])


def test_study_takes_logs_by_path_and_runs_known_by_their_printed_row(tmp_path):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
    write_log(tmp_path / "a" / "baseline_seed0.txt", False, 0, 5000, 10000)
    write_log(tmp_path / "b" / "cross_seed0.txt", True, 0, 5000, 10000)
    write_log(tmp_path / "b" / "cross_seed9.txt", True, 9, 5000, 10000)  # in b, but not given
    printed = tmp_path / "printed.txt"
    printed.write_text("cross seed 1 (100 steps): /tmp/lost/cross_seed1.txt\n"
                       "| run | steps | final val loss | train time s | val loss at 12.0 s |\n"
                       "| --- | --- | --- | --- | --- |\n"
                       "| cross_seed1 | 100 | 4.9000 | 12.0 | 4.9000 |\n")
    runs = study.read_runs([tmp_path / "a", tmp_path / "b" / "cross_seed0.txt"], [printed])
    assert [len(runs["baseline"]), len(runs["cross"])] == [1, 2]
    assert "| cross | 100 | 2 | 4.9500 | 0.0707 |" in study.results_table(runs, "baseline")
    with pytest.raises(SystemExit, match="no row for cross"):
        study.plot_bands(runs, tmp_path / "bands.png", "test", {"baseline": 1.0})
    study.plot_bands(runs, tmp_path / "bands.png", "test", {"baseline": 1.0, "cross": 1.1})  # the row: no curve
    assert (tmp_path / "bands.png").stat().st_size > 1000
    with pytest.raises(SystemExit, match="cross seed 1 twice"):
        study.read_runs([tmp_path / "b" / "cross_seed0.txt"], [printed, printed])
    for wrong in (tmp_path / "missing", printed):  # not there; not a log's name
        with pytest.raises(SystemExit, match="is neither a folder nor a <variant>_seed<k>.txt log"):
            study.read_runs([wrong])
    (tmp_path / "empty.txt").write_text("| run | steps | final val loss |\n")
    with pytest.raises(SystemExit, match="holds no records/plot.py table rows"):
        study.read_runs([tmp_path / "a"], [tmp_path / "empty.txt"])


def test_short_track_spreads_the_runs_over_gpus(tmp_path, monkeypatch):
    import short_track
    running, most, ran, lock = {}, {}, [], threading.Lock()

    def fake_train(command, env=None, **kwargs):  # one train_gpt.py process: which GPU, how many at once
        gpu, seed = env["CUDA_VISIBLE_DEVICES"], int(next(a for a in command if a.startswith("--seed="))[7:])
        mot = "--use_mot=1" in command
        with lock:
            running[gpu] = running.get(gpu, 0) + 1
            most[gpu] = max(most.get(gpu, 0), running[gpu])
            ran.append((mot, seed, gpu, env["LOCAL_RANK"]))
        time.sleep(0.2)
        log = tmp_path / f"{mot}{seed}.log"
        write_log(log, mot, seed, 5000, 10000)
        with lock:
            running[gpu] -= 1
        return subprocess.CompletedProcess(command, 0, stdout=f"log: {log}\n", stderr="")

    monkeypatch.setattr(short_track.subprocess, "run", fake_train)
    out = tmp_path / "experiment"
    short_track.main(["--data", str(shard_folder(tmp_path)), "--out", str(out), "--variants", "baseline,cross",
                      "--seeds", "0,1,2,3", "--gpus", "3,5", "--parallel", "2"])
    assert sorted((mot, seed) for mot, seed, _, _ in ran) == [(m, s) for m in (False, True) for s in range(4)]
    assert {gpu for _, _, gpu, _ in ran} == {"3", "5"} and {rank for _, _, _, rank in ran} == {"0"}
    assert most == {"3": 2, "5": 2}  # two at a time on each GPU, never more
    assert sorted(p.name for p in out.glob("*_seed*.txt")) == [f"{v}_seed{s}.txt" for v in ("baseline", "cross")
                                                               for s in range(4)]
    assert "'use_mot': True, 'seed': 2" in (out / "cross_seed2.txt").read_text()
    with pytest.raises(SystemExit, match="--gpus comma-separated GPU indices"):
        short_track.main(["--data", str(tmp_path), "--out", str(out), "--gpus", "cuda:0"])


def test_a_cost_row_may_leave_the_time_unmeasured(tmp_path):
    import short_track
    (tmp_path / "costs.md").write_text("| variant | ms / micro-step | x baseline |\n| --- | --- | --- |\n"
                                       "| baseline | 80.00 | 1.000 |\n| ngram_bigram | estimated | 1.052 |\n")
    assert short_track.read_costs(tmp_path / "costs.md") == {"baseline": 1.0, "ngram_bigram": 1.052}


def write_run(path, mot, seed, steps, final_loss):
    """A log of the given length whose last validation is final_loss."""
    text = LOG.format(mot=mot, seed=seed, t50=steps * 50, t100=steps * 100).replace("/100", f"/{steps}")
    path.write_text(text.replace("step:100/", f"step:{steps}/").replace("val_loss:5.0000", f"val_loss:{final_loss}"))


def test_break_even_cost_from_the_baselines_curve(tmp_path, capsys):
    steps400, curve = tmp_path / "s400", [tmp_path / "s380", tmp_path / "s420"]
    for folder in (steps400, *curve):
        folder.mkdir()
    for steps, folder in ((380, curve[0]), (400, steps400), (420, curve[1])):
        for seed, offset in ((0, -0.01), (1, 0.01)):  # the baseline: 4.11 at 400 steps, 0.005 less per step
            write_run(folder / f"baseline_seed{seed}.txt", False, seed, steps, round(6.11 - 0.005 * steps + offset, 4))
    for seed, loss in ((0, 4.05), (1, 4.07)):  # 0.05 better at 400 steps: worth 10 baseline steps
        write_run(steps400 / f"cross_seed{seed}.txt", True, seed, 400, loss)
    study.main([str(steps400), "--curve", *map(str, curve)])
    printed = capsys.readouterr().out
    assert "baseline over [380, 400, 420] steps: loss 6.1100 -5.000e-03 x steps" in printed
    assert "1 % of the time at 400 steps is worth 0.0200" in printed
    assert "| baseline | 400 | 2 | 4.1100 | 0.0141 | | | 1.000 |" in printed
    # the interval, in steps squared: the two losses' standard error over the slope, 0.0001 / 0.005 ** 2 = 4;
    # the line's residuals (+-0.01, 4 degrees of freedom: 0.00015) over the slope squared, times 1/6 for its
    # mean and 0.05 ** 2 / (0.005 ** 2 * 1600) for its slope: 1.375
    dof = (4 + 1.375) ** 2 / (4 ** 2 / 1 + 1.375 ** 2 / 4)
    half = study.student_t_quantile(0.975, dof) * (4 + 1.375) ** 0.5 / 400
    assert "| cross | 400 | 2 | 4.0600 | 0.0141 | -0.0500 |" in printed
    assert printed.rstrip().endswith(f"| 1.025 | [{1.025 - half:.3f}, {1.025 + half:.3f}] |")
    exact = study.fit_line([(380, 4.21), (400, 4.11), (420, 4.01)])  # no noise anywhere: no width
    assert study.break_even(exact, [4.06, 4.06], 400) == pytest.approx((1.025, 1.025, 1.025))
    with pytest.raises(SystemExit, match="needs baseline runs of two lengths or more"):
        study.main([str(steps400), "--curve", str(steps400)])


def test_runner_flags_name_each_constant_once_the_later_value_winning():
    assert bench_mot.merged_flags(["--a=1", "--smoke", "--b=2", "--a=3"]) == ["--a=3", "--smoke", "--b=2"]
    command = bench_mot.train_command(ROOT, "x", "--val_tokens=1", "--seed=4", "--val_tokens=2")
    assert command[-2:] == ["--val_tokens=2", "--seed=4"]


def test_bench_refuses_bad_inputs_before_any_run_and_fails_when_a_run_fails(monkeypatch, tmp_path, capsys):
    commands = fake_trainer(monkeypatch, 90.0, "85ms")
    for argv, message in ((["--data", str(tmp_path / "nowhere")], "nowhere holds no fineweb_train_.*bin shards"),
                          (["--data", str(shard_folder(tmp_path)), "--profile_steps", "0"], "at least 1 profiled step"),
                          (["--data", str(tmp_path), "--variants", "prefix,prefix"], "names a variant twice")):
        with pytest.raises(SystemExit, match=message):
            bench_mot.main(argv)
    assert commands == []
    crashed = ("Traceback (most recent call last):\ntorch._inductor.exc.InductorError: LoweringException: AssertionError: "
               "wrong ndim () [1]\n\nSet TORCHDYNAMO_VERBOSE=1 for the internal stack trace (please do this especially "
               "if you're reporting a bug to PyTorch).\n")
    monkeypatch.setattr(bench_mot.subprocess, "run", lambda command, **kwargs: bench_mot.subprocess.CompletedProcess(
        command, 1, stdout="", stderr=crashed))
    with pytest.raises(SystemExit, match=r"error: 2 of 2 runs failed \(baseline, cross\)"):
        bench_mot.main(["--data", str(tmp_path), "--variants", "baseline,cross"])
    assert "| cross | torch._inductor.exc.InductorError: LoweringException: AssertionError: wrong ndim () [1] |" \
        in capsys.readouterr().out
    rank_failed = ("[rank1]: torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 12.28 GiB.\n"
                   "torch.distributed.elastic.multiprocessing.errors.ChildFailedError: \n====\ntrain_gpt.py FAILED\n")
    assert bench_mot.failure_line(rank_failed) == "[rank1]: torch.OutOfMemoryError: CUDA out of memory. Tried to " \
        "allocate 12.28 GiB."


@pytest.mark.parametrize("flags,message", [
    (["--seeds", ""], "--seeds '': give comma-separated whole numbers"), (["--seeds", "a,b"], "--seeds 'a,b': give"),
    (["--seeds", "1,1"], "--seeds '1,1': each seed at most once"),
    (["--equal_time", "missing.md"], "missing.md: no such cost table; write one with records/bench_mot.py"),
    (["--variants", "baseline,nosuch"], r"unknown variants \['nosuch'\]")])
def test_short_track_refuses_bad_inputs_before_any_run(tmp_path, monkeypatch, flags, message):
    import short_track
    monkeypatch.setattr(short_track.subprocess, "run", lambda *args, **kwargs: pytest.fail("a run started"))
    with pytest.raises(SystemExit, match=message):
        short_track.main(["--data", str(shard_folder(tmp_path)), "--out", str(tmp_path / "x"), *flags])
    assert not (tmp_path / "x").exists()


def test_study_refuses_a_missing_baseline_or_cost_table(tmp_path):
    write_log(tmp_path / "cross_seed0.txt", True, 0, 5000, 10000)
    with pytest.raises(SystemExit, match="--baseline nosuch: no runs of it among cross"):
        study.main([str(tmp_path), "--baseline", "nosuch"])
    with pytest.raises(SystemExit, match="missing.md: no such cost table"):  # without --out too
        study.main([str(tmp_path), "--baseline", "cross", "--costs", str(tmp_path / "missing.md")])


def gpu_check_log(path, losses, final="5.0"):
    """A train_gpt.py log of these training losses, and what its run printed."""
    path.write_text("".join(f"step:{i + 1}/9 train_loss:{loss} next_token_loss:{loss}\n" for i, loss in enumerate(losses))
                    + f"peak memory allocated: 2048 MiB reserved: 4096 MiB\nfinal val_loss:{final} train_time:9ms "
                    "median step:1.00ms (1.00ms per micro-step, steps 2-3)\n")
    return f"step:9/9 val_loss:{final}\nlog: {path}\n"


def test_gpu_check_judges_each_run_by_its_log(tmp_path):
    import gpu_check
    assert gpu_check.judge_run(True, gpu_check_log(tmp_path / "a.txt", [10.8, 9.0, 7.5])) == (
        True, "loss 10.800 -> 7.500, val 5.000, peak 2.0 GiB")
    assert "not finite" in gpu_check.judge_run(True, gpu_check_log(tmp_path / "b.txt", [10.8, float("nan"), 7.5]))[1]
    assert "not finite" in gpu_check.judge_run(True, gpu_check_log(tmp_path / "c.txt", [10.8, 7.5], "nan"))[1]
    assert "did not fall (10.8000 at step 1, 11.0000" in gpu_check.judge_run(
        True, gpu_check_log(tmp_path / "d.txt", [10.8, 9.0, 11.0]))[1]
    crashed = "x\ntorch._inductor.exc.InductorError: LoweringException: AssertionError: wrong ndim () [1]\n\nSet " \
              "TORCHDYNAMO_VERBOSE=1 for the internal stack trace\n"
    assert gpu_check.judge_run(False, crashed) == (
        False, "failed: torch._inductor.exc.InductorError: LoweringException: AssertionError: wrong ndim () [1]")
    assert set(gpu_check.FAMILIES) <= set(bench_mot.VARIANTS)


def test_gpu_check_needs_its_data_and_a_gpu(tmp_path, monkeypatch):
    import gpu_check
    with pytest.raises(SystemExit, match="no fineweb_train_.*bin shards in"):
        gpu_check.main(["--data", str(tmp_path / "nowhere")])
    monkeypatch.setattr(gpu_check, "gpu", lambda: None)
    with pytest.raises(SystemExit, match="no GPU answers nvidia-smi: the GPU check runs on a machine with one"):
        gpu_check.main(["--data", str(shard_folder(tmp_path))])


def test_gpu_check_runs_every_check_and_appends_its_verdict(tmp_path, monkeypatch, capsys):
    """Faked runs: the CUDA tests pass, one family runs out of memory beside another, the rehearsal agrees."""
    import gpu_check
    logs, commands = shard_folder(tmp_path / "logs"), {}

    def fake_run(command, timeout, printed=None):
        if "pytest" in command:
            return True, "....\n4 passed, 264 deselected in 30.1s\n"
        name = next(a for a in command if a.startswith("--log_dir=")).split("/")[-1]
        commands[name] = command
        if name == "ssm_pool4":
            return False, "Traceback\ntorch.OutOfMemoryError: CUDA out of memory. Tried to allocate 24.56 GiB.\n"
        losses = {"two_ranks": [10.825900], "baseline": [10.825837, 9.9]}.get(name, [10.8, 9.5, 8.1])
        output = gpu_check_log(logs / f"{name}.txt", losses)
        printed.parent.mkdir(parents=True, exist_ok=True)
        printed.write_text(output)
        return True, output

    monkeypatch.setattr(gpu_check, "run", fake_run)
    monkeypatch.setattr(gpu_check, "gpu", lambda: ("NVIDIA H100 80GB HBM3", 81559))
    monkeypatch.setattr(gpu_check, "commit", lambda: "abc1234")
    table = tmp_path / "checks.md"
    assert gpu_check.main(["--data", str(logs), "--table", str(table), "--logs", str(tmp_path / "runs")]) == 1
    printed = capsys.readouterr().out.splitlines()
    checks = 1 + len(gpu_check.FAMILIES) + 2  # the tests, the families, the rehearsal, side by side
    assert len(printed) == checks + 1 and len(set(printed)) == len(printed)
    # the first two families and the CUDA tests end before the others start, in any order
    assert {line.split(" (")[0] for line in printed[:3]} == {"pass  CUDA tests: 4 passed, 264 deselected in 30.1s",
                                                           "pass  baseline", "pass  everything"}
    assert "FAIL  ssm_pool4 (--use_mot=1 --byte_self_attn=1 --byte_mixer=ssm --byte_pool=4): failed: torch.OutOfMemory" \
           "Error: CUDA out of memory. Tried to allocate 24.56 GiB." in printed[2:-3]
    assert printed[-3] == ("pass  2 ranks rehearsed against the baseline's step 1: step 1 loss 10.825837 (baseline), "
                           "10.825900 (2 ranks): agree")  # alone, after the lanes
    assert printed[-2] == "FAIL  2 runs side by side: out of memory: ssm_pool4"
    assert printed[-1].startswith(f"GPU check of abc1234: FAIL ({checks - 2} of {checks}) on NVIDIA H100 80GB HBM3 in")
    assert printed[-1].endswith("(2 at a time)")  # an 80 GB GPU's lanes; a 141 GB one takes 3
    # the baseline takes two sequences a step; its ranks take its first step, one sequence each
    flags = {name: dict(a.partition("=")[::2] for a in c if a.startswith("--")) for name, c in commands.items()}
    assert flags["baseline"]["--global_batch_seqs"] == "2" and flags["cross"]["--global_batch_seqs"] == "1"
    assert [name for name in commands if "--profile_steps" in flags[name]] == ["everything"]  # bench_mot's path
    assert flags["everything"]["--profile_steps"] == "1"
    assert commands["two_ranks"][1:5] == ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    assert {k: v for k, v in flags["two_ranks"].items() if flags["baseline"].get(k) != v} == {
        "--standalone": "", "--nproc_per_node": "2", "--stop_step": "1", "--rehearse": "1",
        "--log_dir": str(tmp_path / "runs" / "two_ranks")}
    rows = table.read_text().splitlines()
    assert rows[-2] == "| --- | --- | --- | --- | --- |"
    assert rows[-1].startswith(f"| {time.strftime('%Y-%m-%d')} | `abc1234` | NVIDIA H100 80GB HBM3 | FAIL ({checks - 2} "
                               f"of {checks}) |")
    gpu_check.main(["--data", str(logs), "--table", str(table), "--logs", str(tmp_path / "runs"), "--commit", "def5678",
                    "--families", "cross,ngram", "--lanes", "1"])
    printed = capsys.readouterr().out.splitlines()  # no rehearsal without the baseline
    assert len(printed) == 4 and printed[-1].startswith("GPU check of def5678: pass (3 of 3), families cross,ngram only")
    assert table.read_text().splitlines()[-1].startswith(f"| {time.strftime('%Y-%m-%d')} | `def5678` |")
    with pytest.raises(SystemExit, match="names a family twice"):
        gpu_check.main(["--data", str(logs), "--families", "cross,cross"])


def test_answer_table_is_rebuilt_from_the_committed_logs(tmp_path, capsys):
    import answer
    costs = tmp_path / "costs.md"
    costs.write_text("| variant | ms / micro-step | x baseline |\n| --- | --- | --- |\n| baseline | 76.00 | 1.000 |\n"
                     "| bigram | 77.52 | 1.020 |\n| prefix | 76.08 | 1.001 |\n")
    answer.main(["--costs", str(costs)])
    rows = capsys.readouterr().out.splitlines()
    assert len(rows) == 2 + len(answer.ROWS)
    # README's rows of the 2026-12-01 and 2026-12-06 studies, as their records give them
    assert "| hashed token bigram (no bytes) | 4 | -0.0288 [-0.0434, -0.0142] | 1.043 [1.021, 1.065] | 1.020 | " \
           "+2.3 % [+0.1, +4.4] |" in rows
    assert "| prefix-token prediction (bytes at the output) | 6 | -0.0171 [-0.0317, -0.0026] | 1.026 [1.004, 1.049] | " \
           "1.001 | +2.5 % [+0.3, +4.8] |" in rows
    assert "| cross-attention to the token's bytes (vocabulary table) | 4 | -0.0050 [-0.0118, +0.0019] | 1.007 " \
           "[0.998, 1.017] | not timed |  |" in rows
    costs.write_text("| variant | ms / micro-step | x baseline |\n| --- | --- | --- |\n| bigram | 77.52 | 1.020 |\n")
    with pytest.raises(SystemExit, match="has no baseline row at 1.000"):
        answer.main(["--costs", str(costs)])


def test_answer_table_gives_a_lone_seed_its_value_without_an_interval(monkeypatch, capsys, tmp_path):
    import answer
    baselines = [log for log in answer.STUDIES["byte structure"][0] if log.name.startswith("baseline_seed")]
    lone = answer.RECORDS / "2026-12-07_byte_structure" / "study" / "mtp_seed0.txt"
    (tmp_path / lone.name).write_text(lone.read_text())  # the arm's one seed, whatever seeds join it later
    monkeypatch.setitem(answer.STUDIES, "byte structure", ([*baselines, tmp_path], []))
    answer.main([])
    rows = capsys.readouterr().out.splitlines()
    # 4.1393 against the mean of the 7 baseline seeds of 2026-12-06, 4.1322; cost 0.999 in the committed table
    assert "| multi-token prediction (no bytes) | 1 | +0.0071 (one seed) | 0.989 (one seed) | 0.999 | " \
           "-1.0 % (one seed) |" in rows


def test_every_variant_names_constants_the_trainer_takes():
    import train_gpt as T
    configs = {name: T.parse_args(flags) for name, flags in bench_mot.VARIANTS.items()}  # a misspelt one stops
    kept = configs["bigram_prefix_kept"]
    assert (kept.prefix_weight, kept.prefix_decay, configs["bigram_prefix"].prefix_decay) == (0.5, False, True)


def load_record21():
    import importlib.util
    spec = importlib.util.spec_from_file_location("record21", ROOT / "records" / "2026-12-07_step" / "record21.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


RECORD_LINES = """x = 1
assert world_size == 8 # this code is designed for 8xH100
    train_files = "data/fineweb10B/fineweb_train_*.bin" # input .bin to train on
    val_files = "data/fineweb10B/fineweb_val_*.bin" # input .bin to eval validation loss on
    val_tokens = 10485760 # how many tokens of validation data?
    val_loss_every = 125 # every how many steps to evaluate val loss?
    last_step = (step == train_steps)
y = 2
"""


def test_record_code_is_patched_for_one_gpu_line_by_line_and_another_file_refused():
    record21 = load_record21()
    assert record21.patch(RECORD_LINES) == """x = 1
    train_files = "wiki/wiki_train_*.bin" # input .bin to train on
    val_files = "wiki/wiki_val_*.bin" # input .bin to eval validation loss on
    val_tokens = 262144 # how many tokens of validation data?
    val_loss_every = 0 # every how many steps to evaluate val loss?
    last_step = (step == int(os.environ.get("STOP_STEP", train_steps)))
y = 2
"""
    with pytest.raises(SystemExit, match="occurs 0 times, not once"):
        record21.patch(RECORD_LINES.replace("val_tokens = 10485760", "val_tokens = 5"))
    with pytest.raises(SystemExit, match="occurs 2 times, not once"):
        record21.patch(RECORD_LINES + "    val_loss_every = 125\n")


def test_record_log_gives_its_median_and_mean_step():
    record21 = load_record21()
    log = "".join(f"step:{step}/1770 train_time:{ms}ms step_avg:1.00ms\n"
                  for step, ms in [(19, 1890), (20, 2000), (21, 2110), (22, 2221), (23, 2330)])
    assert record21.step_summary(log + "step:23/1770 val_loss:5.0 train_time:2330ms\n", 21) == (110, 110.0)
    assert record21.step_summary(log, 20) == (110, 110.0)  # 110, 110, 111, 109
    with pytest.raises(SystemExit, match="no consecutive step lines from step 30"):
        record21.step_summary(log, 30)


def test_collected_logs_are_cut_filed_by_folder_and_never_replace_others(tmp_path):
    import tarfile
    import collect_runs
    log = "import torch\n# the trainer's source\n" + "=" * 100 + "\nstep:1/400 train_loss:10.8\n"
    runs = tmp_path / "res"
    for lane, name in [("q2_A", "bytes1_seed0.txt"), ("q2_B", "d21_seed1.txt"), ("study_B", "baseline_seed7.txt")]:
        (runs / lane).mkdir(parents=True, exist_ok=True)
        (runs / lane / name).write_text(log + lane)
    with tarfile.open(tmp_path / "runs.tgz", "w:gz") as archive:
        for lane in ("q2_A", "q2_B", "study_B"):
            archive.add(runs / lane, arcname=lane)
    dest = tmp_path / "records"
    for source in (tmp_path / "runs.tgz", runs):  # the archive, then the same logs unpacked: nothing changes
        collect_runs.main([str(source), str(dest), "--commit", "abc1234"])
        assert sorted(path.relative_to(dest).as_posix() for path in dest.rglob("*")) == [
            "q2", "q2/bytes1_seed0.txt", "q2/d21_seed1.txt", "study", "study/baseline_seed7.txt"]
    assert (dest / "q2" / "d21_seed1.txt").read_text() == (
        "[the log's copy of train_gpt.py is left out here: it is the file of commit abc1234]\n"
        + "=" * 100 + "\nstep:1/400 train_loss:10.8\nq2_B")
    (runs / "q2_A" / "bytes2_seed0.txt").write_text(log)
    (runs / "q2_A" / "bytes1_seed0.txt").write_text(log + "another run")
    with pytest.raises(SystemExit, match="q2/bytes1_seed0.txt exists and differs"):
        collect_runs.main([str(runs), str(dest), "--commit", "abc1234"])
    assert not (dest / "q2" / "bytes2_seed0.txt").exists()  # nothing written when one cannot be
    (runs / "q2_B" / "bytes2_seed0.txt").write_text(log)
    with pytest.raises(SystemExit, match=r"q2/bytes2_seed0.txt is in two lanes \(q2_A, q2_B\)"):
        collect_runs.main([str(runs), str(tmp_path / "elsewhere"), "--commit", "abc1234"])
    (runs / "q2_B" / "bytes2_seed0.txt").write_text("step:1/400 train_loss:10.8\n")
    (runs / "q2_A" / "bytes2_seed0.txt").unlink()
    with pytest.raises(SystemExit, match="q2/bytes2_seed0.txt has no line of 100 '='"):
        collect_runs.main([str(runs), str(tmp_path / "elsewhere"), "--commit", "abc1234"])
    with pytest.raises(SystemExit, match="no FOLDER_LANE/VARIANT_seedK.txt logs under"):
        collect_runs.main([str(tmp_path / "elsewhere"), str(dest), "--commit", "abc1234"])


def test_gpu_check_cut_by_a_call_finishes_in_the_next_with_resume(tmp_path, monkeypatch, capsys):
    """Call 1 passes the tests, baseline and cross and the rehearsal, while ngram outlasts its timeout; call 2
    with --resume runs ngram alone and reads the rest back; another commit's --logs is refused."""
    import gpu_check
    logs, ran = shard_folder(tmp_path / "logs"), []
    cut = {"ngram"}

    def fake_subprocess_run(command, capture_output, text, cwd, timeout):
        name = "cuda_tests" if "pytest" in command else next(
            a for a in command if a.startswith("--log_dir=")).split("/")[-1]
        ran.append(name)
        if name in cut:
            raise subprocess.TimeoutExpired(command, timeout)
        if name == "cuda_tests":
            return subprocess.CompletedProcess(command, 0, "4 passed, 264 deselected in 30.1s\n", "")
        losses = {"two_ranks": [10.825900], "baseline": [10.825837, 9.9]}.get(name, [10.8, 9.5, 8.1])
        return subprocess.CompletedProcess(command, 0, gpu_check_log(logs / f"{name}.txt", losses), "")

    monkeypatch.setattr(gpu_check.subprocess, "run", fake_subprocess_run)
    monkeypatch.setattr(gpu_check, "gpu", lambda: ("NVIDIA H100 80GB HBM3", 81559))
    table, runs = tmp_path / "checks.md", tmp_path / "runs"
    flags = ["--data", str(logs), "--table", str(table), "--logs", str(runs), "--families", "baseline,cross,ngram",
             "--lanes", "1", "--commit", "abc1234"]
    assert gpu_check.main(flags) == 1
    assert sorted(ran) == ["baseline", "cross", "cuda_tests", "ngram", "two_ranks"]
    assert (runs / "ngram_printed.txt").read_text().endswith("\n[gpu_check] exit status: timed out\n")
    capsys.readouterr()
    ran.clear()
    cut.clear()
    assert gpu_check.main([*flags, "--resume"]) == 0
    assert ran == ["ngram"]
    printed = capsys.readouterr().out.splitlines()
    assert "pass  CUDA tests: 4 passed, 264 deselected in 30.1s" in printed
    assert printed[-2] == ("pass  2 ranks rehearsed against the baseline's step 1: step 1 loss 10.825837 (baseline), "
                           "10.825900 (2 ranks): agree")
    assert printed[-1].startswith("GPU check of abc1234: pass (5 of 5), families baseline,cross,ngram only; 4 of them "
                                  "read from an earlier call's output (--resume) on NVIDIA H100 80GB HBM3 in")
    assert "| `abc1234` | NVIDIA H100 80GB HBM3 | pass (5 of 5)" in table.read_text().splitlines()[-1]
    with pytest.raises(SystemExit, match="holds the check of abc1234, not def5678; give the --logs"):
        gpu_check.main([*flags[:-1], "def5678", "--resume"])
