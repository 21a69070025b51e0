"""Render candidates with the student's chat template and find the Q and A token regions.

Q = positions [0, n_prompt), A = [n_prompt, n_full); special tokens belong to neither.
`n_prompt` is the length of the generation prompt's tokens, or of the longest common prefix with
the full conversation when the prompt is not a prefix (some templates rewrite earlier turns).

The template is the tokenizer's own or an override (`--chat-template FILE`); `chat_template_sha256`
names the exact template string candidates are rendered with (recorded in the student facts of
`selection_stats.json`, and part of the score cache key).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

from ..errors import StudentError
from ..records import Candidate

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


@dataclass(frozen=True)
class EncodedCandidate:
    """Token ids of one rendered conversation and where its answer starts."""

    input_ids: list[int]
    n_prompt: int
    answer_content_ids: tuple[int, ...] = ()
    """The answer text tokenized alone, to tell empty or control-token-only answers apart."""

    @property
    def prefix(self) -> tuple[int, ...]:
        return tuple(self.input_ids[: self.n_prompt])

    @property
    def answer_ids(self) -> list[int]:
        return self.input_ids[self.n_prompt :]


def special_token_ids(tokenizer: PreTrainedTokenizerBase) -> set[int]:
    """All ids the tokenizer treats as special (declared specials and special added tokens)."""
    ids = set(tokenizer.all_special_ids)
    for token_id, added in getattr(tokenizer, "added_tokens_decoder", {}).items():
        if getattr(added, "special", False):
            ids.add(int(token_id))
    return ids


def common_prefix_length(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


def read_chat_template(template: str | os.PathLike) -> str:
    """A Jinja chat template given as text or as a file (a path, or a string without `{{`/`{%`) -> its text.

    Raises:
        StudentError: the file cannot be read.
    """
    if isinstance(template, str) and ("{{" in template or "{%" in template):
        return template
    path = Path(template).expanduser()
    try:
        return path.read_text(encoding="utf-8")
    except OSError as err:
        raise StudentError(
            f"cannot read the chat template file {str(path)!r} ({err.strerror or err}); "
            "pass a Jinja file, e.g. --chat-template chat_template.jinja"
        ) from err


def resolve_chat_template(tokenizer: PreTrainedTokenizerBase, chat_template: str | None = None) -> str:
    """The template string candidates are rendered with: `chat_template` (an override) or the
    tokenizer's own (its `default` one when it has several).

    Raises:
        StudentError: the tokenizer has no chat template and none was given, or the template does not
            compile, tries to leave Jinja's sandbox or fails on a system/user/assistant conversation.
    """
    if chat_template is None and not getattr(tokenizer, "chat_template", None):
        raise StudentError(
            "the student's tokenizer has no chat template: pass one with --chat-template FILE "
            "(Python: StudentConfig(..., chat_template=...)) or use a student that ships one (e.g. an -Instruct model)"
        )
    try:
        template = tokenizer.get_chat_template(chat_template)
    except ValueError as err:  # several named templates and no default
        raise StudentError(f"cannot choose the student's chat template ({err}); pass --chat-template FILE") from err
    _check_renders(tokenizer, template, overridden=chat_template is not None)
    return template


def _template_error(
    err: Exception, overridden: bool, what: str = "a system/user/assistant conversation"
) -> StudentError:
    """One line for a template that does not compile, leaves the sandbox or fails to render."""
    from jinja2 import TemplateSyntaxError
    from jinja2.sandbox import SecurityError

    whose = "the chat template given with --chat-template" if overridden else "the student's own chat template"
    fix = "fix that file" if overridden else "pass a working one with --chat-template FILE"
    detail = " ".join(str(err).split()).rstrip(".")
    if isinstance(err, TemplateSyntaxError):
        return StudentError(f"{whose} is not valid Jinja (line {err.lineno}: {detail}); {fix}")
    if isinstance(err, SecurityError):
        return StudentError(
            f"{whose} tries to leave Jinja's sandbox ({detail}), which scas-hub never allows; "
            f"a chat template may only format the messages: {fix}"
        )
    return StudentError(f"{whose} fails on {what} ({type(err).__name__}: {detail}); {fix}")


def _check_renders(tokenizer: PreTrainedTokenizerBase, template: str, overridden: bool) -> None:
    """Render a probe conversation (as the scorer renders candidates), so a broken template fails
    before any work.

    Raises:
        StudentError: the template does not compile, leaves Jinja's sandbox or fails to render.
    """
    from jinja2 import TemplateError

    probe = Candidate("probe", "probe", "What is 1 + 1?", "1 + 1 = 2")
    try:
        tokenizer.apply_chat_template([probe.messages()], tokenize=False, chat_template=template)
        tokenizer.apply_chat_template(
            [probe.prompt_messages()], tokenize=False, add_generation_prompt=True, chat_template=template
        )
    except (TemplateError, ArithmeticError, LookupError, TypeError, ValueError) as err:  # the template's own
        raise _template_error(err, overridden) from err


def chat_template_sha256(tokenizer: PreTrainedTokenizerBase, chat_template: str | None = None) -> str:
    """SHA-256 (hex) of the template string the scorer renders with (see `resolve_chat_template`).

    Stored as `chat_template_sha256` in the student facts (`selection_stats.json["student"]`), so a
    later stage (training) can check it uses the same template the scores were computed with.

    Raises:
        StudentError: as `resolve_chat_template`.
    """
    return hashlib.sha256(resolve_chat_template(tokenizer, chat_template).encode("utf-8")).hexdigest()


class ChatEncoder:
    """Turns candidates into `EncodedCandidate`s with one tokenizer's chat template (or `chat_template`).

    Raises:
        StudentError: no chat template (see `resolve_chat_template`).
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, chat_template: str | None = None):
        self.tokenizer = tokenizer
        self.chat_template = resolve_chat_template(tokenizer, chat_template)
        self._overridden = chat_template is not None
        self._prompt_cache: dict[tuple[str, str], list[int]] = {}

    def _render(self, conversations: list[list[dict[str, str]]], add_generation_prompt: bool) -> list[str]:
        from jinja2 import TemplateError

        try:
            rendered = self.tokenizer.apply_chat_template(
                conversations,
                tokenize=False,
                add_generation_prompt=add_generation_prompt,
                chat_template=self.chat_template,
            )
            return cast("list[str]", rendered)  # untokenized, a batch of conversations renders as strings
        except TemplateError as err:  # a template that fails only on some texts
            raise _template_error(err, self._overridden, "one of the candidates") from err

    def _tokenize(self, texts: list[str]) -> list[list[int]]:
        # the rendered template already holds every special token it wants
        return self.tokenizer(texts, add_special_tokens=False)["input_ids"]

    def encode(self, candidates: list[Candidate]) -> list[EncodedCandidate]:
        """Encode a batch of candidates (batched rendering and tokenization)."""
        if not candidates:
            return []
        full = self._tokenize(self._render([c.messages() for c in candidates], False))
        missing = {}
        for c in candidates:
            key = (c.system_prompt, c.instruction)
            if key not in self._prompt_cache and key not in missing:
                missing[key] = c
        if missing:
            keys = list(missing)
            prompts = self._tokenize(self._render([missing[k].prompt_messages() for k in keys], True))
            self._prompt_cache.update(zip(keys, prompts, strict=True))
        contents = self._tokenize([c.answer for c in candidates])
        out = []
        for c, ids, content in zip(candidates, full, contents, strict=True):
            prompt = self._prompt_cache[(c.system_prompt, c.instruction)]
            n_prompt = len(prompt) if ids[: len(prompt)] == prompt else common_prefix_length(prompt, ids)
            out.append(EncodedCandidate(input_ids=list(ids), n_prompt=n_prompt, answer_content_ids=tuple(content)))
        return out

    def clear_cache(self) -> None:
        self._prompt_cache.clear()
