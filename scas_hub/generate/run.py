"""`scas-hub generate`: teachers' answers to a source's questions, written in the published pool's layout.

The output folder holds `data/<source>/<teacher>.jsonl` (rows with the pool's fields, plus
`sample` and each answer's provenance), `generate.json` (the run's settings and every run's
counts) and a README that records them; `curate --source DIR` reads the folder as it is.

Work is a list of requests `(question, teacher, sample)`; those already in the teacher's file
are skipped, so a rerun resumes. Requests run on a bounded thread pool; each answer is appended
and fsynced as it arrives. A request that fails after its retries is counted per teacher and
reason and written nowhere.
"""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..atomic import write_text_atomic
from ..constants import DEFAULT_SYSTEM_PROMPT
from ..errors import ConfigError
from ..progress import progress_bars_enabled
from ..publish.lock import locks_output
from .client import ChatClient, Completion, RequestFailed
from .config import GenerateConfig
from .routing import RoutingConfig, route, savings, write_routing
from .server import VLLMServer
from .teachers import Sampling, TeacherSpec, check_names
from .writer import TeacherFile, folder_name, read_rows

RUN_FILE = "generate.json"
SERVED_ENDPOINT = "vllm server started by scas-hub"


@dataclass(frozen=True)
class Prompt:
    """One question to ask: its id in the output files and what the teachers see."""

    id: str
    source_dataset: str
    instruction: str
    system: str | None = None
    reference_answer: str | None = None
    reference_solution: str | None = None

    @property
    def key(self) -> str:
        """The question id `curate` gives the written rows."""
        return f"{self.source_dataset}/{self.id}"


@dataclass
class TeacherCounts:
    requests: int = 0
    written: int = 0
    truncated: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    failed: Counter = field(default_factory=Counter)


@dataclass
class GenerateResult:
    out: Path
    counts: dict[str, TeacherCounts]
    """This run's requests per teacher."""
    skipped_done: int
    """Requests skipped because their answer was already written (resume)."""
    seconds: float
    corpus: dict[str, dict[str, int]]
    """Per teacher, what the folder holds now (rows, truncated, tokens)."""
    pushed: str | None = None
    """`repo_id@commit` of the upload (`push=`)."""


# ---- questions -----------------------------------------------------------------------------------


def load_prompts(
    source: str, subset: str | None = None, limit: int | None = None, revision: str | None = None
) -> list[Prompt]:
    """The distinct questions of a source (first occurrence, source order), with their references.

    Raises:
        SourceError: the source cannot be opened or read.
        ConfigError: it holds no question.
    """
    from ..source import open_source

    prompts: dict[str, Prompt] = {}
    for c in open_source(source, subset, revision).candidates():
        if not c.question_id or not c.instruction.strip() or c.question_id in prompts:
            continue
        dataset = c.source_dataset or "default"
        raw = c.question_id.removeprefix(f"{c.source_dataset}/") if c.source_dataset else c.question_id
        prompts[c.question_id] = Prompt(raw, dataset, c.instruction, c.system, c.reference_answer, c.reference_solution)
        if limit is not None and len(prompts) >= limit:
            break
    if not prompts:
        raise ConfigError(f"source {source!r} holds no question with an id and a text")
    return list(prompts.values())


# ---- the output folder ---------------------------------------------------------------------------


def _run_record(source: str, subset: str | None, teachers: list[TeacherSpec]) -> dict[str, Any]:
    return {
        "tool": "scas-hub generate",
        "source": source,
        "subset": subset,
        "teachers": {t.name: t.record() for t in teachers},
        "runs": [],
    }


def open_out(out: Path, source: str, subset: str | None, teachers: list[TeacherSpec]) -> dict[str, Any]:
    """The run record of `out`, new or resumed.

    Raises:
        ConfigError: `out` holds files this tool did not write, or a run of another source, or a
            teacher of the same name with other settings.
    """
    record_path = out / RUN_FILE
    fresh = _run_record(source, subset, teachers)
    if not record_path.exists():
        if out.exists() and any(out.iterdir()):
            raise ConfigError(
                f"{out} is not empty and holds no {RUN_FILE}: it was not written by "
                "`scas-hub generate`; choose a new --out"
            )
        return fresh
    record = json.loads(record_path.read_text(encoding="utf-8"))
    if record.get("tool") != "scas-hub generate":
        raise ConfigError(f"{record_path} was not written by `scas-hub generate`; choose a new --out")
    if (record.get("source"), record.get("subset")) != (source, subset):
        raise ConfigError(
            f"{out} holds answers to --source {record.get('source')} --subset {record.get('subset')}; "
            "use the same source to resume, or a new --out"
        )
    for name, spec in fresh["teachers"].items():
        old = record["teachers"].get(name)
        if old is not None and old != spec:
            raise ConfigError(
                f"{out} holds teacher {name!r} with other settings ({json.dumps(old)}); "
                "give the new one another name, or use a new --out"
            )
        record["teachers"][name] = spec
    return record


def teacher_path(out: Path, source_dataset: str, teacher: str) -> Path:
    return out / "data" / folder_name(source_dataset) / f"{teacher}.jsonl"


def corpus_counts(out: Path, teachers: list[str]) -> dict[str, dict[str, int]]:
    """Per teacher, what its files in `out` hold: rows, truncated rows, questions, tokens."""
    counts: dict[str, dict[str, int]] = {}
    for name in teachers:
        c = {"rows": 0, "truncated": 0, "questions": 0, "prompt_tokens": 0, "completion_tokens": 0}
        questions = set()
        for path in sorted((out / "data").glob(f"*/{name}.jsonl")):
            for row in read_rows(path):
                c["rows"] += 1
                c["truncated"] += row.get("finish_reason") == "length"
                c["prompt_tokens"] += row.get("prompt_tokens") or 0
                c["completion_tokens"] += row.get("completion_tokens") or 0
                questions.add((row["source_dataset"], row["id"]))
        c["questions"] = len(questions)
        counts[name] = c
    return counts


# ---- requests ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Job:
    prompt: Prompt
    teacher: TeacherSpec
    sample: int


def _system_of(job: _Job, config: GenerateConfig) -> str:
    return job.teacher.system or config.system_prompt or job.prompt.system or DEFAULT_SYSTEM_PROMPT


def _payload(job: _Job, model: str, config: GenerateConfig) -> dict[str, Any]:
    s = job.teacher.sampling
    payload: dict[str, Any] = {
        "model": model,
        "n": 1,
        "messages": [
            {"role": "system", "content": _system_of(job, config)},
            {"role": "user", "content": job.prompt.instruction},
        ],
        "max_tokens": s.max_tokens or config.max_tokens,
    }
    if s.temperature is not None:
        payload["temperature"] = s.temperature
    if s.top_p is not None:
        payload["top_p"] = s.top_p
    if s.seed is not None:
        payload["seed"] = s.seed + job.sample
    return payload


def _row(job: _Job, answer: Completion, payload: dict[str, Any]) -> dict[str, Any]:
    t, p = job.teacher, job.prompt
    # every key in every row (None: not sent, the server's default), so all files share one schema
    sampling = {k: payload.get(k) for k in ("temperature", "top_p", "max_tokens", "seed")}
    return {
        "id": p.id,
        "source_dataset": p.source_dataset,
        "teacher_name": t.name,
        "system": payload["messages"][0]["content"],
        "instruction": p.instruction,
        "teacher_output": answer.text,
        "reference_answer": p.reference_answer,
        "reference_solution": p.reference_solution,
        "sample": job.sample,
        "teacher_model": t.model,
        "teacher_revision": t.revision,
        "teacher_endpoint": t.endpoint or SERVED_ENDPOINT,
        "sampling": sampling,
        "finish_reason": answer.finish_reason,
        "prompt_tokens": answer.prompt_tokens,
        "completion_tokens": answer.completion_tokens,
    }


class _Progress:
    """A tqdm bar over requests with the answer tokens per second (nothing when bars are off)."""

    def __init__(self, total: int, label: str, enabled: bool):
        self.tokens = 0
        self.start = time.monotonic()
        self.bar = None
        if enabled and progress_bars_enabled() and total:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc=label, unit="req")

    def update(self, tokens: int) -> None:
        self.tokens += tokens
        if self.bar is not None:
            rate = self.tokens / max(time.monotonic() - self.start, 1e-9)
            self.bar.set_postfix_str(f"{rate:.1f} tok/s", refresh=False)
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _run_jobs(
    jobs: list[_Job],
    clients: dict[str, tuple[ChatClient, str]],
    files: dict[tuple[str, str], TeacherFile],
    counts: dict[str, TeacherCounts],
    config: GenerateConfig,
    label: str,
) -> None:
    """Send `jobs` on a bounded pool; write each answer as it arrives (this thread is the only writer).

    `files` holds a `TeacherFile` for every (source dataset, teacher) of `jobs` (`generate_answers`
    opens them all before any request)."""
    progress = _Progress(len(jobs), label, config.progress)

    def ask(job: _Job) -> tuple[_Job, dict[str, Any], Completion | RequestFailed]:
        client, model = clients[job.teacher.name]
        payload = _payload(job, model, config)
        try:
            return job, payload, client.chat(payload)
        except RequestFailed as err:
            return job, payload, err

    pending: set[Future] = set()
    queue = iter(jobs)
    window = max(1, config.concurrency) * 2
    pool = ThreadPoolExecutor(max_workers=max(1, config.concurrency), thread_name_prefix="generate")
    try:
        while True:
            for job in queue:
                pending.add(pool.submit(ask, job))
                if len(pending) >= window:
                    break
            if not pending:
                break
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                job, payload, answer = future.result()
                c = counts[job.teacher.name]
                c.requests += 1
                tokens = 0
                if isinstance(answer, RequestFailed):
                    c.failed[answer.reason] += 1
                elif not answer.text.strip():
                    c.failed["empty_answer"] += 1
                else:
                    files[(job.prompt.source_dataset, job.teacher.name)].append(_row(job, answer, payload))
                    c.written += 1
                    c.truncated += answer.finish_reason == "length"
                    c.prompt_tokens += answer.prompt_tokens or 0
                    tokens = answer.completion_tokens or 0
                    c.completion_tokens += tokens
                progress.update(tokens)
    except BaseException:
        # Ctrl-C: queued requests are dropped; the rows already written stay (a rerun resumes)
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    else:
        pool.shutdown()
    finally:
        progress.close()


def generate_answers(
    prompts: list[Prompt],
    teachers: list[TeacherSpec],
    out: Path,
    config: GenerateConfig,
    files: dict[tuple[str, str], TeacherFile],
    counts: dict[str, TeacherCounts],
    label: str = "generate",
) -> int:
    """Ask every teacher for `config.samples` answers to every prompt not yet in `files`; returns
    the number of requests skipped because their answer was already written."""
    for prompt in prompts:
        for t in teachers:
            key = (prompt.source_dataset, t.name)
            if key not in files:
                files[key] = TeacherFile(teacher_path(out, *key))
    todo = [_Job(p, t, k) for p in prompts for t in teachers for k in range(config.samples)]
    jobs = [j for j in todo if (j.prompt.id, j.sample) not in files[(j.prompt.source_dataset, j.teacher.name)].done]
    skipped = len(todo) - len(jobs)
    if not jobs:
        return skipped
    endpoint_teachers = [t for t in teachers if not t.served]
    served: dict[tuple[str, str | None], list[TeacherSpec]] = defaultdict(list)
    for t in teachers:
        if t.served:
            served[(t.model, t.revision)].append(t)
    with ExitStack() as stack:
        if endpoint_teachers:
            clients = {}
            for t in endpoint_teachers:
                assert t.endpoint is not None, "a teacher that is not served has an endpoint"
                client = stack.enter_context(ChatClient(t.endpoint, t.api_key(), config.retry, config.concurrency))
                clients[t.name] = (client, t.model)
            names = {t.name for t in endpoint_teachers}
            _run_jobs([j for j in jobs if j.teacher.name in names], clients, files, counts, config, label)
    for (model, revision), group in served.items():
        names = {t.name for t in group}
        group_jobs = [j for j in jobs if j.teacher.name in names]
        if not group_jobs:
            continue
        log = out / "logs" / f"vllm-{group[0].name}.log"
        with (
            VLLMServer(
                model, revision=revision, python=config.vllm_python, log_path=log, extra_args=config.vllm_args
            ) as server,
            ChatClient(server.url, None, config.retry, config.concurrency) as client,
        ):
            _run_jobs(group_jobs, {t.name: (client, model) for t in group}, files, counts, config, f"{label} ({model})")
    return skipped


# ---- the command ---------------------------------------------------------------------------------


@locks_output(lambda a: a["out"])  # one writer per corpus folder: rows are appended in place, then finalized
def generate(
    source: str,
    teachers: list[TeacherSpec],
    out: str | Path,
    *,
    subset: str | None = None,
    limit: int | None = None,
    source_revision: str | None = None,
    config: GenerateConfig | None = None,
    routing: RoutingConfig | None = None,
    command: str | None = None,
    push: str | None = None,
    private: bool = False,
) -> GenerateResult:
    """Generate teachers' answers to a source's questions into `out` (see the module docstring).

    Args:
        source: any source `curate` reads (builder, recipe file, folder, Hub id): questions and
            their reference answers.
        teachers: `TeacherSpec`s (`parse_teacher`, `load_teachers_file`).
        out: the output folder; a rerun with the same source resumes it.
        limit: the first N questions of the source.
        config: sampling and request settings.
        routing: probe every teacher on the first questions, let the student rank them, and ask
            only the best for the rest (`routing.py`).
        command: the command line, recorded in the card.
        push: a Hub dataset repo to upload the folder to.

    Raises:
        ConfigError: bad settings, an unusable output folder, a vLLM server that does not start.
        SourceError: the source cannot be read.
        PublishError: another scas-hub run is writing `out`.
    """
    config = config or GenerateConfig()
    if config.samples < 1 or config.concurrency < 1 or config.max_tokens < 1:
        raise ConfigError("--samples, --concurrency and --max-tokens must be at least 1")
    check_names(teachers)
    run_sampling = Sampling(config.temperature, config.top_p, config.max_tokens, config.seed)
    teachers = [t.with_defaults(run_sampling, None, config.api_key_env) for t in teachers]
    for t in teachers:
        t.api_key()  # a missing variable fails before any work
    if routing is not None:
        routing.check(len(teachers))
    out = Path(out)
    record = open_out(out, source, subset, teachers)
    prompts = load_prompts(source, subset, limit, source_revision)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / RUN_FILE, json.dumps(record, indent=2) + "\n")
    start = time.monotonic()
    counts = {t.name: TeacherCounts() for t in teachers}
    files: dict[tuple[str, str], TeacherFile] = {}
    routed: dict[str, Any] | None = None
    try:
        if routing is None:
            skipped = generate_answers(prompts, teachers, out, config, files, counts)
        else:
            skipped, routed = _routed(prompts, teachers, out, config, routing, files, counts)
    finally:
        for f in files.values():
            f.close()
        seconds = time.monotonic() - start
        record["runs"].append(_run_entry(prompts, counts, config, seconds, command, routing=routed))
        write_text_atomic(out / RUN_FILE, json.dumps(record, indent=2) + "\n")
    order = {p.id: i for i, p in enumerate(prompts)}
    for f in files.values():
        f.finalize(order)
    corpus = corpus_counts(out, list(record["teachers"]))
    result = GenerateResult(out, counts, skipped, seconds, corpus)
    from .card import write_card

    write_card(out, record, corpus)
    if push:
        from .card import push_folder

        result.pushed = f"{push}@{push_folder(out, push, private=private)}"
    return result


def _routed(
    prompts: list[Prompt],
    teachers: list[TeacherSpec],
    out: Path,
    config: GenerateConfig,
    routing: RoutingConfig,
    files: dict[tuple[str, str], TeacherFile],
    counts: dict[str, TeacherCounts],
) -> tuple[int, dict[str, Any]]:
    """Probe, route, then generate the rest from the kept teachers; returns (skipped, routing record)."""
    probe, rest = prompts[: routing.probe], prompts[routing.probe :]
    skipped = generate_answers(probe, teachers, out, config, files, counts, label="probe")
    probe_keys = {p.key for p in probe}
    probe_tokens = {t.name: {"rows": 0, "completion_tokens": 0} for t in teachers}
    for (dataset, name), f in files.items():
        if name not in probe_tokens or not f.path.exists():
            continue
        for row in read_rows(f.path):
            if f"{dataset}/{row['id']}" in probe_keys:
                probe_tokens[name]["rows"] += 1
                probe_tokens[name]["completion_tokens"] += row.get("completion_tokens") or 0
    routed = route(out, probe_keys, teachers, routing, config.samples, probe_tokens)
    routed["rest_questions"] = len(rest)
    routed["saved"] = savings(routed, len(rest))
    write_routing(out, routed)
    kept = [t for t in teachers if t.name in routed["kept"]]
    skipped += generate_answers(rest, kept, out, config, files, counts, label="generate (routed)")
    return skipped, routed


def _run_entry(
    prompts: list[Prompt],
    counts: dict[str, TeacherCounts],
    config: GenerateConfig,
    seconds: float,
    command: str | None,
    routing: dict[str, Any] | None,
) -> dict[str, Any]:
    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": command,
        "questions": len(prompts),
        "samples": config.samples,
        "seconds": round(seconds, 2),
        "concurrency": config.concurrency,
        "retry": {"retries": config.retry.retries, "backoff": config.retry.backoff, "timeout": config.retry.timeout},
        "teachers": {
            name: {
                "requests": c.requests,
                "written": c.written,
                "truncated": c.truncated,
                "prompt_tokens": c.prompt_tokens,
                "completion_tokens": c.completion_tokens,
                "failed": dict(c.failed),
            }
            for name, c in counts.items()
        },
        **({"routing": routing} if routing else {}),
    }
