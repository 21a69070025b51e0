"""The SCAS paper's verified multi-teacher answer pool (9 teachers, 13,807 questions).

Layout: `data/<subset>/<teacher_name>.jsonl`, one row per (question, teacher), `id` aligned across a
subset's teacher files; every answer was verified correct by the authors (`trusted`).
"""

from scas_hub.constants import SCAS_POOL_REPO
from scas_hub.source.recipe import FILE_TEACHER, CorpusRecipe

RECIPE = CorpusRecipe(
    name="scas_pool",
    description="Verified-correct answers of 9 teacher models to hendrycks_math and deepscaler questions.",
    repo_id=SCAS_POOL_REPO,
    subsets=("hendrycks_math", "deepscaler"),
    default_subset="all",
    data_files={"*": ("data/{subset}/*.jsonl",)},
    teacher=FILE_TEACHER,
    verification="trusted",
    license="mit",
    tags=("math", "reasoning"),
)
