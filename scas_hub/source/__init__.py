"""Sources: adapters that turn a corpus into `Candidate` records, plus builder lookup."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import SourceError
from ..records import Candidate
from .jsonl_pool import find_teacher_files, iter_candidates
from .recipe import CorpusRecipe

__all__ = ["CorpusRecipe", "SourceInfo", "OpenedSource", "open_source", "list_builders", "load_builder"]


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


@dataclass
class OpenedSource:
    info: SourceInfo
    files: list[tuple[str | None, Path]] = field(default_factory=list)

    def candidates(self) -> Iterator[Candidate]:
        return iter_candidates(self.files)


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
    try:
        module = importlib.import_module(f"scas_hub.builders.{name.replace('-', '_')}")
    except ModuleNotFoundError as err:
        raise SourceError(f"no builder named {name!r}") from err
    recipe = getattr(module, "RECIPE", None)
    if not isinstance(recipe, CorpusRecipe):
        raise SourceError(f"builders/{name}.py does not define RECIPE = CorpusRecipe(...)")
    return recipe


def _is_builder(name: str) -> bool:
    try:
        load_builder(name)
    except SourceError:
        return False
    return True


def _hub_download(repo_id: str, subsets: tuple[str, ...], revision: str | None) -> tuple[Path, str]:
    """Download the teacher files of `subsets` at a revision resolved to a commit SHA."""
    from huggingface_hub import HfApi, snapshot_download
    from huggingface_hub.errors import RepositoryNotFoundError

    try:
        sha = HfApi().dataset_info(repo_id, revision=revision).sha
        patterns = [f"data/{s}/*.jsonl" for s in subsets] if subsets else ["*.jsonl", "**/*.jsonl"]
        path = snapshot_download(repo_id, repo_type="dataset", revision=sha, allow_patterns=patterns)
    except RepositoryNotFoundError as err:
        raise SourceError(
            f"dataset {repo_id!r} not found on the Hub (if it is private, log in with `hf auth login`)"
        ) from err
    except Exception as err:  # HTTP, connection and cache errors all mean the same to the user
        raise SourceError(
            f"cannot download {repo_id!r} from the Hub ({type(err).__name__}: {err}); "
            "check your network and HF_ENDPOINT, or pass a local folder with --source"
        ) from err
    return Path(path), sha


def open_source(source: str, subset: str | None = None, revision: str | None = None) -> OpenedSource:
    """Resolve a builder name, a local folder/file, or a Hub dataset id to candidate records.

    Raises:
        SourceError: the source does not exist, or has no teacher files for the subset.
    """
    local = Path(source).expanduser()
    if local.exists():
        subsets = tuple(s.strip() for s in subset.split(",")) if subset and subset != "all" else ()
        files = find_teacher_files(local, subsets)
        info = SourceInfo(name=local.name, repo_id=None, revision=None,
                          subsets=tuple(sorted({s for s, _ in files if s})))
        return OpenedSource(info, files)
    if _is_builder(source):
        recipe = load_builder(source)
        subsets = recipe.resolve_subsets(subset)
        rev = revision or recipe.revision
        if recipe.local_path:
            root = Path(__file__).resolve().parent.parent / recipe.local_path
            files, sha = find_teacher_files(root, subsets), rev
        else:
            root, sha = _hub_download(recipe.repo_id, subsets, rev)
            files = find_teacher_files(root, subsets)
        info = SourceInfo(name=recipe.name, repo_id=recipe.repo_id, revision=sha, subsets=subsets,
                          license=recipe.license, tags=recipe.tags, synthetic=recipe.synthetic,
                          builder=recipe.name, description=recipe.description)
        return OpenedSource(info, files)
    if source.count("/") == 1 and not source.startswith((".", "/", "~")):
        subsets = tuple(s.strip() for s in subset.split(",")) if subset and subset != "all" else ()
        root, sha = _hub_download(source, subsets, revision)
        files = find_teacher_files(root, subsets)
        return OpenedSource(SourceInfo(name=source, repo_id=source, revision=sha,
                                       subsets=tuple(sorted({s for s, _ in files if s}))), files)
    raise SourceError(
        f"source {source!r} is not a local path, a builder ({', '.join(sorted(list_builders()))}) "
        "or a Hub dataset id (org/name)"
    )
