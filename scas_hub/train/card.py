"""The checkpoint's model card (README.md) and `training_facts.json`, from what the run measured."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

from ..atomic import write_json_atomic
from ..constants import PAPER_URL
from ..publish.markdown import cell, code, plain

TEMPLATE = "model_card.md.j2"
FACTS_FILENAME = "training_facts.json"
"""Written last: a folder with it holds a finished checkpoint."""


def read_facts(folder: Path) -> dict[str, Any] | None:
    path = Path(folder) / FACTS_FILENAME
    if not path.exists():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def write_facts(folder: Path, facts: dict[str, Any]) -> None:
    """Write atomically, so a kill never leaves half a marker."""
    path = Path(folder) / FACTS_FILENAME
    write_json_atomic(path, facts, sort_keys=True, tmp=path.with_suffix(".json.tmp"))


def _metadata(facts: dict[str, Any]) -> str:
    from huggingface_hub import ModelCardData

    student, dataset = facts["student"], facts["dataset"]
    # the parent when it is on the Hub (a pushed checkpoint), else the Hub model the weights descend from
    candidates = [student["repo_id"], (facts.get("base_model") or {}).get("repo_id")]
    hub_id = next((c for c in candidates if c and not str(c).startswith("local:")), None)
    data = ModelCardData(
        base_model=hub_id,
        datasets=[dataset["id"]] if not dataset["id"].startswith("local:") else None,
        library_name="transformers",
        pipeline_tag="text-generation",
        tags=["scas-hub", "scas", "sft", "trl", "distillation"],
    )
    return data.to_yaml()


def render_card(facts: dict[str, Any]) -> str:
    """The card's text for one finished training run; what the run's inputs named (ids, revisions,
    names) is escaped, so no value can break the card's tables or add a link or HTML to it."""
    from jinja2 import Environment, StrictUndefined

    template = resources.files("scas_hub.cards").joinpath(TEMPLATE).read_text(encoding="utf-8")
    env = Environment(undefined=StrictUndefined, keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)
    return env.from_string(template).render(
        f=facts,
        metadata=_metadata(facts),
        paper_url=PAPER_URL,
        versions=", ".join(plain(v) for v in facts["versions"]),
        code=code,
        cell=cell,
        plain=plain,
    )


def write_card(folder: Path, facts: dict[str, Any]) -> Path:
    path = Path(folder) / "README.md"
    path.write_text(render_card(facts), encoding="utf-8")
    return path
