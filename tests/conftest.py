import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CORPUS = ROOT.parent / "shared" / "corpus"


@pytest.fixture(scope="session")
def encoding():
    from data.gpt2_tokenizer import load_gpt2_encoding
    return load_gpt2_encoding()


@pytest.fixture(scope="session")
def wiki_leads():
    """The first 300 introductions of the committed-corpus sample, as (title, text) documents."""
    import json
    path = CORPUS / "wiki_leads_1mb.jsonl"
    if not path.exists():
        pytest.skip(f"{path} is not present")
    with open(path, encoding="utf-8") as f:
        return [json.loads(line)["text"] for _, line in zip(range(300), f)]
