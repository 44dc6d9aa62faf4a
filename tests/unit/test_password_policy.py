"""The password policy (NIST SP 800-63B rev. 4): each rule refuses with its own reason, and only those.

What a client reads as ``reason`` is a contract (issue 20): ``too_short``,
``too_long``, ``common``, ``contains_context``. The blocklist ships in the
package and is read on the first check, never at start-up.
"""

from __future__ import annotations

import gzip
import subprocess
import sys
from importlib import resources

import pytest

from bastion.auth import InvalidPassword, PasswordPolicy, PasswordRule, check_password
from bastion.auth._passwords import MAX_PASSWORD
from bastion.auth._policy import COMMON_PASSWORDS_FILE, common_passwords
from bastion.config import ConfigError, Settings, load_settings

DEFAULT = PasswordPolicy.from_settings(Settings())
EMAIL = "ada.lovelace@analytical-engines.example.com"
PASSPHRASE = "a correct horse grazes by the battery staple"


def reason_of(password: str, email: str = EMAIL, policy: PasswordPolicy = DEFAULT) -> str | None:
    refused: InvalidPassword | None = None
    try:
        check_password(password, email=email, policy=policy)
    except InvalidPassword as exc:
        refused = exc
    if refused is None:
        return None
    assert refused.reason in set(PasswordRule)
    assert password not in str(refused)  # the message is safe to show, and to log
    return refused.reason.value


def test_the_defaults_follow_rev_4() -> None:
    settings = Settings()
    assert settings.PASSWORD_MIN_LENGTH == 15
    assert settings.SITE_NAME == "bastion"
    assert DEFAULT.min_length == 15
    assert DEFAULT.max_length == MAX_PASSWORD >= 64


@pytest.mark.parametrize("value", ["7", "65", "fifteen"])
def test_the_minimum_is_bounded(value: str) -> None:
    with pytest.raises(ConfigError, match="PASSWORD_MIN_LENGTH"):
        load_settings(PASSWORD_MIN_LENGTH=value)


def test_a_long_passphrase_passes_with_no_composition_rule() -> None:
    assert reason_of(PASSPHRASE) is None
    assert reason_of("a" * 15 + " ") is None  # no digit, no symbol, no capital: none is asked
    assert reason_of("ünïcödé pässwörds çount by cöde points") is None


def test_too_short_is_counted_against_the_setting() -> None:
    assert reason_of("x" * 14 + "q") is None
    assert reason_of("xqzvbnrtplkmwh") == "too_short"  # 14
    policy = PasswordPolicy(min_length=20)
    assert reason_of("nineteen characters", policy=policy) == "too_short"
    assert reason_of("twenty characters!!!", policy=policy) is None
    assert reason_of("bastion", policy=PasswordPolicy(min_length=8)) == "too_short"


def test_too_long_past_the_cap_but_64_is_fine() -> None:
    assert reason_of("horse " * 10 + "zebr") is None  # 64
    assert reason_of("z" * MAX_PASSWORD) is None
    assert reason_of("z" * (MAX_PASSWORD + 1)) == "too_long"


@pytest.mark.parametrize("password", ["1234567890qwerty", "ManchesterUnited", "1234567890QWERTY"])
def test_a_common_password_is_refused_whatever_its_case(password: str) -> None:
    assert reason_of(password) == "common"


def test_the_blocklist_counts_below_the_minimum_too() -> None:
    """A site that lowers the minimum (8, with a second factor) still refuses the usual ones."""
    policy = PasswordPolicy(min_length=8)
    for password in ("iloveyou", "PASSWORD123", "Password123"):
        assert reason_of(password, policy=policy) == "common"
    assert reason_of("ilovemyhorses", policy=policy) is None


def test_the_shipped_list_has_at_least_20000_entries_case_folded() -> None:
    raw = resources.files("bastion.auth").joinpath(COMMON_PASSWORDS_FILE).read_bytes()
    lines = gzip.decompress(raw).decode("utf-8").splitlines()
    folded = {line.casefold() for line in lines if line}
    assert len(folded) >= 20_000
    assert len(folded) == len(lines)  # stored folded and de-duplicated already
    loaded = common_passwords()
    assert isinstance(loaded, frozenset)
    assert loaded == folded
    assert common_passwords() is loaded  # read once, kept


@pytest.mark.parametrize(
    "password",
    [
        "lovelace, first of the programmers",  # the local part's word
        "my LOVELACE passphrase is long",  # any case
        "the Analytical engines were steam driven",  # a domain label's words
        "engines and more engines and more",
        "a bastion passphrase long enough",  # the site's name
        "a BASTION passphrase long enough",
    ],
)
def test_context_words_are_refused_as_substrings(password: str) -> None:
    assert reason_of(password) == "contains_context"


def test_tiny_tokens_and_the_top_level_label_count_for_nothing() -> None:
    # "ada", "com" and "example"'s sibling "x" are too short to name anyone.
    assert reason_of("canada has comfortable examples", email="ada@x.com") is None
    assert reason_of("canada has comfortable examples", email="ada@example.com") == (
        "contains_context"
    )


def test_the_site_is_its_name_and_its_host() -> None:
    settings = Settings(SITE_NAME="Acme Ledger", APP_URL="https://books.acmecorp.co.uk")
    policy = PasswordPolicy.from_settings(settings)
    assert {"acme", "ledger", "books", "acmecorp"} <= policy.site_words
    assert "bastion" not in policy.site_words
    for password in ("the ledger is long enough", "ACMECORP long enough phrase"):
        assert reason_of(password, email="x@y.org", policy=policy) == "contains_context"
    assert reason_of("a bastion passphrase long enough", email="x@y.org", policy=policy) is None
    ip = PasswordPolicy.from_settings(Settings(APP_URL="http://127.0.0.1:8000"))
    assert ip.site_words == {"bastion"}


def test_an_email_that_is_no_address_still_gives_its_words() -> None:
    assert reason_of("lovelace, first of the programmers", email="lovelace") == "contains_context"
    assert reason_of(PASSPHRASE, email="") is None


def test_the_rules_are_checked_in_order() -> None:
    """Short beats common, common beats context: one reason, the most basic one."""
    policy = PasswordPolicy(min_length=8)
    assert reason_of("bastion", policy=policy) == "too_short"
    assert reason_of("iloveyou", email="iloveyou@example.com", policy=policy) == "common"


def test_the_list_is_read_on_the_first_check_not_at_start_up() -> None:
    """``import bastion; bastion.Bastion()`` leaves the list on disk; a check reads it once."""
    probe = (
        "import bastion\nbastion.Bastion()\n"
        "from bastion.auth import _policy\n"
        "before = _policy.common_passwords.cache_info().currsize\n"
        "_policy.check_password('a correct horse grazes', email='a@b.c', policy=_policy.PasswordPolicy())\n"
        "print(before, _policy.common_passwords.cache_info().currsize)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        env={"PATH": "", "DATABASE_URL": "sqlite:///:memory:"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["0", "1"]
