"""The streamed tail of a run: selection window by window equals `select`, and many parquet shards load as one."""

from __future__ import annotations

import copy
import json
import random
import time

from datasets import load_dataset

from scas_hub import Candidate, PipelineStats, ProxyComponents, Question, SelectionConfig, select
from scas_hub.compare import Pick
from scas_hub.pipeline import publish
from scas_hub.publish import folder as folder_module
from scas_hub.publish.card import dataset_info_metadata
from scas_hub.score.scored_table import windows_of


def scored_questions(n_questions: int = 60, seed: int = 3) -> list[Question]:
    rng = random.Random(seed)
    out = []
    for q in range(n_questions):
        cands = []
        for t in range(rng.randint(1, 7)):
            c = Candidate(
                f"s/{q}",
                f"t{t}",
                f"question {q}?",
                f"answer {q} by t{t} " + "x" * rng.randint(1, 300),
                source_dataset="s",
            )
            c.score = ProxyComponents(
                answer_mean_nll=rng.choice([0.5, 1.0, rng.random()]),
                question_mean_nll=1.0,
                sim_aa=rng.random(),
                sim_aq=rng.random(),
                n_answer_tokens=rng.randint(1, 50),
                n_question_tokens=5,
            )
            cands.append(c)
        out.append(Question(f"s/{q}", cands))
    return out


def test_streamed_selection_equals_select_and_shards_load_as_one(tmp_path, monkeypatch):
    questions = scored_questions()
    n_rows = sum(len(q.candidates) for q in questions)
    for strategy in ["scas", "random", "strongest", "lowest-nll"]:
        config = SelectionConfig(strategy=strategy, groups=3, seed=7)
        reference = copy.deepcopy(questions)
        chosen = select(reference, config, PipelineStats(rows_in=n_rows, rows_scored=n_rows))
        expected = {c.question_id: (c.teacher, c.answer) for c in chosen}
        streamed = copy.deepcopy(questions)
        monkeypatch.setattr(folder_module, "SHARD_BYTES", 20_000)  # many small shards
        monkeypatch.setattr(folder_module, "BATCH_ROWS", 16)
        stats = PipelineStats(rows_in=n_rows, rows_scored=n_rows)
        out = tmp_path / strategy
        result = publish(
            windows_of(iter(streamed), per_window=7),
            config,
            stats,
            out,
            student={"name": "s", "device": "cpu"},
            source={"name": "x"},
            started=time.perf_counter(),
            verified={f"t{t}": 10 - t for t in range(7)},
        )
        assert result.selection == {q: Pick.of(t, a) for q, (t, a) in expected.items()}, strategy
        shards = sorted((out / "candidates").glob("*.parquet"))
        assert len(shards) > 2 and shards[0].name == f"train-00000-of-{len(shards):05d}.parquet"
        assert load_dataset(str(out), "candidates", split="train").num_rows == n_rows
        selected = load_dataset(str(out), split="train")
        assert sorted(zip(selected["question_id"], selected["teacher"], strict=True)) == sorted(
            (q, t) for q, (t, _) in expected.items()
        )
        info = dataset_info_metadata(out)
        counts = {i["config_name"]: i["splits"][0]["num_examples"] for i in info}
        assert counts == {"default": len(expected), "candidates": n_rows}
        record = json.loads((out / "selection_stats.json").read_text())
        assert record["questions_selected"] == len(expected) and record["questions_in"] == len(questions)
