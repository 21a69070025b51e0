"""a-m-team's parallel distillation sets: the same queries answered by AM-Thinking-v1 and by
Qwen3-235B-A22B, one dataset per teacher, joined on the normalised question text.

Rows (one per query, a conversation): `messages[{role, content, info{source, reference_answer,
test_case, think_content, answer_content}}]`. Subsets are the task files (`math`, `code`, ...);
math answers are checked against the reference with math-verify.
"""

from scas_hub.source.recipe import Columns, CorpusRecipe, TeacherDataset

RECIPE = CorpusRecipe(
    name="am_distilled",
    description="AM-Thinking-v1 and Qwen3-235B-A22B answers to the same 1.89M queries, joined per question.",
    teachers=(
        TeacherDataset("AM-Thinking-v1", repo_id="a-m-team/AM-Thinking-v1-Distilled"),
        TeacherDataset("Qwen3-235B-A22B", repo_id="a-m-team/AM-Qwen3-Distilled"),
    ),
    subsets=("math", "code", "science", "if", "chat"),
    default_subset="math",
    data_files={"*": ("{subset}.jsonl", "{subset}*.jsonl", "**/{subset}*.jsonl")},
    columns=Columns(
        question_id=None,  # join on the hash of the normalised question text
        instruction="messages.[role=user].content",
        answer="messages.[role=assistant].content",
        teacher=None,
        system="messages.[role=system].content",
        reference_answer="messages.[role=user].info.reference_answer",
        verified=None,
        source_dataset="messages.[role=user].info.source",
    ),
    verification="math",
    license="cc-by-nc-4.0",
    tags=("math", "reasoning", "distillation"),
)
