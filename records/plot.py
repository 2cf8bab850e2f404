"""Validation loss of several runs against step and against training time, from their train_gpt.py logs.

    python records/plot.py LOG [LOG ...] --out FILE.png [--labels a,b,...] [--title TEXT]

Each run is labelled by the constants in which it differs from the other runs given (or by --labels). Also
prints a Markdown table: final val loss, training time, and val loss at the training time of the shortest
run (linear interpolation between validations). Needs matplotlib (pip install matplotlib).
"""
import argparse
import ast
import re
from pathlib import Path

VAL_LINE = re.compile(r"^step:(\d+)/\d+ val_loss:([\d.naninf]+) train_time:(\d+)ms")
CONSTANTS_LINE = re.compile(r"^changed constants(?: \([^)]*\))?: (.*)$")


def read_log(path: Path) -> dict:
    """The validation points (step, train seconds, loss) and changed constants of one log."""
    points, constants = [], {}
    for line in path.read_text().splitlines():
        if match := VAL_LINE.match(line):
            points.append((int(match[1]), int(match[3]) / 1000, float(match[2])))
        elif match := CONSTANTS_LINE.match(line):
            constants = {} if match[1] == "none" else ast.literal_eval(match[1])
    if not points:
        raise SystemExit(f"error: {path} has no validation lines (step:N/M val_loss:... train_time:...)")
    return dict(path=path, points=points, constants=constants)


def distinguishing_labels(runs: list[dict]) -> list[str]:
    """Each run's constants that are not the same in every run given."""
    names = sorted({name for run in runs for name in run["constants"]})
    varying = [n for n in names if len({repr(run["constants"].get(n)) for run in runs}) > 1]
    return [" ".join(f"{n}={run['constants'][n]}" for n in varying if n in run["constants"]) or "defaults"
            for run in runs]


def loss_at_time(points: list[tuple], seconds: float) -> float:
    """Val loss at a training time, linearly interpolated between the two validations around it."""
    for (_, t0, l0), (_, t1, l1) in zip(points, points[1:]):
        if t0 <= seconds <= t1:
            return l0 if t1 == t0 else l0 + (l1 - l0) * (seconds - t0) / (t1 - t0)
    return points[-1][2] if seconds >= points[-1][1] else float("nan")


def markdown_table(runs: list[dict], labels: list[str]) -> str:
    common = min(run["points"][-1][1] for run in runs)
    rows = ["| run | steps | final val loss | train time s | val loss at {:.1f} s |".format(common),
            "| --- | --- | --- | --- | --- |"]
    for run, label in zip(runs, labels):
        step, seconds, loss = run["points"][-1]
        rows.append(f"| {label} | {step} | {loss:.4f} | {seconds:.1f} | {loss_at_time(run['points'], common):.4f} |")
    return "\n".join(rows)


def two_panels():
    """A figure of two panels that share the loss axis: against step, and against time."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt.subplots(1, 2, figsize=(13, 5), sharey=True)


def save_panels(fig, axes, time_label: str, loss_label: str, title: str, out: Path) -> None:
    axes[0].set_xlabel("step")
    axes[1].set_xlabel(time_label)
    axes[0].set_ylabel(loss_label)
    for ax in axes:
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=120)


def plot(runs: list[dict], labels: list[str], out: Path, title: str) -> None:
    fig, (by_step, by_time) = two_panels()
    for run, label in zip(runs, labels):
        steps, seconds, losses = zip(*[p for p in run["points"] if p[0] > 0])  # step 0 is the untrained model
        by_step.plot(steps, losses, marker=".", label=label)
        by_time.plot(seconds, losses, marker=".", label=label)
    save_panels(fig, (by_step, by_time), "training time (s)", "validation loss", title, out)


def main(argv=None):
    parser = argparse.ArgumentParser(description="Plot validation loss of train_gpt.py runs.")
    parser.add_argument("logs", nargs="+", type=Path, help="train_gpt.py log files")
    parser.add_argument("--out", type=Path, required=True, help="PNG file to write")
    parser.add_argument("--labels", default=None, help="comma-separated labels, one per log")
    parser.add_argument("--title", default="validation loss", help="figure title")
    args = parser.parse_args(argv)
    runs = [read_log(path) for path in args.logs]
    labels = args.labels.split(",") if args.labels else distinguishing_labels(runs)
    if len(labels) != len(runs):
        raise SystemExit(f"error: {len(labels)} labels for {len(runs)} logs")
    plot(runs, labels, args.out, args.title)
    print(markdown_table(runs, labels))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
