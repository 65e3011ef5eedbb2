"""The one door to litellm: imported lazily, guarded, called on a worker thread.

Theory of operation (notes/deps.md, litellm):

* :func:`load_litellm` sets the offline guards (``LITELLM_LOCAL_MODEL_COST_MAP``,
  ``HF_HUB_OFFLINE``) *before* the first import — otherwise the import fetches
  a price list and some model names fetch a tokenizer from the internet — and
  quiets litellm's own logging and banners. Nothing else in Mirror imports
  litellm; the offline engine never does.
* ``litellm.acompletion`` does not run under trio, so :func:`chat` runs
  ``litellm.completion`` in ``trio.to_thread.run_sync`` and :func:`stream_chat`
  runs it on a worker thread (a trio *system task* owns that thread, so the
  async generator never yields inside a nursery) which hands each chunk back
  with ``trio.from_thread.run``.
* Nothing can hang: litellm gets ``timeout`` (connect and read) and no retries;
  trio waits at most ``timeout_s`` for the first and for every next chunk and
  abandons the thread after that (it ends on its own once its socket times out).
* Every failure becomes an :class:`LLMError` with one line that names the
  server, never the key (:meth:`LLMTarget.redact`).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shlex
import sys
import threading
import warnings
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import trio

from ..config import is_loopback_host
from ..errors import MirrorError

log = logging.getLogger("mirror.llm")

OFFLINE_GUARDS = {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "HF_HUB_OFFLINE": "1"}
LITELLM_LOGGERS = ("LiteLLM", "LiteLLM Proxy", "LiteLLM Router", "litellm")
# litellm imports provider modules lazily, and some warn at import (pydantic on
# litellm's own types); those are not the person's concern, nor errors in tests.
QUIET_WARNINGS = (r"Items? '.*' on TypedDict class",)
STREAM_BUFFER_CHUNKS = 64
MAX_ERROR_CHARS = 200
# An OpenAI-compatible local server (LM Studio, llama.cpp) wants some key; it is not secret.
PLACEHOLDER_LOCAL_KEY = "not-needed"
LITELLM_REQUIREMENT = "litellm>=1.50"  # as in pyproject.toml, for the install hint

Message = dict[str, str]


class LLMError(MirrorError):
    """The model could not answer; ``str()`` is one line fit to show the person."""


def litellm_install_command() -> str:
    """The command that installs litellm into the Python that runs Mirror."""
    return f"{shlex.quote(sys.executable)} -m pip install '{LITELLM_REQUIREMENT}'"


def litellm_installed() -> bool:
    """Whether litellm can be imported here (found, not imported: that costs seconds)."""
    return importlib.util.find_spec("litellm") is not None


@dataclass(frozen=True)
class LLMTarget:
    """Where and how to ask a model. ``api_key`` never appears in repr or messages."""

    model: str
    api_base: str = ""
    timeout_s: float = 30.0
    api_key: str = field(default="", repr=False)
    remote: bool = False

    @property
    def provider(self) -> str:
        return self.model.split("/", 1)[0] if "/" in self.model else "openai"

    def describe(self) -> str:
        where = self.api_base or ("the provider's API" if self.remote else "the default server")
        return f"{self.model} at {where}"

    def redact(self, text: str) -> str:
        if self.api_key and len(self.api_key) >= 4:
            text = text.replace(self.api_key, "[key]")
        return text

    def kwargs(self) -> dict[str, Any]:
        args: dict[str, Any] = {
            "model": self.model,
            "timeout": self.timeout_s,
            "num_retries": 0,
            "max_retries": 0,
        }
        if self.api_base:
            args["api_base"] = self.api_base
        if self.api_key:
            args["api_key"] = self.api_key
        elif not self.remote and self.provider == "openai":
            args["api_key"] = PLACEHOLDER_LOCAL_KEY
        return args


def may_read_private(target: LLMTarget) -> bool:
    """Whether *target* runs on this machine, so private reflections may be shown to it.

    Decided from the configured address alone, without DNS: a loopback address or
    ``localhost``. A remote API, a server on the LAN, a host name or the provider's
    default server may never read a private reflection (issue 16: private
    reflections are used only locally)."""
    return not target.remote and is_loopback_host(urlsplit(target.api_base).hostname or "")


_load_lock = threading.Lock()


def load_litellm() -> Any:
    """Import litellm with the offline guards set first. Safe from any thread."""
    with _load_lock:
        for key, value in OFFLINE_GUARDS.items():
            os.environ[key] = value
        for pattern in QUIET_WARNINGS:
            warnings.filterwarnings("ignore", message=pattern)
        import litellm  # reason: start-up; litellm costs seconds and the offline guards come first

        litellm.suppress_debug_info = True
        litellm.telemetry = False
        setattr(litellm, "set_verbose", False)  # noqa: B010 (not exported)
        for name in LITELLM_LOGGERS:
            logger = logging.getLogger(name)
            logger.setLevel(logging.CRITICAL)
            logger.propagate = False
        return litellm


def _prepare(target: LLMTarget) -> Any:
    litellm = load_litellm()
    if target.provider in ("ollama", "ollama_chat") and target.api_base:
        # otherwise litellm also probes localhost:11434 (notes/deps.md)
        os.environ["OLLAMA_API_BASE"] = target.api_base
    return litellm


def describe_failure(target: LLMTarget, exc: BaseException) -> str:
    """One line for *exc*: what failed and where, never a traceback or the key."""
    name = type(exc).__name__
    text = " ".join(str(exc).split())
    low = text.lower()
    if isinstance(exc, ImportError):  # before the name checks: ModuleNotFoundError
        reason = f"litellm is not installed; install it with: {litellm_install_command()}"
    elif "timeout" in name.lower() or "timed out" in low:
        reason = f"no answer within {target.timeout_s:g} s"
    elif any(k in low for k in ("connection refused", "connecterror", "connect call failed",
                                 "all connection attempts failed", "errno 111",
                                 "connection error")):
        reason = "the server is not reachable"
    elif "authentication" in name.lower() or "401" in low:
        reason = "the API key was refused"
    elif "llm provider not provided" in low:
        reason = ("the model name says no provider: write it like ollama_chat/NAME "
                  "(Ollama) or openai/NAME (an OpenAI-compatible server)")
    elif name == "NotFoundError" or "404" in low:
        reason = "the server does not know this model or path"
    else:
        reason = f"{name}: {text}" if text else name
    line = target.redact(f"{target.describe()}: {reason}")
    return line if len(line) <= MAX_ERROR_CHARS else line[: MAX_ERROR_CHARS - 1] + "…"


def _content_of(response: Any) -> str:
    try:
        content = response.choices[0].message.content
    except (AttributeError, IndexError, KeyError, TypeError):
        raise ValueError("the answer has no message") from None
    if not isinstance(content, str):
        raise ValueError("the answer has no text")
    return content


def _delta_of(chunk: Any) -> str:
    try:
        piece = chunk.choices[0].delta.content
    except (AttributeError, IndexError, KeyError, TypeError):
        return ""
    return piece if isinstance(piece, str) else ""


async def _loaded(target: LLMTarget) -> None:
    """Import litellm (seconds, the first time) before any timeout starts: the
    timeout is for the model's answer, not for loading our own client."""
    try:
        await trio.to_thread.run_sync(_prepare, target)
    except Exception as exc:
        raise LLMError(describe_failure(target, exc)) from None


async def chat(
    target: LLMTarget, messages: Sequence[Message], *, json_mode: bool = False
) -> str:
    """The model's whole answer. Raises :class:`LLMError`; never waits past the timeout."""

    def call() -> str:
        litellm = _prepare(target)
        args = target.kwargs()
        if json_mode:
            args["response_format"] = {"type": "json_object"}
        response = litellm.completion(messages=list(messages), stream=False, **args)
        return _content_of(response)

    await _loaded(target)
    try:
        with trio.fail_after(target.timeout_s + 1.0):
            return await trio.to_thread.run_sync(call, abandon_on_cancel=True)
    except trio.TooSlowError:
        raise LLMError(describe_failure(target, TimeoutError("timed out"))) from None
    except Exception as exc:
        log.info("LLM call failed: %s", describe_failure(target, exc))
        raise LLMError(describe_failure(target, exc)) from None


@dataclass
class _End:
    error: BaseException | None = None


async def stream_chat(target: LLMTarget, messages: Sequence[Message]) -> AsyncIterator[str]:
    """The model's answer in pieces as they arrive. Raises :class:`LLMError`.

    Waits at most ``timeout_s`` for each piece. Closing the generator early
    stops the worker thread at its next piece."""
    await _loaded(target)
    send, receive = trio.open_memory_channel[str | _End](STREAM_BUFFER_CHUNKS)
    stop = threading.Event()

    def worker() -> None:
        end = _End()
        try:
            litellm = _prepare(target)
            response = litellm.completion(messages=list(messages), stream=True, **target.kwargs())
            for chunk in response:
                if stop.is_set():
                    return
                piece = _delta_of(chunk)
                if piece:
                    trio.from_thread.run(send.send, piece)
        except (trio.RunFinishedError, trio.Cancelled, trio.BrokenResourceError,
                trio.ClosedResourceError):
            return
        except Exception as exc:
            end = _End(exc)
        finally:
            if not stop.is_set():
                try:
                    trio.from_thread.run(send.send, end)
                except (trio.RunFinishedError, trio.Cancelled, trio.BrokenResourceError,
                        trio.ClosedResourceError):
                    pass

    async def run_worker() -> None:
        try:
            await trio.to_thread.run_sync(worker, abandon_on_cancel=True)
        except BaseException:  # a system task must never raise
            log.debug("stream worker ended abnormally", exc_info=True)

    trio.lowlevel.spawn_system_task(run_worker)
    try:
        async with receive:
            while True:
                with trio.move_on_after(target.timeout_s) as idle:
                    item = await receive.receive()
                if idle.cancelled_caught:
                    raise LLMError(describe_failure(target, TimeoutError("timed out")))
                if isinstance(item, _End):
                    if item.error is not None:
                        log.info("LLM stream failed: %s", describe_failure(target, item.error))
                        raise LLMError(describe_failure(target, item.error))
                    return
                yield item
    finally:
        stop.set()
