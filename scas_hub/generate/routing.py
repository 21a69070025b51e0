"""Student-routed generation: probe every teacher, let the student choose, generate the rest from the best.

1. Every teacher answers the first N questions (the probe); those answers stay in the corpus.
2. The probe is verified and scored with the student (the project's own source, verify, score and
   select stages), and the SCAS selection picks one answer per question.
3. Teachers are ranked by their share of the picks, then by their mean SCAS cost (lower is better).
4. The remaining questions go to the M best teachers only.

`routing.json` records the ranking, the share of probe questions whose SCAS pick is unchanged when
only the M teachers are offered, and the requests and answer tokens saved against asking every
teacher (tokens estimated from each dropped teacher's mean answer length on the probe).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

from ..atomic import write_text_atomic
from ..errors import ConfigError
from ..records import Candidate, Question
from ..select import SelectionConfig, select
from ..stats import PipelineStats
from .config import RoutingConfig
from .teachers import TeacherSpec

ROUTING_FILE = "routing.json"


def _pick_id(c: Candidate) -> tuple[str, int]:
    return (c.teacher, c.sample)


def _select(questions: list[Question], selection: SelectionConfig) -> dict[str, tuple[str, int]]:
    """Question id -> (teacher, sample) of its pick (questions without a pick are absent)."""
    chosen = select(questions, selection, PipelineStats())
    return {c.question_id: _pick_id(c) for c in chosen}


def rank_teachers(
    questions: list[Question], teachers: list[str], selection: SelectionConfig
) -> tuple[list[dict[str, Any]], dict[str, tuple[str, int]]]:
    """Teachers by SCAS pick share (descending), then mean cost (ascending), then name; and the picks."""
    picks = _select(questions, selection)
    shares = Counter(teacher for teacher, _ in picks.values())
    costs: dict[str, list[float]] = {t: [] for t in teachers}
    verified: Counter[str] = Counter()
    for q in questions:
        for c in q.scored:
            assert c.score is not None
            costs.setdefault(c.teacher, []).append(c.score.scas_score(selection.lam))
            verified[c.teacher] += 1
    ranking: list[dict[str, Any]] = []
    for t in teachers:
        values = [v for v in costs.get(t, []) if not math.isnan(v)]
        ranking.append(
            {
                "teacher": t,
                "picks": shares[t],
                "pick_share": shares[t] / len(picks) if picks else 0.0,
                "mean_cost": sum(values) / len(values) if values else None,
                "scored_answers": verified[t],
            }
        )
    ranking.sort(key=lambda r: (-r["picks"], math.inf if r["mean_cost"] is None else r["mean_cost"], r["teacher"]))
    return ranking, picks


def route(
    out: Path,
    probe_ids: set[str],
    teachers: list[TeacherSpec],
    config: RoutingConfig,
    samples: int,
    probe_tokens: dict[str, dict[str, int]],
) -> dict[str, Any]:
    """Verify and score the probe answers in `out` with the student, rank the teachers, choose the
    `config.keep` best. Returns the routing record (without the savings, which need the rest's size).

    Args:
        probe_ids: question ids (`Prompt.key`) of the probe.
        probe_tokens: per teacher, `{"rows": n, "completion_tokens": n}` of its probe answers.

    Raises:
        ConfigError: no probe answer survived verification and scoring.
    """
    from ..pipeline import load_questions, score

    stats = PipelineStats()
    _, questions = load_questions(str(out), None, None, stats, config.verification)
    questions = [q for q in questions if q.question_id in probe_ids]
    from ..score.config import ScoringConfig
    from ..student.config import StudentConfig

    score(
        questions,
        StudentConfig(config.student, dtype=config.dtype, device=config.device),
        stats,
        scoring=ScoringConfig(progress=config.progress),
    )
    if not any(q.scored for q in questions):
        reasons = ", ".join(f"{r} {n}" for r, n in stats.skipped.most_common()) or "none"
        raise ConfigError(
            f"routing: no probe answer survived verification and scoring ({reasons}); "
            "raise --route-probe or check the teachers"
        )
    names = [t.name for t in teachers]
    ranking, picks = rank_teachers(questions, names, config.selection)
    kept = [r["teacher"] for r in ranking[: config.keep]]
    restricted = [Question(q.question_id, [c for c in q.candidates if c.teacher in kept]) for q in questions]
    kept_picks = _select(restricted, config.selection)
    unchanged = sum(kept_picks.get(qid) == pick for qid, pick in picks.items())
    return {
        "student": config.student,
        "probe_questions": len(questions),
        "samples": samples,
        "verification": config.verification or "auto",
        "selection": config.selection.to_dict(),
        "ranking": ranking,
        "kept": kept,
        "dropped": [n for n in names if n not in kept],
        "probe_questions_with_a_pick": len(picks),
        "pick_unchanged": unchanged,
        "pick_unchanged_share": unchanged / len(picks) if picks else 0.0,
        "probe_tokens": probe_tokens,
        "skipped": dict(stats.skipped),
    }


def savings(record: dict[str, Any], rest_questions: int) -> dict[str, Any]:
    """Requests and (estimated) answer tokens not spent on the dropped teachers for the rest."""
    requests = rest_questions * record["samples"] * len(record["dropped"])
    tokens = 0
    for name in record["dropped"]:
        t = record["probe_tokens"].get(name, {})
        mean = t.get("completion_tokens", 0) / t["rows"] if t.get("rows") else 0.0
        tokens += round(mean * rest_questions * record["samples"])
    all_requests = rest_questions * record["samples"] * (len(record["kept"]) + len(record["dropped"]))
    return {
        "requests": requests,
        "completion_tokens": tokens,
        "requests_share": requests / all_requests if all_requests else 0.0,
        "tokens_estimated_from": "each dropped teacher's mean answer length on the probe",
    }


def write_routing(out: Path, record: dict[str, Any]) -> Path:
    path = out / ROUTING_FILE
    write_text_atomic(path, json.dumps(record, indent=2) + "\n")
    return path
