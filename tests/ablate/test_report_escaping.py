"""The ablation's README (`scas-hub ablate`) shows what the run's inputs named (student, strategies
such as `teacher:<name>`, sources, system prompt, command) as text: no value can split a table row,
end a code span or the command's block, add a link, an image or HTML, or end the YAML front matter;
ordinary values are written as before. The report is built from arms as `ablate` stores them."""

from __future__ import annotations

import pytest
from huggingface_hub import RepoCard

from scas_hub.ablate.arms import ArmResult
from scas_hub.ablate.report import FIGURE, render_readme, write_report
from scas_hub.ablate.summary import summarise
from scas_hub.constants import PAPER_URL
from scas_hub.evaluate import EvalReport, QuestionResult
from scas_hub.source import SourceInfo, source_record

markdown_it = pytest.importorskip("markdown_it")

HOSTILE = {
    "pipe": "a|b\n| injected | row |",  # a new column, then a new row
    "ticks": "t`ick``s\n```\nrm -rf ~",  # ends a code span, or the command's block
    "html": "<script>alert(1)</script>",
    "link": "[x](javascript:alert(1)) ![i](https://e.vil/i.png) <https://e.vil>",
    "yaml": "x\n---\npretty_name: evil\n---",  # ends the front matter, or a setext heading
    "markdown": "*em* _x_ ~~s~~ $\\frac$ \\ # > &amp;",
    "long": "n" * 3000,
    "folded": "--- " * 300 + "x",  # YAML folds it onto lines of `---` (indented)
}
QUESTIONS = ["q0", "q1", "q2", "q3"]
PINS = [
    "student",
    "training corpus",
    "eval questions",
    "selection",
    "training",
    "decoding",
    "system prompt",
    "hardware",
    "versions",
    "created",
]


def arm(strategy: str, seed: int | None, correct: list[bool], cut: int = 0) -> ArmResult:
    """A finished arm as `ablate` stores it; the first `cut` answers hit the token limit."""
    results = [
        QuestionResult(q, "x", c, "correct" if c else "not_verified", "1", stopped=i >= cut)
        for i, (q, c) in enumerate(zip(QUESTIONS, correct, strict=True))
    ]
    training = None if seed is None else {"final_loss": 0.5, "steps": 2, "seed": seed}
    return ArmResult(strategy, seed, training, EvalReport(results, decoding={"max_new_tokens": 32}))


def ablation_record(
    *,
    name: str = "smollm2-135m",
    strategy: str = "teacher:gpt-4o",
    repo_id: str = "HuggingFaceTB/SmolLM2-135M-Instruct",
    revision: str = "12fd25f77366fa6b3b4b768ec3050bf629380bac",
    corpus: SourceInfo | None = None,
    source: str = "math_eval",
    subset: str = "test",
    system_prompt: str = "Please reason step by step, and put your final answer within \\boxed{}.",
    prompt_source: str = "the training datasets' rows",
    word: str | None = None,
    command: str = "scas-hub ablate --student smollm2-135m --eval demo --strategies scas,random,teacher:gpt-4o",
) -> dict:
    """`ablation.json` as `ablate` writes it (two seeds; `strategy`'s answers mostly cut); `word`, when
    given, stands for every other name the record holds."""
    arms = {
        "scas": [arm("scas", 42, [True, True, False, True]), arm("scas", 43, [True, False, False, True])],
        "random": [arm("random", 42, [True, False, False, False]), arm("random", 43, [False, True, False, True])],
        strategy: [arm(strategy, 42, [True, True, True, False], cut=3), arm(strategy, 43, [True, True, False, False])],
    }
    corpus = corpus or SourceInfo("me/teacher-pool", "me/teacher-pool", "a" * 40, ("main",))
    record = summarise(arms, QUESTIONS, baseline=arm("baseline", None, [False, False, True, False]))
    other = word or "x"
    return {
        **record,
        "student": {"name": name, "repo_id": repo_id, "revision": revision},
        "eval": {"source": source_record(SourceInfo(source, None, None, (subset,))), "questions_in": 24, "limit": 4}
        | {"sample_seed": 42, "question_ids": QUESTIONS},
        "training_corpus": {"source": source_record(corpus), "datasets": {strategy: {"questions_selected": 20}}},
        "overlap": {"eval_questions": 0, "corpus_questions": 0, "corpus_rows": 0},
        "exclude_overlap": False,
        "excluded_from_training": None,
        "system_prompt": {"text": system_prompt, "source": prompt_source},
        "decoding": {"max_new_tokens": 32, "batch_size": 16, "backend": word or "vllm", "dtype": word or "bfloat16"},
        "training": {
            "learning_rate": 1e-5,
            "lr_scheduler_type": word or "cosine",
            "warmup_ratio": 0.05,
            "epochs": 3.0,
            "max_length": 4096,
            "effective_batch_size": 8,
            "per_device_batch_size": 1,
            "max_steps": None,
            "seeds": [42, 43],
        },
        "selection": {
            "seed": 42,
            "others": word or "selected again from the stored scores (scas-hub select)",
            "seeded": ["scas", "random", *([word] if word else [])],
        },
        "run": {
            "created": word or "2026-12-06 06:11:49 UTC",
            "command": command,
            "versions": {"scas-hub": "0.1.0", other: other},
            "hardware": word or "1 x NVIDIA H100 80GB HBM3",
        },
    }


def shown(value: str) -> str:
    """How a value reads on the rendered page: a line break as the two characters `\\n`."""
    return value.replace("\n", "\\n")


def text_of(inline) -> str:
    """An inline token's text as the page shows it (code spans' text included)."""
    return "".join(child.content for child in inline.children)


def tables(tokens: list) -> list[list[list[str]]]:
    """Every table of the tokens: rows of cell texts."""
    found: list[list[list[str]]] = []
    cell: str | None = None
    for tok in tokens:
        if tok.type == "table_open":
            found.append([])
        elif tok.type == "tr_open":
            found[-1].append([])
        elif tok.type in ("td_open", "th_open"):
            cell = ""
        elif tok.type in ("td_close", "th_close"):
            found[-1][-1].append(cell)
            cell = None
        elif tok.type == "inline" and cell is not None:
            cell += text_of(tok)
    return found


def rendered(readme: str) -> tuple[dict, list]:
    """The README's metadata as the Hub reads it, and its body's tokens (GFM tables, HTML allowed)."""
    card = RepoCard(readme)
    parser = markdown_it.MarkdownIt("commonmark", {"html": True}).enable("table")
    return card.data.to_dict(), parser.parse(card.text)


@pytest.mark.parametrize("kind", HOSTILE)
def test_hostile_names_stay_text_in_the_ablation_readme(kind):
    value = HOSTILE[kind]
    strategy = f"teacher:{value}"
    command = f"scas-hub ablate --strategies 'scas,{strategy}'"
    record = ablation_record(
        name=value,
        strategy=strategy,
        repo_id=f"org/{value}",
        revision=value,
        corpus=SourceInfo(value, f"me/{value}", value, (value, "b")),
        source=value,
        subset=value,
        system_prompt=value,
        prompt_source=value,
        word=value,
        command=command,
    )
    metadata, tokens = rendered(render_readme(record))
    v = shown(value)

    assert metadata == {
        "tags": ["scas-hub", "scas", "ablation", "evaluation"],
        "pretty_name": f"SCAS ablation for {value}",
    }

    headings = [text_of(tokens[i + 1]) for i, tok in enumerate(tokens) if tok.type == "heading_open"]
    assert headings == [
        f"Does SCAS help {v}? Selection strategies compared",
        "What the figures mean",
        "Hold-out hygiene",
        "What pins this run",
    ]
    results, pins = tables(tokens)
    assert all(len(row) == 10 for row in results)
    assert [row[0] for row in results[1:]] == ["scas", "random", f"teacher:{v}", "baseline"]
    assert all(len(row) == 2 for row in pins) and [row[0] for row in pins[1:]] == PINS
    cells = {row[0]: row[1] for row in pins[1:]}
    assert cells["student"] == f"org/{v} @ {v}"
    assert cells["training corpus"] == f"me/{v} @ {v} ({v}, b)"
    assert cells["eval questions"] == f"{v} ({v}): 4 of 24 questions (a uniform draw, seed 42)"
    assert cells["selection"] == (
        f"seed 42; scored once, then {v}; scas, random, {v} draw again for each training seed "
        "(selection seeds 42, 43, ...)"
    )
    assert f", {v}, warmup 0.05," in cells["training"] and f", {v} backend, {v};" in cells["decoding"]
    assert cells["system prompt"] == f"{v} ({v})"
    assert cells["hardware"] == cells["created"] == v and cells["versions"] == f"scas-hub 0.1.0, {v} {v}"
    (warning,) = [tok for tok in tokens if tok.type == "blockquote_open"]
    assert text_of(tokens[tokens.index(warning) + 2]).startswith(f"Warning (teacher:{v}): 3 of 8 answers (38%)")

    # the command is one block holding it as it is; nothing on the page is a link, image or HTML but ours
    (block,) = [tok for tok in tokens if tok.type == "fence"]
    assert (block.info, block.content) == ("bash", command + "\n")
    nodes = [child for tok in tokens if tok.type == "inline" for child in tok.children]
    assert not {tok.type for tok in tokens + nodes} & {"html_block", "html_inline"}
    assert [n.attrs["href"] for n in nodes if n.type == "link_open"] == [PAPER_URL]
    assert [n.attrs["src"] for n in nodes if n.type == "image"] == [FIGURE]


def test_hostile_names_draw_as_text_in_the_chart(tmp_path):
    record = ablation_record(name="a $\\bar$ b", strategy="teacher:$\\frac{$")
    readme = write_report(tmp_path, record)
    assert (tmp_path / FIGURE).read_bytes()[:4] == b"\x89PNG" and readme.exists()


def test_an_ordinary_ablation_readme_is_written_as_before():
    readme = render_readme(ablation_record())
    for line in [
        "---\ntags:\n- scas-hub\n- scas\n- ablation\n- evaluation\npretty_name: SCAS ablation for smollm2-135m\n---\n",
        "# Does SCAS help smollm2-135m? Selection strategies compared\n",
        "| teacher:gpt-4o | 62.5% | 25.0% to 100.0% | +0.0 pt [-62.5 pt to +50.0 pt] | 2 / 1 | 62.5% ± 12.5 pt "
        "(2 seeds) | 3 of 8 | 40.0% | 20 | 0.500, 0.500 |\n",
        "| random | 37.5% |",
        "\n> **Warning (teacher:gpt-4o)**: 3 of 8 answers (38%) were cut at 32 new tokens; they are graded only on "
        "an explicit final answer, so accuracy depends on the limit: raise --max-new-tokens.\n",
        "| student | `HuggingFaceTB/SmolLM2-135M-Instruct` @ `12fd25f77366fa6b3b4b768ec3050bf629380bac` |\n",
        f"| training corpus | `me/teacher-pool` @ `{'a' * 40}` (main) |\n",
        "| eval questions | `math_eval` (test): 4 of 24 questions (a uniform draw, seed 42) |\n",
        "| selection | seed 42; scored once, then selected again from the stored scores (scas-hub select); "
        "scas, random draw again for each training seed (selection seeds 42, 43, ...) |\n",
        "| training | lr 1e-05, cosine, warmup 0.05, 3.0 epochs, effective batch 8 (1 per device), max length 4096, "
        "seeds 42, 43 |\n",
        "| decoding | greedy, max 32 new tokens, batch 16, left padding, vllm backend, bfloat16; every parameter",
        "| system prompt | `Please reason step by step, and put your final answer within \\boxed{}.` "
        "(the training datasets' rows) |\n",
        "| hardware | 1 x NVIDIA H100 80GB HBM3 |\n",
        "| versions | scas-hub 0.1.0, x x |\n",
        "| created | 2026-12-06 06:11:49 UTC |\n",
        "```bash\nscas-hub ablate --student smollm2-135m --eval demo --strategies scas,random,teacher:gpt-4o\n```\n",
    ]:
        assert line in readme
