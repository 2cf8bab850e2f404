"""Statistics over seeds of short-track runs: per variant the mean final validation loss, its standard
deviation, and the difference to the baseline with a 95 % Welch confidence interval; a plot of the mean
and its band (one standard deviation) against step and against training time.

    python records/study.py DIR [DIR ...] [--baseline baseline] [--out FILE.png]
    python records/study.py DIR LOG ... --finals PRINTED.txt   # more logs by path; runs known by their table row
    python records/study.py STEPS400 --curve STEPS380 STEPS420    # what each variant's gain is worth in time

DIR holds logs named <variant>_seed<k>.txt (records/short_track.py writes them); a log may also be named by
its path. A run's result is its last validation; runs of one variant must have the same number of steps, and
a variant's seed counts once. --finals reads the table that records/plot.py prints (short_track.py prints it
after its runs) for runs whose logs are lost: their final losses join the statistics, not the plot. With
--costs (a records/bench_mot.py table, as for short_track.py --equal_time) the time axis is steps times each
variant's cost, in baseline steps: the time of the benchmark's regime, which runs that shared a GPU do not
measure themselves.

--curve fits a line to the final loss of the baseline's runs against their steps (those in DIR and in the
--curve folders, baseline runs at other --steps) and adds each variant's break-even cost: the baseline
steps that reach the variant's mean loss, over the variant's steps. A variant whose cost per step is below
it is ahead at equal time. Its 95 % interval joins the uncertainty of the variant's mean (its seeds) and of
the line (its residuals, more than two baseline runs); it assumes the line, a local approximation: keep the
lengths near the variants'.
"""
import argparse
import math
import re
from dataclasses import dataclass
from pathlib import Path

import plot
from short_track import read_costs

LOG_NAME = re.compile(r"^(\w+)_seed(\d+)$")
TABLE_ROW = re.compile(r"^\| (\w+)_seed(\d+) \| (\d+) \| ([\d.]+) \|", re.M)  # plot.py: run | steps | final loss


def student_t_cdf(x: float, df: float) -> float:
    """P(T <= x) for Student's t with df degrees of freedom, x >= 0: Simpson's rule over the density."""
    log_norm = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    density = lambda t: math.exp(log_norm - (df + 1) / 2 * math.log1p(t * t / df))  # noqa: E731
    n = 2000
    h = x / n
    total = density(0) + density(x) + sum((4 if i % 2 else 2) * density(i * h) for i in range(1, n))
    return 0.5 + total * h / 3


def student_t_quantile(p: float, df: float) -> float:
    """The x > 0 with P(T <= x) = p (p > 0.5), by bisection."""
    low, high = 0.0, 1.0
    while student_t_cdf(high, df) < p:
        high *= 2
    for _ in range(50):
        middle = (low + high) / 2
        low, high = (middle, high) if student_t_cdf(middle, df) < p else (low, middle)
    return (low + high) / 2


def mean_std(values: list[float]) -> tuple[float, float]:
    mean = sum(values) / len(values)
    variance = sum((v - mean) ** 2 for v in values) / (len(values) - 1) if len(values) > 1 else float("nan")
    return mean, math.sqrt(variance)


def welch_interval(a: list[float], b: list[float], level: float = 0.95) -> tuple[float, float, float]:
    """mean(a) - mean(b) and its confidence interval from Welch's t (unequal variances)."""
    (mean_a, sd_a), (mean_b, sd_b) = mean_std(a), mean_std(b)
    var_a, var_b = sd_a ** 2 / len(a), sd_b ** 2 / len(b)
    se = math.sqrt(var_a + var_b)
    df = (var_a + var_b) ** 2 / (var_a ** 2 / (len(a) - 1) + var_b ** 2 / (len(b) - 1))
    half = student_t_quantile(1 - (1 - level) / 2, df) * se
    diff = mean_a - mean_b
    return diff, diff - half, diff + half


def read_finals(path: Path) -> list[tuple[str, int, dict]]:
    """(variant, seed, run) for each row of a records/plot.py table: a run known only by its final validation
    (step, no time, loss)."""
    rows = TABLE_ROW.findall(path.read_text())
    if not rows:
        raise SystemExit(f"error: {path} holds no records/plot.py table rows (| <variant>_seed<k> | steps | loss |)")
    return [(name, int(seed), dict(path=path, points=[(int(steps), float("nan"), float(loss))]))
            for name, seed, steps, loss in rows]


def read_runs(paths: list[Path], finals: list[Path] = ()) -> dict[str, list[dict]]:
    """The runs of each variant: the <variant>_seed<k>.txt logs in each folder of paths, or each log path
    itself, then the rows of the finals tables."""
    found = []
    for path in paths:
        if not path.is_dir() and not (path.is_file() and LOG_NAME.match(path.stem)):
            raise SystemExit(f"error: {path} is neither a folder nor a <variant>_seed<k>.txt log")
        for log in sorted(path.glob("*.txt")) if path.is_dir() else [path]:
            if match := LOG_NAME.match(log.stem):
                found.append((match[1], int(match[2]), plot.read_log(log)))
    found += [row for table in finals for row in read_finals(table)]
    runs, seen = {}, {}
    for name, seed, run in found:
        if (name, seed) in seen:
            raise SystemExit(f"error: {name} seed {seed} twice ({seen[name, seed]} and {run['path']}); "
                             "give each run once")
        seen[name, seed] = run["path"]
        runs.setdefault(name, []).append(run)
    if not runs:
        raise SystemExit(f"error: no <variant>_seed<k>.txt logs in {', '.join(map(str, paths))}")
    for name, logs in runs.items():
        steps = {log["points"][-1][0] for log in logs}
        if len(steps) > 1:
            raise SystemExit(f"error: the runs of {name} end at different steps {sorted(steps)}; keep one length")
    return runs


@dataclass
class Line:
    """Least-squares line of the final loss against the steps, and what its uncertainty needs: the mean
    step count and loss of its points, their spread in steps (Sxx), the residual variance and its points."""
    intercept: float
    slope: float
    mean_steps: float
    mean_loss: float
    sxx: float
    residual_var: float
    points: int

    def steps_at(self, loss: float) -> float:
        return (loss - self.intercept) / self.slope


def fit_line(points: list[tuple[int, float]]) -> Line:
    """The least-squares line through (steps, final loss) points."""
    mean_steps = sum(steps for steps, _ in points) / len(points)
    mean_loss = sum(loss for _, loss in points) / len(points)
    sxx = sum((steps - mean_steps) ** 2 for steps, _ in points)
    slope = sum((steps - mean_steps) * (loss - mean_loss) for steps, loss in points) / sxx
    intercept = mean_loss - slope * mean_steps
    residuals = sum((loss - intercept - slope * steps) ** 2 for steps, loss in points)
    residual_var = residuals / (len(points) - 2) if len(points) > 2 else float("nan")
    return Line(intercept, slope, mean_steps, mean_loss, sxx, residual_var, len(points))


def baseline_curve(run_sets: list[dict[str, list[dict]]], baseline: str) -> tuple[Line, list[int]]:
    """The line of the final validation loss against the number of steps over every baseline run of the
    sets (read_runs' results, each of one length per variant), and the step counts it rests on."""
    points = [(run["points"][-1][0], run["points"][-1][2]) for runs in run_sets for run in runs.get(baseline, [])]
    counts = sorted({steps for steps, _ in points})
    if len(counts) < 2:
        raise SystemExit(f"error: the baseline's curve needs {baseline} runs of two lengths or more (found "
                         f"{counts or 'none'}); add --curve folders of {baseline} runs at other --steps")
    line = fit_line(points)
    if line.slope >= 0:
        raise SystemExit(f"error: the baseline's final loss does not fall with its steps over {counts}; "
                         "no exchange rate between time and loss (more seeds or lengths further apart)")
    return line, counts


def break_even(line: Line, values: list[float], steps: int, level: float = 0.95) -> tuple[float, float, float]:
    """The baseline steps that reach the mean of values, over steps, with its confidence interval: the
    variance of the steps read off the line from the values' standard error and from the line's own (its
    mean and its slope), each with its degrees of freedom (Welch-Satterthwaite), as a t interval."""
    mean, sd = mean_std(values)
    cost = line.steps_at(mean) / steps
    from_values = sd ** 2 / len(values) / line.slope ** 2
    from_line = line.residual_var / line.slope ** 2 * (
        1 / line.points + (mean - line.mean_loss) ** 2 / (line.slope ** 2 * line.sxx))
    variance = from_values + from_line
    if variance == 0:
        return cost, cost, cost
    dof = variance ** 2 / (from_values ** 2 / (len(values) - 1) + from_line ** 2 / (line.points - 2))
    half = student_t_quantile(1 - (1 - level) / 2, dof) * math.sqrt(variance) / steps
    return cost, cost - half, cost + half


def results_table(runs: dict[str, list[dict]], baseline: str, line: Line | None = None) -> str:
    """Per variant: steps, seeds, mean and std of the final loss, the difference to the baseline with its
    Welch interval; with the baseline's line, the break-even cost and its interval: the baseline steps
    that reach the variant's mean loss over the variant's steps, the cost per step below which it is ahead
    at equal time."""
    finals = {name: [log["points"][-1][2] for log in logs] for name, logs in runs.items()}
    rows = [f"| variant | steps | seeds | mean val loss | std | minus {baseline} | 95 % interval (Welch) |",
            "| --- | --- | --- | --- | --- | --- | --- |"]
    if line:
        rows = [rows[0] + " break-even cost | 95 % interval |", rows[1] + " --- | --- |"]
    for name, values in sorted(finals.items(), key=lambda item: item[0] != baseline):  # the baseline first
        mean, sd = mean_std(values)
        steps = runs[name][0]["points"][-1][0]
        compared = "| | "
        if name != baseline and baseline in finals and min(len(values), len(finals[baseline])) > 1:
            diff, low, high = welch_interval(values, finals[baseline])
            compared = f"| {diff:+.4f} | [{low:+.4f}, {high:+.4f}] "
        if line:
            cost, low, high = break_even(line, values, steps)
            known = name != baseline and len(values) > 1 and line.points > 2
            compared += f"| {cost:.3f} | " + (f"[{low:.3f}, {high:.3f}] " if known else "")
        rows.append(f"| {name} | {steps} | {len(values)} | {mean:.4f} | {sd:.4f} {compared}|")
    return "\n".join(rows)


def plot_bands(runs: dict[str, list[dict]], out: Path, title: str, costs: dict[str, float] | None = None) -> None:
    fig, axes = plot.two_panels()
    for name, runs_of_name in runs.items():
        logs = [run for run in runs_of_name if len(run["points"]) > 1]  # not the runs known by their end alone
        if not logs:
            continue
        count = min(len(log["points"]) for log in logs)
        columns = list(zip(*[log["points"][1:count] for log in logs]))  # per validation: one point per seed
        steps = [col[0][0] for col in columns]
        if costs is None:
            times = [sum(p[1] for p in col) / len(col) for col in columns]
        elif name not in costs:
            raise SystemExit(f"error: the cost table has no row for {name}; add its bench_mot.py cost or leave it out")
        else:
            times = [step * costs[name] for step in steps]
        stats = [mean_std([p[2] for p in col]) for col in columns]
        means = [m for m, _ in stats]
        spread = [0.0 if math.isnan(s) else s for _, s in stats]
        for ax, x in zip(axes, (steps, times)):
            seeds = f"{len(logs)} of {len(runs_of_name)}" if len(logs) < len(runs_of_name) else len(logs)
            line, = ax.plot(x, means, marker=".", label=f"{name} ({seeds} seeds)")
            ax.fill_between(x, [m - s for m, s in zip(means, spread)], [m + s for m, s in zip(means, spread)],
                            color=line.get_color(), alpha=0.2)
    time_label = "training time (s), mean over seeds" if costs is None else "time in baseline steps (steps x cost)"
    plot.save_panels(fig, axes, time_label, "validation loss (mean, band: one standard deviation)", title, out)


def main(argv=None):
    parser = argparse.ArgumentParser(description="Statistics over seeds of short-track runs.")
    parser.add_argument("folders", nargs="+", type=Path, help="folders of <variant>_seed<k>.txt logs, or such logs")
    parser.add_argument("--finals", nargs="+", type=Path, default=[],
                        help="records/plot.py tables of runs whose logs are lost: statistics, not the plot")
    parser.add_argument("--baseline", default="baseline", help="the variant the others are compared with")
    parser.add_argument("--out", type=Path, default=None, help="PNG of the means and bands (none if not given)")
    parser.add_argument("--costs", type=Path, default=None, help="bench_mot.py table: time axis in baseline steps")
    parser.add_argument("--title", default="short track, mean over seeds", help="figure title")
    parser.add_argument("--curve", nargs="+", type=Path, default=[],
                        help="folders of baseline runs at other step counts: adds each variant's break-even cost")
    args = parser.parse_args(argv)
    costs = read_costs(args.costs) if args.costs else None
    runs = read_runs(args.folders, args.finals)
    if args.baseline not in runs:
        raise SystemExit(f"error: --baseline {args.baseline}: no runs of it among {', '.join(sorted(runs))}")
    line = None
    if args.curve:
        line, counts = baseline_curve([runs, *(read_runs([folder]) for folder in args.curve)], args.baseline)
        steps = runs[args.baseline][0]["points"][-1][0]
        print(f"{args.baseline} over {counts} steps: loss {line.intercept:.4f} {line.slope:+.3e} x steps; "
              f"1 % of the time at {steps} steps is worth {-line.slope * steps / 100:.4f}")
    print(results_table(runs, args.baseline, line))
    if args.out:
        plot_bands(runs, args.out, args.title, costs)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
