"""The URL-password pattern: anchored at the start of a scheme, with the same matches."""

from __future__ import annotations

import pytest

from bastion import _redact as redact_module
from bastion._redact import MASK, redact


@pytest.fixture(autouse=True)
def no_remembered_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the patterns here: a secret another test remembered ("a" * 64) would match too."""
    monkeypatch.setattr(redact_module, "_known", set())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgresql://app:hunter2@db/x", f"postgresql://app:{MASK}@db/x"),
        ("got 'redis://:s3cret@cache:6379/0'", f"got 'redis://:{MASK}@cache:6379/0'"),
        # A scheme glued to a word is still one run of scheme characters: masked.
        ("xpostgresql://app:hunter2@db", f"xpostgresql://app:{MASK}@db"),
        ("url=mysql+aiomysql://u:p4ss@h/x", f"url=mysql+aiomysql://u:{MASK}@h/x"),
        ("(sqlite://u:pw@h)", f"(sqlite://u:{MASK}@h)"),
        ("two a://u:one@h and b://v:two@k", f"two a://u:{MASK}@h and b://v:{MASK}@k"),
        # EMAIL_URL's forms, a URL-encoded user and password among them.
        ("smtp://apikey:SG.x-y@smtp.example.com:587", f"smtp://apikey:{MASK}@smtp.example.com:587"),
        ("'smtps://ops%40ex.com:p%2Fw@h'", f"'smtps://ops%40ex.com:{MASK}@h'"),
        # The multi-host VALKEY_URL forms: the password sits before the first host.
        (
            "valkey+sentinel://u:s3cr,et@h1:26379,h2:26379/mymaster?db=1",
            f"valkey+sentinel://u:{MASK}@h1:26379,h2:26379/mymaster?db=1",
        ),
        ("valkey+cluster://:p/w@a:7000,b:7001", f"valkey+cluster://:{MASK}@a:7000,b:7001"),
    ],
)
def test_passwords_in_urls_are_masked(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    ["/" + "a" * 5000, "a" * 5000 + "://", "x." * 3000, "/json", "GET /users/42 200"],
)
def test_text_without_a_url_password_is_left_alone(text: str) -> None:
    assert redact(text) == text
