"""The node's config file: the seed architecture's mode flags, validated.

``config.json`` in the home::

    {"mirror_mode": "local", "engine_mode": "offline", "sync_enabled": false}

``local`` opens no connection but to LAN peers and a loopback/LAN model;
``hybrid`` may also reach the person's relays and Commons servers; ``cloud``
may use a remote model API with the person's own key.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from .errors import ConfigError

MIRROR_MODES = ("local", "hybrid", "cloud")
ENGINE_MODES = ("offline", "local_llm", "remote_llm")
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
        for address in self.discovery_interfaces:
            if not isinstance(address, str) or not address:
                raise ConfigError(f"discovery_interfaces must be IP addresses (got {address!r})")
        if self.engine_mode == "remote_llm" and self.mirror_mode != "cloud":
            raise ConfigError(
                "engine_mode remote_llm needs mirror_mode cloud "
                "(run: mirror mode cloud), or choose engine_mode offline or local_llm"
            )
        return self

    def with_changes(self, **changes: Any) -> Config:
        return replace(self, **changes).validate()


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
    try:
        return Config(**values).validate()
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def _type_name(kind: type) -> str:
    return {str: "text", bool: "true or false", int: "a whole number", float: "a number"}.get(
        kind, kind.__name__
    )


def save_config(path: Path, config: Config) -> None:
    """Write *config* atomically (temporary file, fsync, rename)."""
    config.validate()
    data = {"version": CONFIG_VERSION, **asdict(config)}
    data = {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with tmp.open("w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
