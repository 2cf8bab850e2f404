"""Files the short-track logs that a device call brought back into a records folder. The call's runs.tgz
(records/2026-12-07_best/call.sh), or the folder it was unpacked into, holds FOLDER_LANE/VARIANT_seedK.txt;
each log goes to DEST/FOLDER/VARIANT_seedK.txt, its copy of train_gpt.py cut and a line naming the commit
whose file it is put in its place.

    python records/collect_runs.py runs.tgz records/2026-12-09_screens --commit abc1234

A log found in two lanes, a log with no copy of train_gpt.py to cut, and a log that would replace a different
one already in DEST each stop it with one line, before anything is written.
"""
import argparse
import re
import sys
import tarfile
import tempfile
from pathlib import Path

RUN_LOG = re.compile(r"^(?P<folder>\w+?)_[A-Z]/(?P<name>[\w.-]+_seed\d+\.txt)$")
SEPARATOR = "=" * 100  # train_gpt.py's log: its own source, this line, then the run
HEADER = "[the log's copy of train_gpt.py is left out here: it is the file of commit {}]\n"


def found_logs(source: Path) -> dict[str, Path]:
    """'FOLDER/VARIANT_seedK.txt' -> the log under source's FOLDER_LANE folders."""
    logs = {}
    for path in sorted(source.glob("*_*/*_seed*.txt")):
        match = RUN_LOG.match(path.relative_to(source).as_posix())
        if match is None:
            continue
        key = f"{match['folder']}/{match['name']}"
        if key in logs:
            raise SystemExit(f"error: {key} is in two lanes ({logs[key].parent.name}, {path.parent.name}); "
                             "keep one and run again")
        logs[key] = path
    return logs


def cut(text: str, commit: str, name: str) -> str:
    """The log from its separator line on, the commit's line first."""
    start = text.find(SEPARATOR + "\n")
    if start < 0:
        raise SystemExit(f"error: {name} has no line of 100 '=' after a copy of train_gpt.py; "
                         "is it a train_gpt.py log?")
    return HEADER.format(commit) + text[start:]


def collect(source: Path, dest: Path, commit: str) -> list[Path]:
    """Writes every log of source under dest, cut; returns the paths written. Nothing is written unless all can be."""
    logs = found_logs(source)
    if not logs:
        raise SystemExit(f"error: no FOLDER_LANE/VARIANT_seedK.txt logs under {source}")
    texts = {dest / key: cut(path.read_text(), commit, key) for key, path in logs.items()}
    for target, text in texts.items():
        if target.exists() and target.read_text() != text:
            raise SystemExit(f"error: {target} exists and differs; move it away or choose another folder")
    for target, text in texts.items():
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    return sorted(texts)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="File a device call's short-track logs into a records folder.")
    parser.add_argument("source", type=Path, help="runs.tgz, or the folder it was unpacked into")
    parser.add_argument("dest", type=Path, help="the records folder, e.g. records/2026-12-09_screens")
    parser.add_argument("--commit", required=True, help="the commit whose train_gpt.py the runs ran")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as unpacked:
        source = args.source
        if source.is_file():
            with tarfile.open(source) as archive:
                archive.extractall(unpacked, filter="data")
            source = Path(unpacked)
        written = collect(source, args.dest, args.commit)
    print("\n".join(str(path) for path in written))


if __name__ == "__main__":
    sys.exit(main())
