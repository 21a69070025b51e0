"""UltraFeedback: ~64k prompts, 4 completions each from a pool of 17 models (wide, list of structs).

Rows: `source`, `instruction`, `models`, `completions[{model, response, custom_system_prompt,
principle, annotations, critique, overall_score, fine-grained_score}]`, `correct_answers`,
`incorrect_answers`. Revision 40b43656 carries the upstream fix of `overall_score`.
Completions are preference data, not verified answers: `trusted` keeps every completion; filter
the corpus first if you only want high-rated ones.
"""

from scas_hub.source.recipe import Columns, CorpusRecipe

RECIPE = CorpusRecipe(
    name="ultrafeedback",
    description="UltraFeedback: 4 completions per prompt from 17 chat models (openbmb/UltraFeedback).",
    repo_id="openbmb/UltraFeedback",
    revision="40b436560ca83a8dba36114c22ab3c66e43f6d5e",
    subsets=("default",),
    default_subset="default",
    data_files={"default": ("*.jsonl", "**/*.jsonl", "data/*.parquet")},
    columns=Columns(
        question_id=None,  # no id column: questions are identified by their normalised text
        instruction="instruction",
        answer="completions.*.response",
        teacher="completions.*.model",
        system="completions.*.custom_system_prompt",
        reference_answer=None,
        verified=None,
        source_dataset="source",
    ),
    verification="trusted",
    license="mit",
    tags=("ultrafeedback", "chat"),
)
