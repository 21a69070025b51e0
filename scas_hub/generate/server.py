"""A vLLM OpenAI-compatible server that scas-hub starts on 127.0.0.1 and always stops.

vLLM lives in its own environment (`make vllm` builds `.venv-vllm`); the server runs
`<python> -m vllm.entrypoints.openai.api_server` from it. The python is, in order: the
`python=` argument, `$SCAS_HUB_VLLM_PYTHON`, `./.venv-vllm/bin/python`, or this interpreter when
vLLM is importable here. The server gets its own process group and is stopped on exit, on
errors and at interpreter exit, so no server outlives the run. A server that does not come up
raises `ConfigError` with the last lines of its log.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx2 as httpx

from ..errors import ConfigError

LOG_TAIL_LINES = 25
CPU_KV_CACHE_GIB = 1
"""KV cache of a vLLM server on a CPU machine (`VLLM_CPU_KVCACHE_SPACE`, GiB), unless the environment sets it."""
START_TIMEOUT = 900.0
"""Seconds a server may take to load its model (about 45 s for the embedded student on 2 CPU cores)."""


def vllm_python(python: str | os.PathLike | None = None) -> str:
    """The interpreter that runs vLLM (see the module docstring).

    Raises:
        ConfigError: none is found.
    """
    candidates = [python, os.environ.get("SCAS_HUB_VLLM_PYTHON"), Path.cwd() / ".venv-vllm" / "bin" / "python"]
    for candidate in candidates:
        if candidate and Path(candidate).exists():
            return str(candidate)
    if importlib.util.find_spec("vllm") is not None:
        return sys.executable
    raise ConfigError(
        "no vLLM found: build its environment with `make vllm` (.venv-vllm), set "
        "SCAS_HUB_VLLM_PYTHON to a python that has vllm, or use an openai:URL#MODEL teacher"
    )


def _die_with_parent() -> None:
    """In the server's process (Linux): SIGTERM when scas-hub dies, even by `kill -9`, so no server is orphaned."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on `host` (an IPv4 address) right now; also the tests' fake servers' (`testing.loopback`)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class VLLMServer:
    """`with VLLMServer(model) as server: server.url` -> `http://127.0.0.1:<port>/v1`."""

    def __init__(
        self,
        model: str,
        *,
        served_name: str | None = None,
        revision: str | None = None,
        python: str | os.PathLike | None = None,
        log_path: str | os.PathLike | None = None,
        max_model_len: int | None = 4096,
        extra_args: tuple[str, ...] = (),
        start_timeout: float = START_TIMEOUT,
        seed: int = 0,
    ):
        self.model = model
        self.served_name = served_name or model
        self.python = vllm_python(python)
        self.port = free_port()
        self.log_path = Path(log_path) if log_path else Path(os.devnull)
        self.start_timeout = start_timeout
        self.command = [
            self.python,
            "-m",
            "vllm.entrypoints.openai.api_server",
            "--model",
            model,
            "--served-model-name",
            self.served_name,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--seed",
            str(seed),
            "--uvicorn-log-level",
            "warning",
        ]
        if revision:
            self.command += ["--revision", revision]
        if max_model_len:
            self.command += ["--max-model-len", str(max_model_len)]
        self.command += list(extra_args)
        self.env = dict(os.environ)
        if shutil.which("nvidia-smi") is None:
            # on CPU vLLM reserves a share of all RAM (--gpu-memory-utilization, 0.92 by default) and refuses
            # to start when that much is not free: a fixed KV cache instead works on a shared machine
            self.env.setdefault("VLLM_CPU_KVCACHE_SPACE", str(CPU_KV_CACHE_GIB))
        self._process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> VLLMServer:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - the server writes to it until it stops
        try:
            self._process = subprocess.Popen(
                self.command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env=self.env,
                preexec_fn=_die_with_parent,
            )
        except OSError as err:
            log.close()
            raise ConfigError(f"cannot start vLLM with {self.python}: {err.strerror}") from err
        log.close()
        atexit.register(self.stop)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            assert self._process is not None
            code = self._process.poll()
            if code is not None:
                raise ConfigError(
                    f"the vLLM server for {self.model} exited with code {code} before it was ready. {self._log_tail()}"
                )
            try:
                if httpx.get(f"{self.url}/models", timeout=2.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(1.0)
        raise ConfigError(
            f"the vLLM server for {self.model} was not ready after {self.start_timeout:.0f} s. {self._log_tail()}"
        )

    def _log_tail(self) -> str:
        if self.log_path == Path(os.devnull) or not self.log_path.exists():
            return "(no log kept)"
        lines = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        # vLLM's workers log the root cause first, then every process adds its own traceback
        cause = next((line for line in lines if re.search(r"\b\w+(Error|Exception): ", line)), None)
        tail = "\n".join(lines[-LOG_TAIL_LINES:])
        return (
            f"First error in its log: {cause.strip()}\n" if cause else ""
        ) + f"Last lines of its log ({self.log_path}):\n{tail}"

    def stop(self) -> None:
        """Stop the server's whole process group (SIGTERM, then SIGKILL after 30 s)."""
        process, self._process = self._process, None
        if process is None:
            return
        atexit.unregister(self.stop)
        if process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=30)
            except ProcessLookupError:
                pass
        # workers the server started in its group and left behind
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)

    def __enter__(self) -> VLLMServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
