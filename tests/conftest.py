import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


@pytest.fixture(scope="session")
def encoding():
    from data.gpt2_tokenizer import load_gpt2_encoding
    return load_gpt2_encoding()


@pytest.fixture(scope="session")
def wiki_leads(encoding):
    """300 whole Wikipedia introductions: the committed smoke sample (data/smoke/NOTICE) decoded, so that
    no test depends on files outside the repository."""
    import numpy as np
    from train_gpt import load_token_shard
    smoke = ROOT / "data" / "smoke"
    tokens = np.concatenate([load_token_shard(smoke / name) for name in ("smoke_val_000000.bin", "smoke_train_000001.bin")])
    documents = encoding.decode(tokens.tolist()).split("<|endoftext|>")[1:-1]  # the last may go on in the next shard
    assert len(documents) >= 300
    return documents[:300]
