"""Corpus recipes: one module per corpus, each defining `RECIPE = CorpusRecipe(...)`."""
