"""Sources: adapters that turn a corpus into `Candidate` records, plus builder lookup.

`open_source` takes a builder name (`scas-hub builders`), a recipe file (`my_corpus.py` defining
`RECIPE = CorpusRecipe(...)`), a `CorpusRecipe` object, a local folder or file in the published
pool's layout, or a Hub dataset id in that layout.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import pkgutil
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import ModuleType
from typing import Any

from ..errors import SourceError
from ..hub_access import describe, is_local_path, missing_path_message, what_to_do
from ..records import Candidate
from .files import DATA_SUFFIXES, TOP_LEVEL, find_pattern_files, find_pool_files, iter_rows
from .layouts import DataFile, iter_candidates
from .recipe import FILE_TEACHER, VERIFY_RULES, Columns, CorpusRecipe, TeacherDataset, check_verification

__all__ = [
    "Columns",
    "CorpusRecipe",
    "DataFile",
    "OpenedSource",
    "SourceInfo",
    "TeacherDataset",
    "VERIFY_RULES",
    "list_builders",
    "load_builder",
    "load_recipe_file",
    "open_source",
    "source_record",
]

PACKAGE_DIR = Path(__file__).resolve().parent.parent
EMPTY_SOURCE = (
    "--source is empty: pass a builder (`scas-hub builders`), a folder of per-teacher files, a recipe "
    "file or a Hub dataset id, or leave --source out for the default corpus"
)


def check_source_given(source: object) -> None:
    """Refuse a blank source name (`Path("")` is the current folder; a blank is never the default corpus).

    Raises:
        SourceError: `source` is a blank string.
    """
    if isinstance(source, str) and not source.strip():
        raise SourceError(EMPTY_SOURCE)


@dataclass(frozen=True)
class SourceInfo:
    """What the card records about the corpus."""

    name: str
    repo_id: str | None
    revision: str | None
    subsets: tuple[str, ...]
    license: str = "other"
    tags: tuple[str, ...] = ()
    synthetic: bool = False
    builder: str | None = None
    description: str = ""
    layout: str = "long"
    verification: str = "auto"
    datasets: tuple[tuple[str, str], ...] = ()
    """(Hub dataset id, commit SHA) of every dataset read; several for joined corpora."""


def source_record(info: SourceInfo) -> dict[str, Any]:
    """What `selection_stats.json` and the card record about the corpus."""
    return {
        "name": info.name,
        "repo_id": info.repo_id,
        "revision": info.revision,
        "subsets": list(info.subsets),
        "license": info.license,
        "tags": list(info.tags),
        "synthetic": info.synthetic,
        "layout": info.layout,
        "verification": info.verification,
        "datasets": [f"{r}@{sha}" for r, sha in info.datasets],
    }


@dataclass
class OpenedSource:
    """A resolved corpus: its data files and the recipe that maps their rows to candidates."""

    info: SourceInfo
    files: list[DataFile] = field(default_factory=list)
    recipe: CorpusRecipe | None = None

    @property
    def verification(self) -> str:
        return self.info.verification

    def sample_columns(self, files: int = 3, rows: int = 3) -> dict[str, str]:
        """Top-level columns of the first rows of the first files, with their value types (for
        messages that say which columns a corpus has)."""
        found: dict[str, str] = {}
        for data_file in self.files[:files]:
            try:
                for (row, _), _ in zip(iter_rows(data_file.path), range(rows), strict=False):
                    for name, value in row.items():
                        found.setdefault(name, type(value).__name__ if value is not None else "null")
            except SourceError:
                continue
        return found

    def candidates(self) -> Iterator[Candidate]:
        """Stream the candidates of every data file (bounded memory)."""
        recipe = self.recipe or _pool_recipe(self.info.name)
        return iter_candidates(self.files, recipe.columns, recipe.teacher)


def _pool_recipe(name: str) -> CorpusRecipe:
    """Local folders and Hub ids without a recipe: the published pool's schema, a file per teacher."""
    return CorpusRecipe(name=name, description="", teacher=FILE_TEACHER)


# ---- builders ---------------------------------------------------------------------------------------


def list_builders() -> dict[str, CorpusRecipe]:
    """All recipes in builders/, by name."""
    from .. import builders

    out = {}
    for mod in pkgutil.iter_modules(builders.__path__):
        if not mod.name.startswith("_"):
            recipe = load_builder(mod.name)
            out[recipe.name] = recipe
    return out


def load_builder(name: str) -> CorpusRecipe:
    """The `RECIPE` of builders/<name>.py.

    Raises:
        SourceError: no such builder, or it defines no `RECIPE`.
    """
    try:
        module = importlib.import_module(f"scas_hub.builders.{name.replace('-', '_')}")
    except ModuleNotFoundError as err:
        raise SourceError(f"no builder named {name!r}") from err
    return _recipe_of(module, f"builders/{name}.py")


def load_recipe_file(path: str | Path) -> CorpusRecipe:
    """The `RECIPE` of a user's recipe file (a few lines of `CorpusRecipe(...)`)."""
    path = Path(path)
    spec = importlib.util.spec_from_file_location(f"scas_hub_user_recipe_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise SourceError(f"cannot load recipe file {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return _recipe_of(module, str(path))


def _recipe_of(module: ModuleType, where: str) -> CorpusRecipe:
    recipe = getattr(module, "RECIPE", None)
    if not isinstance(recipe, CorpusRecipe):
        raise SourceError(f"{where} does not define RECIPE = CorpusRecipe(...)")
    return recipe


def _is_builder(name: str) -> bool:
    try:
        load_builder(name)
    except SourceError:
        return False
    return True


# ---- Hub ----------------------------------------------------------------------------------------------


def _hub_download(repo_id: str, patterns: list[str], revision: str | None) -> tuple[Path, str]:
    """Download the files matching `patterns` at a revision resolved to a commit SHA."""
    from huggingface_hub import HfApi, snapshot_download
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    try:
        sha = HfApi().dataset_info(repo_id, revision=revision).sha
        assert sha is not None, "the Hub names the commit a revision resolves to"
        path = snapshot_download(repo_id, repo_type="dataset", revision=sha, allow_patterns=patterns)
    except RepositoryNotFoundError as err:
        raise SourceError(
            f"dataset {repo_id!r} not found on the Hub (if it is private, log in with `hf auth login`)"
        ) from err
    except RevisionNotFoundError as err:
        raise SourceError(f"dataset {repo_id!r} has no revision {revision!r}") from err
    except Exception as err:  # HTTP, connection and cache errors all mean the same to the user
        raise SourceError(
            f"cannot download {repo_id!r} from the Hub ({describe(err)}); {what_to_do()}, "
            "or pass a local folder with --source"
        ) from err
    return Path(path), sha


def _download_patterns(recipe: CorpusRecipe, subsets: tuple[str, ...]) -> list[str]:
    if recipe.data_files:
        return sorted({p for s in subsets for p in recipe.patterns(s)})
    if subsets:
        folders = [f"{base}{s}/" for s in subsets if s != TOP_LEVEL for base in ("data/", "")]
        return [f"{folder}*{suffix}" for folder in folders + [""] * (TOP_LEVEL in subsets) for suffix in DATA_SUFFIXES]
    return [f"{glob}{suffix}" for glob in ("*", "**/*") for suffix in DATA_SUFFIXES]


# ---- opening a source ---------------------------------------------------------------------------------


def _subsets(recipe: CorpusRecipe, subset: str | None) -> tuple[str, ...]:
    subsets = recipe.resolve_subsets(subset)
    unknown = [s for s in subsets if recipe.subsets and s not in recipe.subsets]
    if unknown:
        raise SourceError(
            f"{recipe.name} has no subset {', '.join(unknown)}; subsets: {', '.join(recipe.subsets)}, all"
        )
    return subsets


def _files_under(root: Path, recipe: CorpusRecipe, subsets: tuple[str, ...], teacher: str | None = None):
    pairs = find_pattern_files(root, subsets, recipe.patterns) if recipe.data_files else find_pool_files(root, subsets)
    return [DataFile(path, subset, teacher) for subset, path in pairs]


def _open_recipe(
    recipe: CorpusRecipe,
    subset: str | None,
    revision: str | None,
    base: Path,
    builder: str | None,
    verification: str | None,
) -> OpenedSource:
    subsets = _subsets(recipe, subset)
    datasets: list[tuple[str, str]] = []

    def root_of(repo_id: str | None, local_path: str | None, rev: str | None) -> Path:
        if repo_id:
            root, sha = _hub_download(repo_id, _download_patterns(recipe, subsets), rev)
            datasets.append((repo_id, sha))
            return root
        if local_path:
            return (base / local_path).resolve()
        raise SourceError(f"recipe {recipe.name!r} names neither a Hub repo_id nor a local_path")

    if recipe.teachers:
        if revision:
            raise SourceError(f"{recipe.name} joins several datasets: pin their revisions in the recipe")
        files = [
            f
            for t in recipe.teachers
            for f in _files_under(root_of(t.repo_id, t.local_path, t.revision), recipe, subsets, t.teacher)
        ]
    else:
        files = _files_under(root_of(recipe.repo_id, recipe.local_path, revision or recipe.revision), recipe, subsets)
    rule = verification or recipe.verification
    check_verification(rule)
    found_subsets = tuple(s for s in subsets if s != TOP_LEVEL) or tuple(sorted({f.subset for f in files if f.subset}))
    info = SourceInfo(
        name=recipe.name,
        repo_id=datasets[0][0] if len(datasets) == 1 else None,
        revision=datasets[0][1] if len(datasets) == 1 else (revision or recipe.revision),
        subsets=found_subsets,
        license=recipe.license,
        tags=recipe.tags,
        synthetic=recipe.synthetic,
        builder=builder,
        description=recipe.description,
        layout=recipe.layout,
        verification=rule,
        datasets=tuple(datasets),
    )
    return OpenedSource(info, files, recipe)


def open_source(
    source: str | os.PathLike[str] | CorpusRecipe,
    subset: str | None = None,
    revision: str | None = None,
    *,
    verification: str | None = None,
) -> OpenedSource:
    """Resolve a source to its data files and recipe (nothing is read yet).

    Args:
        source: builder name, recipe file (`*.py` defining `RECIPE`), `CorpusRecipe`, local folder
            or file in the published pool's layout, or Hub dataset id in that layout.
        subset: a subset, `a,b`, or `all` (default: the recipe's default subset).
        revision: Hub revision (branch, tag or SHA); resolved to a commit SHA for the card.
        verification: override the recipe's rule (`auto`, `flags`, `math`, `trusted`).

    Raises:
        SourceError: the source does not exist, or has no data files for the subset.
    """
    if isinstance(source, CorpusRecipe):
        return _open_recipe(source, subset, revision, Path.cwd(), None, verification)
    check_source_given(source)
    local = Path(source).expanduser()
    if local.is_file() and local.suffix == ".py":
        recipe = load_recipe_file(local)
        return _open_recipe(recipe, subset, revision, local.resolve().parent, None, verification)
    if local.exists():
        recipe = replace(_pool_recipe(local.name), local_path=str(local.resolve()))
        return _open_recipe(recipe, subset, None, Path.cwd(), None, verification)
    source = os.fspath(source)  # a path that does not exist is looked up by name, as its text
    if _is_builder(source):
        return _open_recipe(load_builder(source), subset, revision, PACKAGE_DIR, source, verification)
    if not is_local_path(source):
        recipe = replace(_pool_recipe(source), repo_id=source)
        return _open_recipe(recipe, subset, revision, Path.cwd(), None, verification)
    if "/" in source or "\\" in source or source.startswith((".", "~")):
        raise SourceError(
            missing_path_message(source, "file or folder") + "; --source takes a folder of "
            "per-teacher files, a recipe file (.py), a builder or a Hub dataset id (org/name)"
        )
    raise SourceError(
        f"source {source!r} is not a local path, a recipe file, a builder "
        f"({', '.join(sorted(list_builders()))}) or a Hub dataset id (org/name)"
    )
