"""Config validation: an operator's mistake is named with its key and line, at start."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import ConfigError, load_config, parse_config

REPO = Path(__file__).resolve().parents[2]


def test_example_config_is_valid_and_complete() -> None:
    cfg = load_config(REPO / "callgate.example.toml", environ={})
    assert cfg.site.name == "paris-1"
    assert cfg.mqtt is not None and cfg.mqtt.url == "mqtt://127.0.0.1:1883"
    assert [a.name for a in cfg.asterisk] == ["pbx1"]
    assert cfg.limits.redis_down_policy == "fail_closed"


def test_one_section_is_enough() -> None:
    cfg = parse_config('[agi]\nlisten = "0.0.0.0:4573"\n', "lab.toml", environ={})
    assert cfg.mqtt is None and cfg.asterisk == () and cfg.redis.url == ""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[site]\nname = "x"\n\n[agi]\nlisen = "1.2.3.4:1"\n',
         "c.toml:5: unknown key in [agi] 'lisen' (did you mean 'listen'?)"),
        ('[sight]\nname = "x"\n', "c.toml:1: unknown section 'sight' (did you mean 'site'?)"),
        ('[agi]\nmax_connections = "lots"\n', "c.toml:2: 'max_connections' must be a whole number"),
        ('[limits]\nredis_down_policy = "yolo"\n',
         "c.toml:2: 'redis_down_policy' must be one of fail_closed, fail_open, not 'yolo'"),
        ('[limits]\nunknown_tenant = "deny"\n',
         "c.toml:2: 'unknown_tenant' must be one of allow, refuse, not 'deny'"),
        ('[http]\nlisten = "8080"\n', "c.toml:2: listen address '8080' must be HOST:PORT"),
        ('[[asterisk]]\nhost = "pbx"\n', "c.toml:1: [asterisk] needs 'name'"),
        ('[[asterisk]]\nname = "a"\n\n[[asterisk]]\nname = "a"\nsecert = "x"\n',
         "c.toml:6: unknown key in [asterisk] 'secert' (did you mean 'secret'?)"),
        ('[redis]\nurl = "http://x"\n', "c.toml:2: redis url 'http://x' must start with"),
        ('[redis]\nurl = "redis+cluster://a:b"\n', "c.toml:2: "),
        ('[agi]\nlisten = \n', "c.toml: Invalid value (at line 2, column 10)"),
    ],
)
def test_errors_name_key_and_line(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(text, "c.toml", environ={})
    assert str(err.value).startswith(expected), str(err.value)


def test_environment_overrides_every_section() -> None:
    text = '[agi]\nlisten = "127.0.0.1:4573"\n\n[[asterisk]]\nname = "pbx1"\nsecret = "file"\n'
    env = {
        "CALLGATE_AGI_LISTEN": "0.0.0.0:9999",
        "CALLGATE_AGI_MAX_CONNECTIONS": "7",
        "CALLGATE_REDIS_CLUSTER": "yes",
        "CALLGATE_ASTERISK_0_SECRET": "from-env",
        "CALLGATE_SITE_EMERGENCY_NUMBERS": "112, 911",
        "CALLGATE_MQTT_URL": "mqtt://broker:1883",
    }
    cfg = parse_config(text, "c.toml", environ=env)
    assert cfg.agi.listen == "0.0.0.0:9999"
    assert cfg.agi.max_connections == 7
    assert cfg.redis.cluster is True
    assert cfg.asterisk[0].secret == "from-env"
    assert cfg.site.emergency_numbers == ("112", "911")
    assert cfg.mqtt is not None and cfg.mqtt.url == "mqtt://broker:1883"


def test_bad_environment_value_is_named() -> None:
    with pytest.raises(ConfigError, match="CALLGATE_AGI_MAX_CONNECTIONS: must be a whole number"):
        parse_config("", "c.toml", environ={"CALLGATE_AGI_MAX_CONNECTIONS": "many"})


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "missing.toml", environ={})
