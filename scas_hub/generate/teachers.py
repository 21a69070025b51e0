"""Teacher specs of `scas-hub generate`: `NAME=SPEC` on the command line, or a YAML/JSON file.

A SPEC is either

- `openai:URL#MODEL`: any OpenAI-compatible endpoint (vLLM, SGLang, TGI, a hosted API), or
- a model (Hub id or local folder) that scas-hub serves with a vLLM server on 127.0.0.1,

followed by per-teacher settings as a query string, e.g.
`openai:http://127.0.0.1:8000/v1#Qwen/Qwen2.5-7B-Instruct?temperature=0.2&system=Answer+tersely.`
The API key is never part of a spec: `api_key_env=NAME` names the environment variable that holds it.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from ..errors import ConfigError

SETTINGS = {
    "temperature": float,
    "top_p": float,
    "max_tokens": int,
    "seed": int,
    "system": str,
    "api_key_env": str,
    "revision": str,
}
"""Per-teacher settings a spec or a teachers file may give, with their types."""
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")


@dataclass(frozen=True)
class Sampling:
    """Sampling settings of one teacher's requests (None: the run's default, else the server's)."""

    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    seed: int | None = None


@dataclass(frozen=True)
class TeacherSpec:
    """One teacher: a name, where its answers come from, and its settings."""

    name: str
    model: str
    """The model name sent in requests (`#MODEL` of an endpoint; the served id or folder of a local model)."""
    endpoint: str | None = None
    """Base URL of an OpenAI-compatible API (`.../v1`); None: a vLLM server scas-hub starts."""
    sampling: Sampling = field(default_factory=Sampling)
    system: str | None = None
    api_key_env: str | None = None
    revision: str | None = None

    @property
    def served(self) -> bool:
        """True when scas-hub starts a vLLM server for this teacher."""
        return self.endpoint is None

    def api_key(self) -> str | None:
        """The key from the environment variable the user named (never stored).

        Raises:
            ConfigError: the variable is named but not set.
        """
        if not self.api_key_env:
            return None
        key = os.environ.get(self.api_key_env)
        if not key:
            raise ConfigError(
                f"teacher {self.name!r}: environment variable {self.api_key_env} (api_key_env) is not set"
            )
        return key

    def record(self) -> dict[str, Any]:
        """What files and cards say about the teacher (no key, only the variable's name)."""
        out = asdict(self)
        out["sampling"] = {k: v for k, v in out["sampling"].items() if v is not None}
        return {k: v for k, v in out.items() if v not in (None, {})}

    def with_defaults(self, sampling: Sampling, system: str | None, api_key_env: str | None) -> TeacherSpec:
        """Fill the settings this teacher leaves open with the run's."""
        own = self.sampling
        merged = Sampling(
            *(
                getattr(own, f) if getattr(own, f) is not None else getattr(sampling, f)
                for f in ("temperature", "top_p", "max_tokens", "seed")
            )
        )
        return TeacherSpec(
            self.name,
            self.model,
            self.endpoint,
            merged,
            self.system if self.system is not None else system,
            self.api_key_env or api_key_env,
            self.revision,
        )


def _clean_endpoint(url: str, name: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(
            f"teacher {name!r}: endpoint {url!r} is not an http(s) URL (openai:http://HOST:PORT/v1#MODEL)"
        )
    if parts.username or parts.password:
        raise ConfigError(
            f"teacher {name!r}: put no credentials in the endpoint URL; name the variable that "
            "holds the key with api_key_env=NAME or --api-key-env NAME"
        )
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


def _settings(name: str, values: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in values.items():
        # before the unknown-setting check: `api_key` is not a setting, and its own message says what to do
        if key == "api_key" or (key == "api_key_env" and isinstance(value, str) and value.startswith("sk-")):
            raise ConfigError(f"teacher {name!r}: give the name of an environment variable, not a key")
        if key not in SETTINGS:
            raise ConfigError(f"teacher {name!r}: unknown setting {key!r}; settings: {', '.join(SETTINGS)}")
        try:
            out[key] = SETTINGS[key](value)
        except (TypeError, ValueError) as err:
            raise ConfigError(f"teacher {name!r}: setting {key}={value!r} is not a {SETTINGS[key].__name__}") from err
    return out


def _build(name: str, target: str, settings: dict[str, Any]) -> TeacherSpec:
    if not NAME_PATTERN.match(name):
        raise ConfigError(f"teacher name {name!r}: use letters, digits and . _ + - (it names the teacher's file)")
    settings = _settings(name, settings)
    sampling = Sampling(**{k: settings.pop(k) for k in ("temperature", "top_p", "max_tokens", "seed") if k in settings})
    if target.startswith("openai:"):
        url, sep, model = target[len("openai:") :].rpartition("#")
        if not sep or not url or not model:
            raise ConfigError(
                f"teacher {name!r}: write an endpoint as openai:URL#MODEL, e.g. "
                "openai:http://127.0.0.1:8000/v1#Qwen/Qwen2.5-7B-Instruct"
            )
        return TeacherSpec(name, model, _clean_endpoint(url, name), sampling, **settings)
    if not target:
        raise ConfigError(f"teacher {name!r}: no model given (NAME=MODEL or NAME=openai:URL#MODEL)")
    if "api_key_env" in settings:
        raise ConfigError(f"teacher {name!r}: api_key_env is for openai: endpoints; a local vLLM server needs no key")
    local = Path(target).expanduser()
    model = str(local.resolve()) if local.exists() else target
    return TeacherSpec(name, model, None, sampling, **settings)


def parse_teacher(text: str) -> TeacherSpec:
    """`NAME=SPEC[?key=value&...]` -> a `TeacherSpec`.

    Raises:
        ConfigError: no `NAME=`, an unknown setting, a malformed endpoint.
    """
    name, sep, spec = text.partition("=")
    if not sep or not name.strip():
        raise ConfigError(f"--teacher {text!r}: write NAME=SPEC, e.g. terse=openai:http://127.0.0.1:8000/v1#MODEL")
    target, _, query = spec.partition("?")
    return _build(name.strip(), target.strip(), dict(parse_qsl(query, keep_blank_values=True)))


def load_teachers_file(path: str | Path) -> list[TeacherSpec]:
    """Teachers listed in a YAML or JSON file: a mapping name -> spec, or a list of entries
    `{name, spec | model | endpoint + model, <settings>}`.

    Raises:
        ConfigError: unreadable file or a malformed entry.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"cannot read teachers file {path}: {err.strerror}") from err
    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as err:  # a YAML or JSON syntax error: one line for the user
        raise ConfigError(f"teachers file {path} does not parse: {err}") from err
    if isinstance(data, dict) and "teachers" in data:
        data = data["teachers"]
    if isinstance(data, dict):
        data = [{"name": k, **(v if isinstance(v, dict) else {"spec": v})} for k, v in data.items()]
    if not isinstance(data, list) or not data:
        raise ConfigError(f"teachers file {path}: expected a list of teachers or a mapping name -> spec")
    out = []
    for entry in data:
        if not isinstance(entry, dict) or "name" not in entry:
            raise ConfigError(f"teachers file {path}: every teacher needs a name ({entry!r})")
        entry = dict(entry)
        name = str(entry.pop("name"))
        if "spec" in entry:
            spec = parse_teacher(f"{name}={entry.pop('spec')}")
            extra = _settings(name, entry)
            out.append(
                _build(
                    name,
                    f"openai:{spec.endpoint}#{spec.model}" if spec.endpoint else spec.model,
                    {**_spec_settings(spec), **extra},
                )
            )
            continue
        model = entry.pop("model", None)
        endpoint = entry.pop("endpoint", None)
        if not model:
            raise ConfigError(f"teachers file {path}: teacher {name!r} names no spec or model")
        out.append(_build(name, f"openai:{endpoint}#{model}" if endpoint else str(model), entry))
    return out


def _spec_settings(spec: TeacherSpec) -> dict[str, Any]:
    values = {
        **asdict(spec.sampling),
        "system": spec.system,
        "api_key_env": spec.api_key_env,
        "revision": spec.revision,
    }
    return {k: v for k, v in values.items() if v is not None}


def check_names(teachers: list[TeacherSpec]) -> None:
    """Raises ConfigError when two teachers share a name or there is none."""
    if not teachers:
        raise ConfigError("no teacher: pass --teacher NAME=SPEC (one or more) or --teachers FILE")
    seen: set[str] = set()
    for t in teachers:
        if t.name in seen:
            raise ConfigError(f"two teachers are named {t.name!r}; give each its own name")
        seen.add(t.name)
