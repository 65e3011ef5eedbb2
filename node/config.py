"""The node's config file: the seed architecture's mode flags, validated.

``config.json`` in the home::

    {"mirror_mode": "local", "engine_mode": "offline", "sync_enabled": false}

The seed architecture's three example configs load verbatim::

    {"mirror_mode": "local", "engine_mode": "local_llm", "sync_enabled": false}
    {"mirror_mode": "hybrid", "engine_mode": "remote_llm", "sync_enabled": true}
    {"mirror_mode": "cloud", "engine_mode": "remote_llm", "sync_enabled": true}

``local`` opens no connection but to LAN peers and a loopback/LAN model;
``hybrid`` may also reach the person's relays and Commons servers, and a remote
model API with the person's own key (``remote_llm``); ``cloud`` (hosted on the
platform) may reach all of these.

An invalid file never locks the person out: :func:`read_config` gives what the
file says (checked for types only) so that ``mirror status``, ``mirror mode``
and ``mirror engine`` can show the problem and repair it.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .errors import ConfigError
from .files import write_private_json

MIRROR_MODES = ("local", "hybrid", "cloud")
REMOTE_MODEL_MODES = ("hybrid", "cloud")  # where engine_mode remote_llm may be used
ENGINE_MODES = ("offline", "local_llm", "remote_llm")
ENGINE_EXTRACTIONS = ("offline", "llm")
DEFAULT_LOCAL_MODEL = "ollama_chat/llama3.2"
LOCAL_PROVIDER_PREFIX = "ollama_chat/"  # for a local model named without a provider
DEFAULT_LOCAL_API_BASE = "http://127.0.0.1:11434"
DEFAULT_REMOTE_MODEL = "openai/gpt-4o-mini"
MAX_ENGINE_TIMEOUT_S = 600.0
MAX_COUNTRY_CHARS = 60
CONFIG_VERSION = 1


@dataclass(frozen=True)
class Config:
    mirror_mode: str = "local"
    engine_mode: str = "offline"
    sync_enabled: bool = False
    # Sync (see `mirror serve --help`): where to listen, and LAN discovery.
    sync_listen: str = "0.0.0.0:0"
    discovery: bool = True
    discovery_interfaces: tuple[str, ...] = ()
    sync_peers: tuple[str, ...] = ()  # HOST:PORT addresses to keep sessions with
    relays: tuple[str, ...] = ()  # relay URLs (mirror relay add); local mode uses LAN ones only
    # Engine (see `mirror engine --help`): the model behind local_llm / remote_llm.
    # Empty model / api_base mean the defaults of the engine mode (effective_model).
    engine_model: str = ""
    engine_api_base: str = ""
    engine_timeout_s: float = 30.0
    engine_fallback: bool = True  # offline mirrorback when the model cannot answer
    engine_extraction: str = "offline"  # "llm": the model adds to the offline findings
    engine_key_file: str = ""  # remote_llm key file (default: HOME/llm.key); never the key
    # Updates (see docs/updates.md): where `mirror update check` looks by default, and
    # whether it then installs a *verified* newer release without asking. Off by default.
    update_source: str = ""
    auto_update: bool = False
    # Where the person lives, for the crisis lines a crisis reply names (ISO code such as
    # "DE", see `mirror config country --list`); empty: the international directory.
    country: str = ""

    @property
    def effective_model(self) -> str:
        """The litellm model name: the configured one (a local model named without a
        provider, as Ollama users name them — ``llama3.2`` — is Ollama's), else the
        engine mode's default."""
        model = self.engine_model
        if not model:
            return DEFAULT_REMOTE_MODEL if self.engine_mode == "remote_llm" else DEFAULT_LOCAL_MODEL
        if self.engine_mode == "local_llm" and "/" not in model:
            return LOCAL_PROVIDER_PREFIX + model
        return model

    @property
    def effective_api_base(self) -> str:
        if self.engine_api_base or self.engine_mode != "local_llm":
            return self.engine_api_base
        return DEFAULT_LOCAL_API_BASE

    def validate(self) -> Config:
        if self.mirror_mode not in MIRROR_MODES:
            raise ConfigError(
                f"mirror_mode must be one of {', '.join(MIRROR_MODES)} (got {self.mirror_mode!r})"
            )
        if self.engine_mode not in ENGINE_MODES:
            raise ConfigError(
                f"engine_mode must be one of {', '.join(ENGINE_MODES)} (got {self.engine_mode!r})"
            )
        if not isinstance(self.sync_enabled, bool):
            raise ConfigError(f"sync_enabled must be true or false (got {self.sync_enabled!r})")
        if not isinstance(self.discovery, bool):
            raise ConfigError(f"discovery must be true or false (got {self.discovery!r})")
        parse_host_port(self.sync_listen, what="sync_listen")
        for peer in self.sync_peers:
            parse_host_port(peer, what="sync_peers")
        for relay in self.relays:
            try:
                normalize_relay_url(relay)
            except ValueError as exc:
                raise ConfigError(f"relays: {exc}") from None
        for address in self.discovery_interfaces:
            if not isinstance(address, str) or not address:
                raise ConfigError(f"discovery_interfaces must be IP addresses (got {address!r})")
        self._validate_engine()
        if not isinstance(self.country, str) or len(self.country) > MAX_COUNTRY_CHARS:
            raise ConfigError(f"country must be a country code such as DE (got {self.country!r})")
        if not isinstance(self.update_source, str) or not isinstance(self.auto_update, bool):
            raise ConfigError("update_source must be text and auto_update true or false")
        if self.auto_update and not self.update_source:
            raise ConfigError("auto_update needs an update_source (mirror update source URL)")
        if self.engine_mode == "remote_llm" and self.mirror_mode not in REMOTE_MODEL_MODES:
            raise ConfigError(
                "engine_mode remote_llm sends reflections to a model API off this network, "
                "which local mode never does: run mirror mode hybrid, "
                "or mirror engine offline (or local)"
            )
        return self

    def _validate_engine(self) -> None:
        model = self.engine_model
        if not isinstance(model, str) or len(model) > 200 or any(
            c.isspace() or not c.isprintable() for c in model
        ):
            raise ConfigError(f"engine_model must be a model name like ollama_chat/llama3.2 "
                              f"(got {model!r})")
        base = self.engine_api_base
        if not isinstance(base, str):
            raise ConfigError(f"engine_api_base must be text (got {base!r})")
        if base:
            parts = urlsplit(base)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ConfigError(
                    f"engine_api_base must be an http(s) URL like {DEFAULT_LOCAL_API_BASE} "
                    f"(got {base!r})"
                )
        timeout = self.engine_timeout_s
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, int | float)
            or not 0 < timeout <= MAX_ENGINE_TIMEOUT_S
        ):
            raise ConfigError(
                f"engine_timeout_s must be a number of seconds in (0, {MAX_ENGINE_TIMEOUT_S:g}] "
                f"(got {timeout!r})"
            )
        if not isinstance(self.engine_fallback, bool):
            raise ConfigError(f"engine_fallback must be true or false "
                              f"(got {self.engine_fallback!r})")
        if self.engine_extraction not in ENGINE_EXTRACTIONS:
            raise ConfigError(f"engine_extraction must be one of {', '.join(ENGINE_EXTRACTIONS)} "
                              f"(got {self.engine_extraction!r})")
        if not isinstance(self.engine_key_file, str):
            raise ConfigError(f"engine_key_file must be a path (got {self.engine_key_file!r})")
        if (
            self.engine_mode == "local_llm"
            and self.mirror_mode == "local"
            and not is_loopback_or_lan(self.effective_api_base)
        ):
            raise ConfigError(
                f"in local mode the model server must be on this machine or the LAN "
                f"(got {self.effective_api_base!r}); use a loopback or LAN address, "
                "or choose another mode"
            )

    def with_changes(self, **changes: Any) -> Config:
        return replace(self, **changes).validate()


LAN_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")
)


def is_loopback_or_lan(url: str) -> bool:
    """Whether *url* names this machine or the local network (decided without DNS)."""
    host = urlsplit(url).hostname or ""
    if host == "localhost" or host.endswith((".local", ".lan", ".home.arpa")):
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    # Not ``is_private``: that also covers documentation and reserved ranges
    # (203.0.113.0/24, 198.18.0.0/15, …) that are no one's LAN.
    return ip.is_loopback or ip.is_link_local or any(ip in net for net in LAN_NETWORKS)


def is_loopback_host(host: str) -> bool:
    """Whether *host* (a name or an address, decided without DNS) is this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def normalize_relay_url(text: str) -> str:
    """``http(s)://host[:port][/prefix]`` (``ws``/``wss`` accepted); ValueError if not."""
    if not isinstance(text, str) or not text or len(text) > 2048:
        raise ValueError(f"a relay is an http(s):// URL (got {text!r})")
    try:
        parts = urlsplit(text.strip())
        port = parts.port
    except ValueError:
        raise ValueError(f"a relay is an http(s):// URL (got {text!r})") from None
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    if scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"a relay is an http(s):// URL like https://relay.example (got {text!r})")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ValueError(f"a relay URL has no user, query or fragment (got {text!r})")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    netloc = f"{host}:{port}" if port is not None else host
    return urlunsplit((scheme, netloc, parts.path.rstrip("/"), "", ""))


def parse_host_port(text: str, *, what: str = "address") -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` for IPv6) with a port in 0..65535."""
    if not isinstance(text, str) or ":" not in text:
        raise ConfigError(f"{what} must be HOST:PORT (got {text!r})")
    host, _, port_text = text.rpartition(":")
    host = host.strip("[]")
    try:
        port = int(port_text)
    except ValueError:
        raise ConfigError(f"{what} must be HOST:PORT (got {text!r})") from None
    if not host or not 0 <= port <= 65535:
        raise ConfigError(f"{what} must be HOST:PORT with a port 0-65535 (got {text!r})")
    return host, port


def load_config(path: Path) -> Config:
    """Read and validate *path*; a missing file gives the defaults."""
    config = read_config(path)
    try:
        return config.validate()
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def read_config(path: Path) -> Config:
    """What *path* says, each value of the right type but the whole not validated
    (a missing file gives the defaults); ConfigError when even that cannot be read.

    For the commands that show or repair an invalid config: anything that acts on
    the settings uses :func:`load_config`.
    """
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Config()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a JSON object")
    known = {f.name for f in fields(Config)}
    unknown = sorted(set(data) - known - {"version"})
    if unknown:
        raise ConfigError(f"{path}: unknown setting {unknown[0]!r}")
    version = data.get("version", CONFIG_VERSION)
    if not isinstance(version, int) or version > CONFIG_VERSION:
        raise ConfigError(f"{path}: written by a newer Mirror (config version {version})")
    values = {k: v for k, v in data.items() if k in known}
    defaults = Config()
    for key, value in values.items():
        expected = type(getattr(defaults, key))
        if expected is tuple:
            if not isinstance(value, list):
                raise ConfigError(f"{path}: {key} must be a list")
            values[key] = tuple(value)
        elif expected is float and isinstance(value, int) and not isinstance(value, bool):
            values[key] = float(value)
        elif not isinstance(value, expected):
            raise ConfigError(f"{path}: {key} must be {_type_name(expected)} (got {value!r})")
    return Config(**values)


def _type_name(kind: type) -> str:
    return {str: "text", bool: "true or false", int: "a whole number", float: "a number"}.get(
        kind, kind.__name__
    )


def save_config(path: Path, config: Config) -> None:
    """Write *config* atomically (temporary file, fsync, rename)."""
    config.validate()
    data = {"version": CONFIG_VERSION, **asdict(config)}
    data = {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}
    write_private_json(path, data, indent=2)
