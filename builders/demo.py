"""The bundled demo corpus: synthetic arithmetic questions answered in six teacher styles."""

from scas_hub.source.recipe import FILE_TEACHER, CorpusRecipe

RECIPE = CorpusRecipe(
    name="demo",
    description=(
        "A small synthetic corpus written for scas-hub: arithmetic word problems, each answered in "
        "several teacher styles (terse, step-by-step, verbose, LaTeX, code, self-checking)."
    ),
    local_path="data",
    subsets=("demo",),
    default_subset="demo",
    teacher=FILE_TEACHER,
    verification="math",  # every answer is checked against the reference with math-verify
    license="mit",
    tags=("math", "demo"),
    synthetic=True,
)
