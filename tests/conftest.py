"""Shared test fixtures: a tiny random model (fast training smoke tests), a workspace with the
bundled example person ingested, and a model cache that never touches the user's own."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "marguerite"

# keep converted models out of the user's cache; CI and developers may point this at a shared dir
os.environ.setdefault("SELFTUNE_CACHE", str(REPO / ".pytest_cache" / "selftune-models"))


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The embedded model's tokenizer, read from its GGUF file (no model weights converted)."""
    from transformers import AutoTokenizer

    from selftune.models import embedded_gguf_path

    gguf = embedded_gguf_path()
    folder = tmp_path_factory.mktemp("tokenizer")
    AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory, tokenizer_dir: Path) -> Path:
    """A randomly initialised 2-layer Llama with the embedded tokenizer: trains in seconds."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    folder = tmp_path_factory.mktemp("tiny-model")
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture
def example_workspace(tmp_path: Path):
    """A workspace with the bundled example person (Mags) ingested."""
    from selftune.ingest.importer import ingest_paths
    from selftune.workspace import init_workspace

    ws = init_workspace(tmp_path / "twin", ["Mags"])
    with ws.open_store() as store:
        ingest_paths(store, [EXAMPLE / "whatsapp", EXAMPLE / "notes"], ("Mags",))
    return ws


@pytest.fixture(autouse=True)
def _test_clients_speak_from_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """A TestClient addresses the server as a local client does (`Host: 127.0.0.1`), not as
    `testserver`, which the server's DNS-rebinding check refuses when no API key is set."""
    try:  # imported here too, so a test that imports it later gets the same client
        from starlette.testclient import TestClient
    except ImportError:
        return

    init = TestClient.__init__

    def loopback_init(self, app, base_url: str = "http://127.0.0.1", *args, **kwargs):  # type: ignore[no-untyped-def]
        init(self, app, base_url, *args, **kwargs)

    monkeypatch.setattr(TestClient, "__init__", loopback_init)
