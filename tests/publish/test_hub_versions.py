"""Publishing versions to the Hub, against the fake Hub on loopback (`fake_hub` fixture)."""

from __future__ import annotations

import json
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from datasets import load_dataset
from huggingface_hub import DatasetCard, HfApi

from scas_hub import PublishError, curate
from scas_hub.hub_access import RetryPolicy, transient, with_retries
from scas_hub.publish import hub as hub_module
from scas_hub.publish.hub import push_folder
from scas_hub.testing.corpus import synthetic_pool, write_pool

FAST = RetryPolicy(attempts=4, base_seconds=0.01)


@pytest.fixture(scope="module")
def curated(tmp_path_factory, tiny_qwen_dir):
    """One scored output folder (6 questions x 4 teachers), copied by each test."""
    root = tmp_path_factory.mktemp("publish")
    write_pool(synthetic_pool(6, teachers=4, max_words=30, seed=1), root / "corpus")
    curate(str(tiny_qwen_dir), str(root / "corpus"), root / "out", scoring=None)
    return root / "out"


@pytest.fixture
def folder(curated, tmp_path):
    return shutil.copytree(curated, tmp_path / "out")


def commits_on_main(hub, repo_id: str) -> list[str]:
    repo = hub.repo(repo_id)
    oid, chain = repo.branches["main"], []
    while oid:
        chain.append(oid)
        oid = repo.commits[oid].parent
    return chain


def add_column_and_reshard(folder) -> None:
    """A schema change between versions: a new column, fewer rows, two shards instead of one."""
    path = next((folder / "data").glob("*.parquet"))
    table = pq.read_table(path).slice(0, 4)
    table = table.append_column("difficulty", pa.array([0.5] * 4, pa.float64()))
    path.unlink()
    for i in range(2):
        pq.write_table(table.slice(2 * i, 2), folder / "data" / f"train-{i:05d}-of-00002.parquet")


def test_versions_are_tags_and_each_loads_with_its_own_schema(fake_hub, folder):
    first = push_folder(folder, "org/sel", retry=FAST)
    assert (first.version, fake_hub.repo("org/sel").tags) == ("v1", {"v1": first.commit})
    fake_hub.commit_files("org/sel", {"NOTES.md": "the owner's own file"})
    add_column_and_reshard(folder)
    second = push_folder(folder, "org/sel", retry=FAST)
    assert second.version == "v2" and fake_hub.repo("org/sel").tags == {"v1": first.commit, "v2": second.commit}
    assert fake_hub.repo("org/sel").branches["main"] == second.commit

    v1 = load_dataset("org/sel", split="train", revision="v1")
    latest = load_dataset("org/sel", split="train")
    assert len(v1) == 6 and "difficulty" not in v1.column_names
    assert len(latest) == 4 and latest["difficulty"] == [0.5] * 4
    assert len(load_dataset("org/sel", "candidates", split="train", revision="v1")) == 24

    # each version's card describes its own files and carries the history up to it
    for version, rows, history in [("v1", 6, ["v1"]), ("v2", 4, ["v1", "v2"])]:
        card = DatasetCard(fake_hub.files("org/sel", version)["README.md"].decode())
        info = {i["config_name"]: i for i in card.data.dataset_info}["default"]
        assert info["splits"][0]["num_examples"] == rows
        assert ("difficulty" in [f["name"] for f in info["features"]]) == (version == "v2")
        stats = json.loads(fake_hub.files("org/sel", version)["selection_stats.json"])
        assert [v["version"] for v in stats["versions"]] == history
        assert stats["release"] == {"repo_id": "org/sel", "version": version, "date": stats["release"]["date"]}
        assert f'revision="{version}")' in card.text and "[`v1`](/datasets/org/sel/tree/v1)" in card.text
    v2_files = set(fake_hub.files("org/sel", "v2"))
    assert {p for p in v2_files if p.startswith("data/")} == {
        "data/train-00000-of-00002.parquet",
        "data/train-00001-of-00002.parquet",
    }
    assert {"figures/selected_share.png", "figures/score_distribution.png", "NOTES.md"} <= v2_files


def test_explicit_version_and_tags_never_move(fake_hub, folder):
    assert push_folder(folder, "org/named", version="round-1", retry=FAST).version == "round-1"
    assert push_folder(folder, "org/named", retry=FAST).version == "v1"  # counted from vN tags only
    before = commits_on_main(fake_hub, "org/named")
    with pytest.raises(PublishError, match=r"already has a tag 'v1'.*never moved.*publish as v2"):
        push_folder(folder, "org/named", version="v1", retry=FAST)
    with pytest.raises(PublishError, match="not a valid tag name"):
        push_folder(folder, "org/named", version="v 2", retry=FAST)
    assert commits_on_main(fake_hub, "org/named") == before
    assert set(fake_hub.repo("org/named").tags) == {"round-1", "v1"}


def test_transient_faults_are_retried_without_duplicate_commits(fake_hub, folder):
    fake_hub.fail("/refs$", status=None)  # connection dropped
    fake_hub.fail("/preupload/", status=429)
    fake_hub.fail("^/__lfs/", status=None, method="PUT")  # connection dropped mid-upload
    fake_hub.fail("/commit/", status=500, times=2)
    fake_hub.fail("/tag/", status=502)
    pushed = push_folder(folder, "org/flaky", retry=FAST)
    assert pushed.version == "v1" and fake_hub.repo("org/flaky").tags == {"v1": pushed.commit}
    assert fake_hub.count("POST", "/commit/") == 3 and fake_hub.count("POST", "/tag/") == 2
    assert len(commits_on_main(fake_hub, "org/flaky")) == 2  # initial commit + exactly one upload
    assert len(load_dataset("org/flaky", split="train", revision="v1")) == 6


def test_lost_commit_answer_tags_the_landed_commit(fake_hub, folder):
    fake_hub.fail("/commit/", status=500, after=True)  # the commit lands, the client sees a 500
    pushed = push_folder(folder, "org/lost", retry=FAST)
    chain = commits_on_main(fake_hub, "org/lost")
    assert len(chain) == 2 and pushed.commit == chain[0] == fake_hub.repo("org/lost").tags["v1"]


def test_failed_push_leaves_no_tag_and_reruns_cleanly(fake_hub, folder):
    fake_hub.fail("/commit/", status=500, times=2)
    with pytest.raises(PublishError, match=r"(?s)while uploading.*nothing was tagged; run the same command again"):
        push_folder(folder, "org/rerun", retry=RetryPolicy(attempts=2, base_seconds=0.01))
    assert fake_hub.repo("org/rerun").tags == {}
    pushed = push_folder(folder, "org/rerun", retry=FAST)
    assert pushed.version == "v1"
    stats = json.loads(fake_hub.files("org/rerun", "v1")["selection_stats.json"])
    assert [v["version"] for v in stats["versions"]] == ["v1"]


def test_concurrent_push_is_refused_not_overwritten(fake_hub, folder, monkeypatch):
    push_folder(folder, "org/race", retry=FAST)
    original = hub_module.remote_history

    def someone_else_pushes(*args, **kwargs):
        fake_hub.commit_files("org/race", {"notes.txt": "theirs"})
        return original(*args, **kwargs)

    monkeypatch.setattr(hub_module, "remote_history", someone_else_pushes)
    with pytest.raises(PublishError, match="someone else pushed"):
        push_folder(folder, "org/race", retry=FAST)
    assert set(fake_hub.repo("org/race").tags) == {"v1"}
    assert fake_hub.files("org/race")["notes.txt"] == b"theirs"


def test_private_repo_and_token_stays_secret(fake_hub, folder):
    secret = "hf_PrivateTestToken0123456789"
    fake_hub.token = secret
    with pytest.raises(PublishError) as err:
        push_folder(folder, "org/private", private=True, token="hf_wrong_token", retry=FAST)
    assert "hf_wrong_token" not in str(err.value)
    pushed = push_folder(folder, "org/private", private=True, token=secret, retry=FAST)
    assert fake_hub.repo("org/private").private and pushed.version == "v1"
    assert secret in fake_hub.tokens_seen
    assert not any(secret.encode() in blob for blob in fake_hub.stored_blobs())
    assert HfApi(token=secret).dataset_info("org/private").sha == pushed.commit
    fake_hub.create_repo("org/public")
    with pytest.raises(PublishError, match="exists and is public"):
        push_folder(folder, "org/public", private=True, token=secret, retry=FAST)
    assert fake_hub.repo("org/public").tags == {}


def test_push_needs_a_scas_hub_folder(fake_hub, tmp_path):
    with pytest.raises(PublishError, match="not a scas-hub output folder"):
        push_folder(tmp_path, "org/empty", retry=FAST)


def test_local_card_embeds_figures_and_the_recorded_numbers(curated):
    card = DatasetCard.load(curated / "README.md")
    stats = json.loads((curated / "selection_stats.json").read_text())
    assert card.data.pretty_name.startswith("SCAS selection for tiny-qwen2") and "distillation" in card.data.tags
    assert {i["config_name"] for i in card.data.dataset_info} == {"default", "candidates"}
    for name, path in stats["figures"].items():
        assert (curated / path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        assert f"]({path})" in card.text
    argmin = next(r for r in stats["agreement"]["rules"] if r["rule"] == "argmin")
    assert f"| lowest SCAS score (argmin) | {argmin['same']} / {stats['agreement']['questions']} (" in card.text
    top = stats["teachers"][0]
    assert f"| `{top['teacher']}` | {top['candidates']} | {top['selected']} |" in card.text
    assert 'load_dataset("path/to/out", split="train")' in card.text and "## Versions" not in card.text


def test_cli_push(fake_hub, folder, capsys, monkeypatch):
    from scas_hub.cli import main

    monkeypatch.setenv("SCAS_HUB_PUSH_BACKOFF", "0.01")
    assert main(["push", str(folder), "org/cli"]) == 0
    assert "as v1" in capsys.readouterr().out
    assert main(["push", str(folder), "org/cli", "--version", "v1"]) == 2
    assert "never moved" in capsys.readouterr().err
    assert main(["push", str(folder), "org/cli", "--version", "v1.1"]) == 0
    assert set(fake_hub.repo("org/cli").tags) == {"v1", "v1.1"}


def test_retry_classification_and_retry_after():
    from huggingface_hub.errors import HfHubHTTPError

    from scas_hub.hub_access import http_library

    httpx2 = http_library()  # the HTTP client of the installed huggingface_hub

    def http_error(status: int, **headers) -> HfHubHTTPError:
        response = httpx2.Response(status, headers=headers, request=httpx2.Request("POST", "http://hub/api/x"))
        return HfHubHTTPError(f"HTTP {status}", response=response)

    assert transient(http_error(429, **{"Retry-After": "3"})) == (True, 3.0)
    assert transient(http_error(502)) == (True, None)
    assert transient(httpx2.ReadTimeout("slow")) == (True, None)
    wrapped = RuntimeError("Error while uploading 'data/x.parquet' to the Hub.")
    wrapped.__cause__ = http_error(503)
    assert transient(wrapped)[0]
    assert transient(http_error(404)) == (False, None) and transient(ValueError("bad")) == (False, None)

    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise http_error(500)
        return "done"

    assert with_retries(flaky, what="flaky", policy=FAST) == "done" and len(calls) == 3

    def bad_request():
        calls.append(1)
        raise http_error(400)

    calls.clear()
    with pytest.raises(HfHubHTTPError):
        with_retries(bad_request, what="bad request", policy=FAST)
    assert len(calls) == 1  # a client error is not retried
