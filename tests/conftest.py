"""Shared fixtures. Hub access is pointed at nothing real: tests never touch the network."""

from __future__ import annotations

import os
import socket
import tempfile


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# must happen before huggingface_hub / datasets are imported anywhere
_HF_HOME = tempfile.mkdtemp(prefix="scas-hf-home-")
# every Hub call goes to the fake Hub on loopback (the `fake_hub` fixture serves it on this port)
_FAKE_HUB_PORT = _free_port()
os.environ["HF_ENDPOINT"] = f"http://127.0.0.1:{_FAKE_HUB_PORT}"
os.environ["HF_UPDATE_DOWNLOAD_COUNTS"] = "0"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ.setdefault("HF_HUB_DISABLE_XET", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "0")
os.environ["HF_HOME"] = _HF_HOME
os.environ.setdefault("HF_TOKEN", "hf_dummy_test_token")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# converted students and the Qwen tokenizer are cached across runs (they take ~30 s to build)
os.environ.setdefault(
    "SCAS_HUB_CACHE",
    os.path.join(os.environ.get("HF_HOME_ORIG", os.path.expanduser("~/.cache/huggingface")), "scas_hub"),
)

# scores are never reused across test sessions (a stale cache could hide an engine change)
os.environ["SCAS_HUB_SCORE_CACHE"] = os.path.join(_HF_HOME, "scores")
os.environ["SCAS_HUB_TABLE_CACHE"] = os.path.join(_HF_HOME, "tables")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def _fake_hub_server():
    from scas_hub.testing.fake_hub import FakeHub

    with FakeHub(port=_FAKE_HUB_PORT) as hub:
        yield hub


@pytest.fixture
def fake_hub(_fake_hub_server):
    """The fake Hub behind HF_ENDPOINT, emptied for each test."""
    _fake_hub_server.reset()
    yield _fake_hub_server
    _fake_hub_server.reset()


@pytest.fixture(scope="session")
def qwen_tokenizer():
    from scas_hub.testing.models import qwen_tokenizer as build

    return build()


@pytest.fixture(scope="session")
def tiny_qwen_dir(tmp_path_factory, qwen_tokenizer) -> Path:
    from scas_hub.testing.models import tiny_qwen2

    return tiny_qwen2(tmp_path_factory.mktemp("tiny-qwen2"), tokenizer=qwen_tokenizer)


@pytest.fixture(scope="session")
def tiny_qwen(tiny_qwen_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_qwen_dir, dtype="float32").eval()
    return model, AutoTokenizer.from_pretrained(tiny_qwen_dir)


@pytest.fixture(scope="session")
def smollm2():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from scas_hub.student.loading import resolve_student

    path = resolve_student("smollm2-135m").path
    model = AutoModelForCausalLM.from_pretrained(path, dtype="float32").eval()
    return model, AutoTokenizer.from_pretrained(path)
