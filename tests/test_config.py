"""What the config calls loopback or LAN (the only places `local` mode may reach),
and the seed's three modes."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest

from node.config import Config, is_loopback_or_lan, load_config, read_config
from node.errors import ConfigError


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:11434",
        "http://localhost:1234/v1",
        "http://[::1]:8080",
        "http://192.168.1.20:11434",
        "http://10.0.0.7",
        "http://172.20.0.1",
        "http://[fe80::1]",
        "http://[fd12:3456::1]",
        "http://[::ffff:192.168.1.1]",
        "http://printer.local",
    ],
)
def test_lan_and_loopback(url: str) -> None:
    assert is_loopback_or_lan(url)


@pytest.mark.parametrize(
    "url",
    [
        "https://api.example.com",
        "http://8.8.8.8",
        "http://203.0.113.5",  # documentation range: private to ipaddress, nobody's LAN
        "http://198.18.0.1",  # benchmarking range
        "http://100.64.0.1",  # carrier-grade NAT: the provider's network, not yours
        "http://172.32.0.1",
        "http://[2001:db8::1]",
        "http://[::ffff:8.8.8.8]",
        "not a url",
    ],
)
def test_not_lan(url: str) -> None:
    assert not is_loopback_or_lan(url)


# --------------------------------------------------------------------------- the seed's modes

SEED_CONFIGS = {
    # The seed architecture's three example configs, byte for byte.
    "local": '{"mirror_mode": "local", "engine_mode": "local_llm", "sync_enabled": false}',
    "hybrid": '{"mirror_mode": "hybrid", "engine_mode": "remote_llm", "sync_enabled": true}',
    "cloud": '{"mirror_mode": "cloud", "engine_mode": "remote_llm", "sync_enabled": true}',
}


@pytest.mark.parametrize("name", sorted(SEED_CONFIGS))
def test_the_seeds_example_configs_load_verbatim(name: str, tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(SEED_CONFIGS[name])
    config = load_config(path)
    assert asdict(config) | json.loads(SEED_CONFIGS[name]) == asdict(config)
    assert config.mirror_mode == name


@pytest.mark.parametrize("mode", ["hybrid", "cloud"])
def test_remote_llm_is_allowed_with_the_persons_own_key_beyond_local(mode: str) -> None:
    config = Config(mirror_mode=mode, engine_mode="remote_llm").validate()
    assert config.effective_model == "openai/gpt-4o-mini"


def test_local_mode_refuses_a_remote_model_and_names_the_way_out() -> None:
    with pytest.raises(ConfigError) as caught:
        Config(mirror_mode="local", engine_mode="remote_llm").validate()
    assert "mirror mode hybrid" in str(caught.value) and "mirror engine" in str(caught.value)


@pytest.mark.parametrize("base", ["https://api.example.com/v1", "http://8.8.8.8:11434"])
def test_local_mode_keeps_the_local_model_on_this_machine_or_the_lan(base: str) -> None:
    with pytest.raises(ConfigError, match="on this machine or the LAN"):
        Config(mirror_mode="local", engine_mode="local_llm", engine_api_base=base).validate()
    for mode in ("hybrid", "cloud"):
        Config(mirror_mode=mode, engine_mode="local_llm", engine_api_base=base).validate()


def test_read_config_gives_what_an_invalid_file_says(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text('{"mirror_mode": "orbit", "relays": ["https://relay.example"]}')
    with pytest.raises(ConfigError, match="orbit"):
        load_config(path)
    written = read_config(path)
    assert written.mirror_mode == "orbit" and written.relays == ("https://relay.example",)
    path.write_text('{"mirror_mode": 3}')
    with pytest.raises(ConfigError, match="must be text"):
        read_config(path)
