"""PNG figures for the dataset card, drawn with matplotlib's object API (Agg canvas, no pyplot state)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from ..errors import cannot_write

if TYPE_CHECKING:
    from matplotlib.figure import Figure

FIGURES_DIR = "figures"
SELECTED_SHARE = f"{FIGURES_DIR}/selected_share.png"
SCORE_DISTRIBUTION = f"{FIGURES_DIR}/score_distribution.png"
ROUNDS = f"{FIGURES_DIR}/rounds.png"
MAX_DOTS = 2000
_SELECTED, _ALL = "#e8743b", "#9aa5b1"


F = TypeVar("F", bound=Callable[..., Any])


def plain_labels(plot: F) -> F:
    """Draw with every label shown as written: a `$` in a teacher, student or strategy name never
    starts mathtext (which renders `$x$` as math and raises on what is not TeX)."""

    @functools.wraps(plot)
    def drawn(*args: Any, **kwargs: Any) -> Any:
        from matplotlib import rc_context

        with rc_context({"text.parse_math": False}):
            return plot(*args, **kwargs)

    return drawn  # type: ignore[return-value]


def save_figure(fig: Figure, path: Path) -> None:
    """Write `fig` as a PNG (no software stamp, so a rerun writes the same bytes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fig.savefig(path, format="png", metadata={"Software": None})
    except OSError:  # a full disk: the half-written figure goes
        path.unlink(missing_ok=True)
        raise


def _figure(n_rows: int):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.0, 1.5 + 0.42 * max(n_rows, 1)), dpi=110, layout="constrained")
    ax = fig.subplots()
    ax.spines[["top", "right"]].set_visible(False)
    return fig, ax


@plain_labels
def plot_selected_share(teachers: list[dict[str, Any]], path: Path) -> None:
    """Horizontal bars per teacher: its share of the selection next to its share of all candidates."""
    rows = sorted(teachers, key=lambda t: (t["share"], t["teacher"]))
    fig, ax = _figure(len(rows))
    y = range(len(rows))
    ax.barh(
        [i + 0.2 for i in y],
        [100 * t["share"] for t in rows],
        height=0.4,
        color=_SELECTED,
        label="share of the selection",
    )
    ax.barh(
        [i - 0.2 for i in y],
        [100 * t["candidate_share"] for t in rows],
        height=0.4,
        color=_ALL,
        label="share of all candidates",
    )
    for i, t in zip(y, rows, strict=True):
        ax.text(100 * t["share"] + 0.5, i + 0.2, f"{100 * t['share']:.0f}%", va="center", fontsize=8)
    ax.set_yticks(list(y), [t["teacher"] for t in rows])
    ax.set_xlabel("% of answers")
    ax.set_title("Which teachers' answers the student keeps", loc="left", fontsize=11)
    fig.legend(loc="outside lower center", ncols=2, frameon=False, fontsize=8)
    save_figure(fig, path)


@plain_labels
def plot_score_distribution(distributions: dict[str, dict[str, Any]], path: Path) -> None:
    """Box plot of SCAS scores per teacher (lower = cheaper to learn), selected answers as dots
    (at most `MAX_DOTS` per teacher, evenly spread over its sorted scores)."""
    # highest median at the bottom, so the cheapest teacher is read first
    names = sorted(distributions, key=lambda t: (-float(np.median(distributions[t]["all"])), t))
    fig, ax = _figure(len(names))
    ax.boxplot(
        [distributions[t]["all"] for t in names],
        orientation="horizontal",
        widths=0.55,
        showfliers=True,
        patch_artist=True,
        boxprops={"facecolor": "#dfe5ec", "edgecolor": _ALL},
        medianprops={"color": "#34495e"},
        whiskerprops={"color": _ALL},
        capprops={"color": _ALL},
        flierprops={"marker": ".", "markeredgecolor": _ALL},
    )
    labelled = False
    for i, t in enumerate(names, start=1):
        picked = distributions[t]["selected"]
        if len(picked) > MAX_DOTS:  # an even thinning: a million dots draw slowly and show no more
            picked = np.sort(picked)[:: -(-len(picked) // MAX_DOTS)]
        if len(picked):
            ax.scatter(
                picked,
                [i] * len(picked),
                s=14,
                color=_SELECTED,
                zorder=3,
                label=None if labelled else "selected answers",
            )
            labelled = True
    ax.set_yticks(range(1, len(names) + 1), names)
    ax.set_xlabel("SCAS score (lower = cheaper for the student to learn)")
    ax.set_title("Score distribution per teacher", loc="left", fontsize=11)
    if labelled:
        fig.legend(loc="outside lower center", frameon=False, fontsize=8)
    save_figure(fig, path)


@plain_labels
def plot_rounds(rounds: list[dict[str, Any]], path: Path) -> None:
    """Per round: the teachers' shares of the selection (stacked bars) and, on a second axis, the
    share of questions whose selected answer changed since the previous round."""
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    teachers = sorted({t for r in rounds for t in r["teacher_shares"]})
    labels = [str(r["round"]) for r in rounds]
    fig = Figure(figsize=(7.0, 3.6), dpi=110, layout="constrained")
    ax = fig.subplots()
    ax.spines[["top"]].set_visible(False)
    colors = colormaps["tab20"].resampled(max(len(teachers), 1))
    bottom = [0.0] * len(rounds)
    for i, t in enumerate(teachers):
        shares = [100 * r["teacher_shares"].get(t, 0.0) for r in rounds]
        ax.bar(labels, shares, bottom=bottom, width=0.6, color=colors(i), label=t)
        bottom = [b + s for b, s in zip(bottom, shares, strict=True)]
    ax.set_ylim(0, 100)
    ax.set_xlabel("round")
    ax.set_ylabel("% of the selection")
    changed = [
        (label, 100 * r["changed"]["share"])
        for label, r in zip(labels, rounds, strict=True)
        if r.get("changed") and r["changed"].get("share") is not None
    ]
    if changed:
        ax2 = ax.twinx()
        ax2.plot(
            [c[0] for c in changed],
            [c[1] for c in changed],
            color="black",
            marker="o",
            label="changed since previous round",
        )
        ax2.set_ylim(0, 100)
        ax2.set_ylabel("% of questions changed")
    ax.set_title("Teacher shares and changed selections per round", loc="left", fontsize=11)
    fig.legend(loc="outside lower center", ncols=min(len(teachers), 4), frameon=False, fontsize=8)
    save_figure(fig, path)


def write_figures(
    out: Path,
    teachers: list[dict[str, Any]],
    distributions: dict[str, dict[str, Any]],
    rounds: list[dict[str, Any]] | None = None,
) -> dict[str, str]:
    """Draw the figures into `out/figures/` (the rounds figure when there are rounds); returns their
    paths relative to `out` (for the card).

    Raises:
        StorageError: a figure cannot be written (a full disk); the message names the folder that
            holds `out` (the output is staged beside `--out`).
    """
    if not teachers:
        return {}
    figures = {"selected_share": SELECTED_SHARE, "score_distribution": SCORE_DISTRIBUTION}
    try:
        plot_selected_share(teachers, out / SELECTED_SHARE)
        plot_score_distribution(distributions, out / SCORE_DISTRIBUTION)
        if rounds:
            plot_rounds(rounds, out / ROUNDS)
            figures["rounds"] = ROUNDS
    except OSError as err:
        raise cannot_write("the card's figures", out.parent, err, "or pass an --out on another disk") from err
    return figures
