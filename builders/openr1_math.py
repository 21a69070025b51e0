"""OpenR1-Math-220k: NuminaMath-1.5 problems with 2-4 DeepSeek-R1 generations each (wide, parallel lists).

Rows: `problem`, `solution`, `answer`, `problem_type`, `question_type`, `source`, `uuid`,
`is_reasoning_complete[]`, `generations[]`, `correctness_math_verify[]`, `correctness_llama[]`,
`finish_reasons[]`, `correctness_count`, `messages`. Configs `default` (`data/`, 94k rows) and
`extended` (`extended/`, 131k rows). The corpus's own `correctness_math_verify` flags decide.
All generations come from one teacher, `DeepSeek-R1`: they are its samples (`sample` = index in
`generations`).
"""

from scas_hub.source.recipe import Columns, CorpusRecipe

RECIPE = CorpusRecipe(
    name="openr1_math",
    description="OpenR1-Math-220k: several DeepSeek-R1 solutions per NuminaMath problem, math-verify flags.",
    repo_id="open-r1/OpenR1-Math-220k",
    revision="e4e141ec9dea9f8326f4d347be56105859b2bd68",
    subsets=("default", "extended"),
    default_subset="default",
    data_files={"default": ("data/train-*.parquet",), "extended": ("extended/train-*.parquet",)},
    columns=Columns(
        question_id="uuid",
        instruction="problem",
        answer="generations.*",
        verified="correctness_math_verify.*",
        teacher=None,
        system=None,
        reference_answer="answer",
        reference_solution="solution",
        source_dataset=None,
    ),
    teacher="DeepSeek-R1",
    verification="flags",
    license="apache-2.0",
    tags=("math", "reasoning", "openr1"),
)
