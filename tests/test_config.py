"""Settings: the environment, URL forms, precedence, and errors that name the variable."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from redkit import Redkit
from redkit.config import Settings, Target
from redkit.embedded import free_port
from redkit.errors import ConfigError

SECRET = "pw-Zq8sEcReT"


def env_settings(**env: str) -> Settings:
    return Settings.from_env(environ=env)


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"REDIS_URL": "http://localhost:6379"}, "REDIS_URL"),
        ({"REDIS_URL": f"redis://:{SECRET}@localhost:99999"}, "REDIS_URL"),
        ({"REDIS_URL": f"redis://u:{SECRET}@localhost:abc/0"}, "REDIS_URL"),
        ({"REDIS_URL": f"redis://:{SECRET}@localhost:6379/x"}, "REDIS_URL"),
        ({"REDIS_URL": f"redis://:{SECRET}@a:1,b:2"}, "REDIS_URL"),
        ({"REDIS_URL": f"redis+sentinel://:{SECRET}@s1:26379"}, "REDIS_URL"),
        ({"REDIS_URL": f"unix://:{SECRET}@"}, "REDIS_URL"),
        ({"REDIS_URL": "redis://[::1"}, "REDIS_URL"),
        ({"REDIS_PORT": "abc"}, "REDIS_PORT"),
        ({"REDIS_PORT": "0"}, "REDIS_PORT"),
        ({"REDIS_PORT": "70000"}, "REDIS_PORT"),
        ({"REDIS_DB": "-1"}, "REDIS_DB"),
        ({"REDKIT_SOCKET_TIMEOUT": "-1"}, "REDKIT_SOCKET_TIMEOUT"),
        ({"REDKIT_CONNECT_TIMEOUT": "soon"}, "REDKIT_CONNECT_TIMEOUT"),
        ({"REDKIT_RETRIES": "-1"}, "REDKIT_RETRIES"),
        ({"REDKIT_EMBEDDED": "maybe"}, "REDKIT_EMBEDDED"),
        ({"REDKIT_PREFIX": "has space"}, "REDKIT_PREFIX"),
        ({"REDKIT_PREFIX": "{tag}"}, "REDKIT_PREFIX"),
    ],
)
def test_malformed_setting_names_the_variable(env: dict[str, str], variable: str) -> None:
    env = {**env, "REDIS_PASSWORD": SECRET}
    with pytest.raises(ConfigError) as caught:
        env_settings(**env)
    assert variable in str(caught.value)
    assert SECRET not in str(caught.value)
    assert isinstance(caught.value, ValueError)


@given(
    password=st.text(st.characters(categories=["L", "N"]), min_size=8, max_size=30),
    port=st.one_of(st.integers(65536, 10**9), st.text("abcxyz-", min_size=1, max_size=5)),
)
def test_url_errors_never_show_the_password(password: str, port: object) -> None:
    with pytest.raises(ConfigError) as caught:
        env_settings(REDIS_URL=f"redis://user:{password}@host:{port}/0")
    assert "REDIS_URL" in str(caught.value)
    assert password not in str(caught.value)


def test_repr_masks_secrets() -> None:
    settings = Settings(
        url=f"redis://u:{SECRET}@h:1/0", password=SECRET, ssl_keyfile=f"/keys/{SECRET}.pem"
    )
    assert SECRET not in repr(settings)
    target = settings.target()
    assert SECRET not in repr(target)
    assert target.describe() == "redis://u:***@h:1/0"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://localhost", Target("standalone", (("localhost", 6379),))),
        ("rediss://h:6380/2", Target("standalone", (("h", 6380),), tls=True, db=2)),
        ("redis://h?db=3", Target("standalone", (("h", 6379),), db=3)),
        ("redis://[::1]:7000/1", Target("standalone", (("::1", 7000),), db=1)),
        ("unix:///run/redis.sock?db=4", Target("unix", path="/run/redis.sock", db=4)),
        (
            "redis+sentinel://s1:26380,s2/mymaster/5",
            Target("sentinel", (("s1", 26380), ("s2", 26379)), db=5, service_name="mymaster"),
        ),
        (
            "rediss+sentinel://s1/primary",
            Target("sentinel", (("s1", 26379),), tls=True, service_name="primary"),
        ),
        ("redis+cluster://a:7000,b:7001", Target("cluster", (("a", 7000), ("b", 7001)))),
        ("rediss+cluster://a:7000", Target("cluster", (("a", 7000),), tls=True)),
    ],
)
def test_url_forms(url: str, expected: Target) -> None:
    assert Settings(url=url).target() == expected


def test_url_credentials_are_parsed_and_unquoted() -> None:
    target = Settings(url="redis+sentinel://bob:p%40ss%3Aword@s1:26379/mymaster").target()
    assert (target.username, target.password) == ("bob", "p@ss:word")
    assert target.describe() == "redis+sentinel://bob:***@s1:26379/mymaster/0"
    unix = Settings(url="unix://:secret@/tmp/r.sock").target()
    assert (unix.path, unix.password) == ("/tmp/r.sock", "secret")
    assert "secret" not in unix.describe()


def test_host_port_password_triple() -> None:
    settings = env_settings(
        REDIS_HOST="cache.internal", REDIS_PORT="6380", REDIS_PASSWORD=SECRET, REDIS_DB="2"
    )
    target = settings.target()
    assert target == Target("standalone", (("cache.internal", 6380),), password=SECRET, db=2)
    assert SECRET not in target.describe()


def test_redis_password_fills_a_url_without_one() -> None:
    settings = env_settings(REDIS_URL="redis://h:1/0", REDIS_PASSWORD=SECRET)
    assert settings.target().password == SECRET
    with_own = env_settings(REDIS_URL="redis://:inurl@h:1/0", REDIS_PASSWORD=SECRET)
    assert with_own.target().password == "inurl"


def test_redis_username_fills_a_url_without_one() -> None:
    settings = env_settings(REDIS_URL="redis://h:1/0", REDIS_USERNAME="app", REDIS_PASSWORD=SECRET)
    assert (settings.target().username, settings.target().password) == ("app", SECRET)
    with_own = env_settings(REDIS_URL="redis://other:pw@h:1/0", REDIS_USERNAME="app")
    assert with_own.target().username == "other"


def test_redis_tls_turns_tls_on_for_host_and_port() -> None:
    assert env_settings(REDIS_HOST="h").target().tls is False
    assert env_settings(REDIS_HOST="h", REDIS_TLS="1").target().tls is True
    assert env_settings(REDIS_HOST="h", REDIS_SSL_CA_CERTS="/ca.pem").target().tls is True


def test_explicit_arguments_override_environment() -> None:
    env = {
        "REDIS_URL": "redis://env-host:1/0",
        "REDKIT_PREFIX": "fromenv",
        "REDKIT_SOCKET_TIMEOUT": "9",
        "REDKIT_RETRIES": "7",
    }
    settings = Settings.from_env(
        environ=env, url="redis://arg-host:2/0", prefix="fromarg", socket_timeout=0.5
    )
    assert settings.target().hosts == (("arg-host", 2),)
    assert settings.prefix == "fromarg"
    assert settings.socket_timeout == 0.5
    assert settings.retries == 7  # not overridden: the environment's value stays


def test_facade_arguments_override_environment(
    monkeypatch: pytest.MonkeyPatch, standalone_url: str
) -> None:
    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    monkeypatch.setenv("REDKIT_PREFIX", "fromenv")
    with Redkit(standalone_url, prefix="fromarg") as rk:
        assert rk.ping()
        assert rk.keys.prefix == "fromarg"


def test_empty_variables_are_ignored() -> None:
    settings = env_settings(REDIS_URL="", REDIS_PORT="", REDKIT_PREFIX="")
    assert not settings.configured
    assert settings.prefix == "redkit"


def test_defaults() -> None:
    settings = env_settings()
    assert (settings.connect_timeout, settings.socket_timeout, settings.retries) == (2.0, 5.0, 3)
    assert settings.target() == Target("embedded")


def test_embedded_forbidden_without_a_server() -> None:
    with pytest.raises(ConfigError, match="REDKIT_EMBEDDED=0"):
        env_settings(REDKIT_EMBEDDED="0").target()
    assert env_settings(REDKIT_EMBEDDED="0", REDIS_URL="redis://h").target().mode == "standalone"


def test_facade_with_embedded_forbidden(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("REDIS_URL", "REDIS_HOST", "REDIS_PORT"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("REDKIT_EMBEDDED", "0")
    with pytest.raises(ConfigError, match="REDIS_URL"):
        Redkit()


@pytest.mark.parametrize(
    "options",
    [
        {"prefix": "a b"},
        {"connect_timeout": 0},
        {"socket_timeout": -1},
        {"retries": -1},
        {"url": "ftp://h"},
    ],
)
def test_bad_explicit_settings(options: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        Settings(**options)  # type: ignore[arg-type]


def test_unknown_override_and_conflicting_arguments() -> None:
    with pytest.raises(ConfigError, match="colour"):
        Settings.from_env(environ={}, colour="blue")
    with pytest.raises(ConfigError, match="either url= or settings="):
        Redkit("redis://h", settings=Settings())
