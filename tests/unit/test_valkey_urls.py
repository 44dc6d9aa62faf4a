"""The three VALKEY_URL forms: one server, a Sentinel-managed primary, a Cluster.

Parsed once (:func:`bastion._parse.urls.valkey_target`); a wrong one is a
one-line error at start-up that never quotes the password.
"""

from __future__ import annotations

import re

import pytest

from bastion import _redact
from bastion._parse.urls import ValkeyTarget, valkey_target
from bastion.config import ConfigError, load_settings


def test_a_plain_url_goes_to_valkey_py_as_it_is() -> None:
    assert valkey_target("redis://:pw@cache:6379/2") == ValkeyTarget(
        "single", "redis://:pw@cache:6379/2"
    )


def test_sentinels_name_the_primary_and_the_database() -> None:
    url = "valkey+sentinel://app:p%40ss@s1:26379,[::1]:26380/main-cache?db=3"
    target = valkey_target(url)
    assert target == ValkeyTarget(
        "sentinel", url, (("s1", 26379), ("::1", 26380)), "app", "p@ss", "main-cache", 3
    )


def test_cluster_seeds() -> None:
    target = valkey_target("valkey+cluster://:pw@n1:7000,n2:7001")
    assert (target.kind, target.hosts, target.username, target.password) == (
        "cluster",
        (("n1", 7000), ("n2", 7001)),
        None,
        "pw",
    )


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("valkey+sentinel://s1:26379", "ends with the primary's name"),
        ("valkey+sentinel://s1:26379/", "ends with the primary's name"),
        ("valkey+sentinel://s1/main", "needs a port"),
        ("valkey+sentinel://s1:26379,s2:99999/main", "needs a port"),
        ("valkey+sentinel://s1:26379,,s2:1/main", "none empty"),
        ("valkey+sentinel://s1:26379/main?db=one", "is a database number"),
        ("valkey+sentinel://s1:26379/main?ssl=1", "takes only ?db=N"),
        ("valkey+cluster://n1:7000/0", "takes no path or options"),
        ("valkey+cluster://n1:7000?db=1", "takes no path or options"),
        ("memcached://n1:11211", "expected redis://host:port/0"),
    ],
)
def test_wrong_forms_are_refused_in_one_line(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)) as raised:
        valkey_target(url)
    assert "\n" not in str(raised.value)


def test_the_settings_error_never_quotes_the_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VALKEY_URL", "valkey+sentinel://app:hunter22@s1:26379,s2:x/main")
    with pytest.raises(ConfigError) as raised:
        load_settings()
    assert "VALKEY_URL" in str(raised.value)
    assert "hunter22" not in str(raised.value)


def test_the_settings_keep_a_good_multi_host_url(monkeypatch: pytest.MonkeyPatch) -> None:
    url = "valkey+cluster://n1:7000,n2:7001"
    monkeypatch.setenv("VALKEY_URL", url)
    assert url == load_settings().VALKEY_URL


def test_the_password_of_a_multi_host_url_is_remembered_and_masked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_redact, "_known", set())
    url = "valkey+sentinel://app:s3cr%2Fet@s1:26379,s2:26379/main"
    assert _redact.redact_url(url) == "valkey+sentinel://app:***@s1:26379,s2:26379/main"
    _redact.remember(urls=[url])
    # Quoted by a library in its own words, decoded or not: masked either way.
    assert "s3cr" not in _redact.redact("AUTH failed for s3cr/et and s3cr%2Fet")
