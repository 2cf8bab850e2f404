"""Downloads GPT-2 token shards of FineWeb-10B from the Hugging Face hub, then builds their byte shards.

Usage: python data/cached_fineweb10B.py [N] [--bytes_per_token 16] [--align right]

Fetches fineweb_val_000000.bin and the first N training shards (100M tokens each; 8 cover a full
1770-step run) of the dataset kjj0/fineweb10B-gpt2 into data/fineweb10B/, skipping files already there.
Set HF_ENDPOINT to use a mirror. Without network access, tokenize local text with data/fineweb.py.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from data.byte_shards import ByteShardWriter  # noqa: E402
from train_gpt import DataError  # noqa: E402

DATASET = "kjj0/fineweb10B-gpt2"
LOCAL_DIR = Path(__file__).resolve().parent / "fineweb10B"


def shard_names(num_train: int) -> list[str]:
    return ["fineweb_val_000000.bin"] + [f"fineweb_train_{i:06d}.bin" for i in range(1, num_train + 1)]


def download(name: str) -> Path:
    path = LOCAL_DIR / name
    if path.exists():
        return path
    try:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.utils import logging as hub_logging
        hub_logging.set_verbosity_error()  # its retry warnings would bury the one-line error below
        hf_hub_download(repo_id=DATASET, filename=name, repo_type="dataset", local_dir=LOCAL_DIR)
    except ImportError:
        raise SystemExit("error: huggingface_hub is not installed: pip install huggingface_hub")
    except Exception as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise SystemExit(f"error: could not download {name} from the dataset {DATASET} ({reason}); "
                         "check the network or set HF_ENDPOINT to a mirror, or tokenize local text "
                         "with data/fineweb.py")
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(description="Download GPT-2 tokenized FineWeb-10B shards and build byte shards.")
    parser.add_argument("num_train", nargs="?", type=int, default=8, help="training shards to fetch (default 8)")
    parser.add_argument("--bytes_per_token", type=int, default=16, help="byte slot width (default 16)")
    parser.add_argument("--align", choices=["left", "right"], default="right", help="byte alignment (default right)")
    args = parser.parse_args(argv)
    if not 0 <= args.num_train <= 103 or args.bytes_per_token < 1:
        raise SystemExit("error: num_train must lie in 0..103 (the data set's training shards) and "
                         "--bytes_per_token be at least 1")
    paths = [download(name) for name in shard_names(args.num_train)]
    try:
        written = ByteShardWriter(args.bytes_per_token, args.align).build(paths, skip_current=True)
    except DataError as e:
        raise SystemExit(f"error: {e}")
    print(f"{len(paths)} token shards in {LOCAL_DIR}, {len(written)} byte shards built")


if __name__ == "__main__":
    main()
