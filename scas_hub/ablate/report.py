"""The ablation's report: `README.md` (a table and a bar chart with the intervals) and its Hub push."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from ..constants import PAPER_URL
from ..errors import PublishError
from ..publish.figures import plain_labels, save_figure
from ..publish.markdown import cell, code_block, plain
from .arms import ARMS_DIR, BASELINE

TEMPLATE = "ablation.md.j2"
FIGURE = "figures/accuracy.png"
REPORT_FILES = ["README.md", "ablation.json", "figures/*.png", f"{ARMS_DIR}/*.json", f"{ARMS_DIR}/*/*.json"]
"""What `--push` uploads: the report and each arm's result, never datasets or checkpoints."""


def _rows(record: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    rows = list(record["strategies"].items())
    if record.get("baseline"):
        rows.append((BASELINE, record["baseline"]))
    return rows


@plain_labels
def plot_accuracy(record: dict[str, Any], path: Path) -> Path:
    """Bar chart of accuracy per strategy, with the bootstrap interval as error bars."""
    from matplotlib.figure import Figure

    rows = _rows(record)
    fig = Figure(figsize=(1.6 + 1.1 * len(rows), 3.6), dpi=110, layout="constrained")
    ax = fig.subplots()
    ax.spines[["top", "right"]].set_visible(False)
    names = [name for name, _ in rows]
    acc = [100 * s["accuracy"] for _, s in rows]
    low = [100 * (s["accuracy"] - s["ci_low"]) if s["ci_low"] is not None else 0 for _, s in rows]
    high = [100 * (s["ci_high"] - s["accuracy"]) if s["ci_high"] is not None else 0 for _, s in rows]
    colors = ["#e8743b" if n == "scas" else "#c3c8ce" if n == BASELINE else "#5b8db8" for n in names]
    ax.bar(names, acc, yerr=[low, high], capsize=4, color=colors)
    for i, a in enumerate(acc):
        ax.annotate(f"{a:.1f}", (i, a), textcoords="offset points", xytext=(6, 2), fontsize=8)
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    n = next(iter(record["strategies"].values()))["n_questions"]
    ax.set_title(f"{record['student']['name']}: {n} held-out questions, 95% bootstrap CI", fontsize=9)
    save_figure(fig, path)
    return path


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _signed(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:+.1f} pt"


def _interval(low: float | None, high: float | None, signed: bool = False) -> str:
    if low is None or high is None:
        return "n/a (fewer than 2 questions)"
    f = _signed if signed else _pct
    return f"{f(low)} to {f(high)}"


def _source_line(source: dict[str, Any]) -> str:
    """A corpus as a table cell: its Hub id and revision, else its name, then its subsets."""
    where = f"{cell(source['repo_id'])} @ {cell(source['revision'])}" if source.get("repo_id") else cell(source["name"])
    subsets = ", ".join(plain(s) for s in source.get("subsets") or [])
    return f"{where}" + (f" ({subsets})" if subsets else "")


def render_readme(record: dict[str, Any]) -> str:
    """The README's text: YAML metadata for the Hub, then the table, chart, meaning and pins.

    What the run's inputs named (student, strategies, sources, system prompt, command) is escaped, so
    no value can break the tables or the command's block, or add a link or HTML to the page.
    """
    import yaml
    from jinja2 import Environment

    def seeds(s: dict[str, Any]) -> str:
        if s.get("seed_stderr") is None:
            return f"1 seed ({_pct(s['seed_mean'])})" if len(s.get("seeds") or []) <= 1 else _pct(s["seed_mean"])
        return f"{_pct(s['seed_mean'])} ± {100 * s['seed_stderr']:.1f} pt ({len(s['seeds'])} seeds)"

    def losses(s: dict[str, Any]) -> str:
        runs = s.get("training") or []
        return ", ".join(f"{t['final_loss']:.3f}" for t in runs) if runs else "-"

    datasets = record["training_corpus"].get("datasets") or {}

    def cut(s: dict[str, Any]) -> str:
        if s.get("cut_at_max_new_tokens") is None:
            return "-"
        return f"{s['cut_at_max_new_tokens']} of {s['answers']}"

    def train_rows(name: str) -> str:
        d = datasets.get(name)
        return str(d["questions_selected"]) if d else "-"

    metadata = {
        "tags": ["scas-hub", "scas", "ablation", "evaluation"],
        "pretty_name": f"SCAS ablation for {record['student']['name']}",
    }
    template = resources.files("scas_hub.cards").joinpath(TEMPLATE).read_text(encoding="utf-8")
    env = Environment(trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    n = next(iter(record["strategies"].values()))["n_questions"]
    return env.from_string(template).render(
        r=record,
        rows=_rows(record),
        n=n,
        figure=FIGURE,
        paper_url=PAPER_URL,
        pct=_pct,
        signed=_signed,
        interval=_interval,
        seeds=seeds,
        losses=losses,
        cut=cut,
        train_rows=train_rows,
        card_data=yaml.safe_dump(metadata, sort_keys=False).strip(),
        corpus=_source_line(record["training_corpus"]["source"]),
        evalsrc=_source_line(record["eval"]["source"]),
        versions=", ".join(plain(f"{k} {v}") for k, v in record["run"]["versions"].items()),
        seeded=", ".join(plain(s) for s in record["selection"].get("seeded") or []),
        command=code_block(record["run"]["command"], "bash"),
        cell=cell,
        plain=plain,
    )


def write_report(out: Path, record: dict[str, Any]) -> Path:
    """Write `figures/accuracy.png` and `README.md` into the ablation folder."""
    plot_accuracy(record, out / FIGURE)
    path = out / "README.md"
    path.write_text(render_readme(record), encoding="utf-8")
    return path


def push_report(
    out: Path, repo_id: str, *, repo_type: str = "dataset", private: bool = False, token: str | None = None
) -> str:
    """Upload the report (README, ablation.json, figure, arm results) to a Hub repo in one commit.

    Raises:
        PublishError: the Hub refused the push; running the same command again retries it.
    """
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    from ..hub_access import with_retries

    api = HfApi(token=token)
    try:
        with_retries(
            api.create_repo, repo_id, repo_type=repo_type, private=private, exist_ok=True, what=f"create {repo_id}"
        )
        info = with_retries(
            api.upload_folder,
            repo_id=repo_id,
            repo_type=repo_type,
            folder_path=str(out),
            allow_patterns=REPORT_FILES,
            commit_message="scas-hub: ablation report",
            what="upload",
        )
    except (HfHubHTTPError, OSError, ValueError) as err:
        raise PublishError(
            f"pushing the ablation report {out} to the {repo_type} repo {repo_id} failed: "
            f"{type(err).__name__}: {err}; run the same command again to retry"
        ) from err
    return info.oid
