"""Small writers of shard files for tests, independent of the project's writers."""
from pathlib import Path

import numpy as np


def write_raw_token_shard(path: Path, tokens, magic=20240520, version=1, claimed=None) -> Path:
    header = np.zeros(256, dtype=np.int32)
    header[:3] = [magic, version, len(tokens) if claimed is None else claimed]
    path.write_bytes(header.tobytes() + np.asarray(tokens, dtype=np.uint16).tobytes())
    return path
