"""The SCAS paper's verified multi-teacher answer pool (9 teachers, 13,807 questions)."""

from scas_hub.constants import SCAS_POOL_REPO
from scas_hub.source.recipe import CorpusRecipe

RECIPE = CorpusRecipe(
    name="scas_pool",
    description="Verified-correct answers of 9 teacher models to hendrycks_math and deepscaler questions.",
    repo_id=SCAS_POOL_REPO,
    subsets=("hendrycks_math", "deepscaler"),
    default_subset="all",
    license="mit",
    tags=("math", "reasoning"),
)
