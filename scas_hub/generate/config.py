"""How `generate` asks the teachers: `GenerateConfig` and its `RetryPolicy`, the one home of
`scas-hub generate`'s request options (the CLI builds its flags from these fields).

`RoutingConfig` says how student-routed generation probes the teachers. Nothing heavy is imported
here (no HTTP client, no torch), so building the parser stays fast.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import ConfigError
from ..select import SelectionConfig


@dataclass(frozen=True)
class RetryPolicy:
    """How a teacher request is retried (429, 5xx, timeouts, dropped connections)."""

    retries: int = field(default=4, metadata={"help": "tries after the first on 429, 5xx, timeouts, drops"})
    """Tries after the first one."""
    backoff: float = field(default=1.0, metadata={"help": "seconds before the first retry (doubled each time)"})
    """Seconds before the first retry; doubled each time."""
    max_backoff: float = 30.0
    timeout: float = field(default=600.0, metadata={"help": "seconds one request may take"})
    """Seconds a request may take (read timeout)."""


@dataclass
class GenerateConfig:
    """How `generate` asks the teachers (a teacher's own settings win over these)."""

    samples: int = field(default=1, metadata={"help": "answers per teacher and question", "metavar": "K"})
    max_tokens: int = field(default=1024, metadata={"help": "most tokens per answer"})
    temperature: float | None = field(default=None, metadata={"help": "default: the server's"})
    """None: the server's default."""
    top_p: float | None = field(default=None, metadata={"help": "default: the server's"})
    seed: int | None = field(default=None, metadata={"help": "sample k is requested with seed S + k (default: none)"})
    """Sample k of a question is requested with seed `seed + k`."""
    system_prompt: str | None = field(
        default=None,
        metadata={
            "help": "for teachers without their own system (default: the question's own, else the default one)",
            "metavar": "TEXT",
        },
    )
    """Sent to every teacher without its own `system`; else the question's own, else the default."""
    concurrency: int = field(default=8, metadata={"help": "requests in flight at once"})
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    api_key_env: str | None = field(
        default=None,
        metadata={
            "help": "environment variable holding the endpoints' API key, never written anywhere (default: no key)",
            "metavar": "NAME",
        },
    )
    vllm_python: str | None = field(
        default=None,
        metadata={
            "help": "python of the vLLM environment (default: $SCAS_HUB_VLLM_PYTHON, else .venv-vllm)",
            "metavar": "PATH",
        },
    )
    vllm_args: tuple[str, ...] = field(
        default=(),
        metadata={
            "help": "more arguments for the vLLM servers scas-hub starts, e.g. "
            "--vllm-args='--enforce-eager --dtype float32' (default: none)",
            "metavar": "'ARGS'",
        },
    )
    """More arguments for the vLLM servers scas-hub starts (`--vllm-args` is one shell-quoted string)."""
    progress: bool = True


@dataclass(frozen=True)
class RoutingConfig:
    """Student-routed generation: every teacher answers a probe, the student's SCAS picks choose
    the teachers that answer the rest (see `generate.routing`)."""

    student: str = field(
        metadata={
            "help": "student-routed generation: this student scores every teacher's probe answers "
            "(default: no routing)",
            "flag": "--route-student",
            "dest": "route_student",
            "metavar": "STUDENT",
        }
    )
    probe: int = field(
        default=50,
        metadata={
            "help": "--route-student: questions every teacher answers",
            "flag": "--route-probe",
            "dest": "route_probe",
            "metavar": "N",
        },
    )
    """Questions every teacher answers."""
    keep: int = field(
        default=2,
        metadata={
            "help": "--route-student: the rest goes to the M teachers with the most SCAS picks",
            "flag": "--route-keep",
            "dest": "route_keep",
            "metavar": "M",
        },
    )
    """Teachers that answer the rest."""
    selection: SelectionConfig = SelectionConfig()
    verification: str | None = field(
        default=None,
        metadata={
            "help": "--route-student: how probe answers are verified (default: auto)",
            "flag": "--route-verify",
            "dest": "route_verify",
            "choices": ["auto", "flags", "math", "trusted"],
        },
    )
    """The probe's verification rule (`auto`, `math`, `trusted`, ...; default: the corpus's, `auto`)."""
    dtype: str = "auto"
    device: str | None = None
    progress: bool = True

    def check(self, n_teachers: int) -> None:
        """Raises `ConfigError` unless the probe has questions and some, not all, teachers are kept."""
        if self.probe < 1:
            raise ConfigError("--route-probe must be at least 1")
        if not 1 <= self.keep < n_teachers:
            raise ConfigError(f"--route-keep must be between 1 and {n_teachers - 1} (there are {n_teachers} teachers)")
