"""What hostile clients send: named bodies and headers, and Hypothesis strategies built from them.

The named cases are the inputs third-party scanners and a raw-socket campaign
found (issue 15) and their relatives; every route gets every one of them with
every method. The strategies recombine the same ingredients at random (deep
nesting at any place, numbers that are not numbers, text that is not Unicode,
duplicate names, wrong types and media types, odd charsets, sizes past the
caps, truncation), so that what nobody wrote down gets tried too.

Bodies are bytes written here, not ``json.dumps`` output, because most of what
matters (``NaN``, duplicate keys, lone surrogate escapes, a 5,000-digit
number, a cut-off document) is exactly what a serializer will not produce.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from urllib.parse import quote

from hypothesis import strategies as st

__all__ = [
    "ADMIN_EMAIL",
    "ADMIN_PASSWORD",
    "BODY_CASES",
    "HEADER_CASES",
    "Case",
    "cases",
    "credentials",
    "entry",
    "form",
]

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
EMAIL = "hostile@example.com"
PASSWORD = "a long enough password"
#: The administrator the suite's app is created with: credentials that sign in for real.
ADMIN_EMAIL = "hostile-admin@example.com"
ADMIN_PASSWORD = "a long enough operator passphrase"


@dataclass(frozen=True)
class Case:
    """One hostile request body with the headers that go with it."""

    name: str
    body: bytes
    content_type: str | None = JSON
    headers: tuple[tuple[str, str], ...] = ()
    #: The Content-Length to declare: the true length unless a lie is the point; None: chunked.
    declared_length: str | None = "true"
    #: Send only this many body bytes, then hang up (the client goes away).
    hang_up_after: int | None = None
    origin: bool = True

    def request_headers(self, origin: str) -> list[tuple[str, str]]:
        headers: list[tuple[str, str]] = []
        if self.origin:
            headers.append(("Origin", origin))
        if self.content_type is not None:
            headers.append(("Content-Type", self.content_type))
        headers.extend(self.headers)
        if self.declared_length == "true":
            headers.append(("Content-Length", str(len(self.body))))
        elif self.declared_length is None:
            headers.append(("Transfer-Encoding", "chunked"))
        else:
            headers.append(("Content-Length", self.declared_length))
        return headers

    def wire_body(self) -> bytes:
        if self.declared_length is not None:
            return self.body
        return (
            b"".join(
                f"{len(part):x}\r\n".encode() + part + b"\r\n"
                for part in (self.body[i : i + 8192] for i in range(0, len(self.body), 8192))
            )
            + b"0\r\n\r\n"
        )


def _quote(text: str) -> str:
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


def form(pairs: list[tuple[str, str]]) -> bytes:
    """Urlencoded, with text that is not Unicode encoded as its (invalid) UTF-8 bytes."""
    return "&".join(f"{_quote(k)}={_quote(v)}" for k, v in pairs).encode()


def deep(depth: int, inner: str = "1", kind: str = "[") -> str:
    if kind == "[":
        return "[" * depth + inner + "]" * depth
    return '{"a":' * depth + inner + "}" * depth


def credentials(email: str = f'"{EMAIL}"', password: str = f'"{PASSWORD}"') -> bytes:
    return f'{{"email": {email}, "password": {password}}}'.encode("utf-8", "surrogatepass")


def entry(value: str = "1", ttl: str = "30") -> bytes:
    return f'{{"value": {value}, "ttl": {ttl}}}'.encode("utf-8", "surrogatepass")


_LONG_DIGITS = "9" * 5000
#: Well-formed, read to the end, then refused for its email: no argon2id hash (0.4 s here).
_NO_HASH = credentials(email='"not-an-email"')
_DEEP = deep(1000)

BODY_CASES: tuple[Case, ...] = (
    # Nesting: the parser must never be the thing that overflows.
    Case("deep array", _DEEP.encode()),
    Case("deep object", deep(1000, kind="{").encode()),
    Case("deep email", credentials(email=_DEEP)),
    Case("deep value", entry(value=_DEEP)),
    Case("just past the depth limit", entry(value=deep(33))),
    Case("unclosed, 60k brackets", b"[" * 60_000),
    Case("deep inside a string (fine)", entry(value=json.dumps("[" * 5000))),
    Case(
        "deep form value",
        form([("action", "set"), ("key", "k"), ("value", _DEEP), ("ttl", "30")]),
        FORM,
    ),
    # Numbers that are not numbers.
    Case("NaN", entry(value="NaN")),
    Case("Infinity", credentials(email="Infinity")),
    Case("-Infinity ttl", entry(ttl="-Infinity")),
    Case("1e400", entry(value="1e400")),
    Case("1e400 ttl", entry(ttl="1e400")),
    Case("5000 digits", entry(value=_LONG_DIGITS)),
    Case("5000-digit ttl", entry(ttl=_LONG_DIGITS)),
    Case("300-digit ttl", entry(ttl="1" + "0" * 300)),
    Case(
        "5000-digit form ttl",
        form([("action", "set"), ("key", "k"), ("value", "1"), ("ttl", _LONG_DIGITS)]),
        FORM,
    ),
    Case(
        "NaN form value",
        form([("action", "set"), ("key", "k"), ("value", "NaN"), ("ttl", "30")]),
        FORM,
    ),
    # Text that is not Unicode, and NUL.
    Case(
        "lone surrogate email",
        credentials(email='"a\\ud800@b.c"', password='"xxxxxxxxxxxxxxxxxxxx"'),
    ),
    Case("lone surrogate password", credentials(password='"a long enough \\udfff password"')),
    Case("lone surrogate value", entry(value='{"a": ["\\ud800"]}')),
    Case("lone surrogate key", b'{"\\udc00": 1, "value": 1, "ttl": 5}'),
    Case("surrogate pair (fine)", entry(value='"\\ud83d\\ude00"')),
    Case(
        "encoded surrogate bytes",
        b'{"email": "a\xed\xa0\x80@b.c", "password": "xxxxxxxxxxxxxxxxxxxx"}',
    ),
    Case("NUL escape", credentials(email='"a\\u0000@b.c"')),
    Case("NUL escape in value", entry(value='"a\\u0000b"')),
    Case("raw NUL", b'{"email": "a\x00@b.c", "password": "x"}'),
    Case("form NUL", form([("email", "a\x00@b.c"), ("password", PASSWORD)]), FORM),
    Case(
        "form surrogate",
        form([("email", EMAIL), ("password", "a\ud800 long enough password")]),
        FORM,
    ),
    Case("form invalid UTF-8", b"email=%FF%FE&password=%C3", FORM),
    Case(
        "form surrogate JSON value",
        form([("action", "set"), ("key", "k"), ("value", '"\\ud800"'), ("ttl", "30")]),
        FORM,
    ),
    # Ambiguity: duplicate names.
    Case(
        "duplicate keys", b'{"email": "a@example.com", "email": "b@example.com", "password": "x"}'
    ),
    Case("duplicate value", b'{"value": 1, "value": 2, "ttl": 30}'),
    Case(
        "duplicate form fields",
        form([("email", "a@example.com"), ("email", EMAIL), ("password", PASSWORD)]),
        FORM,
    ),
    Case("many form fields", form([(f"f{i}", "1") for i in range(2000)]), FORM),
    Case("many empty form fields", b"&" * 5000, FORM),
    # Wrong types and shapes.
    Case("email is a number", credentials(email="5", password="[]")),
    Case("email is null", credentials(email="null")),
    Case("value object, ttl string", entry(value='{"a": 1}', ttl='"30"')),
    Case("ttl true", entry(ttl="true")),
    Case("ttl negative float", entry(ttl="-0.5")),
    Case("top-level array", b"[1, 2, 3]"),
    Case("top-level string", b'"email"'),
    Case("top-level null", b"null"),
    Case("empty object", b"{}"),
    Case("empty body", b""),
    Case("truncated document", b'{"email": "a@example.com", "pass'),
    Case("form without equals", b"email&password", FORM),
    Case("form bad escapes", b"email=%&password=%zz%", FORM),
    Case("form with semicolons", b"email=a;password=b", FORM),
    # Wrong and missing media types, odd charsets and codings.
    Case("no content type", credentials(), None),
    Case("text/plain", credentials(), "text/plain"),
    Case("JSON as a form", credentials(), FORM),
    Case("form as JSON", form([("email", EMAIL), ("password", PASSWORD)]), JSON),
    Case(
        "multipart",
        b'--x\r\nContent-Disposition: form-data; name="email"\r\n\r\na\r\n--x--\r\n',
        "multipart/form-data; boundary=x",
    ),
    Case("UPPER CASE type", _NO_HASH, "APPLICATION/JSON"),
    Case(
        "charset utf-16",
        credentials().decode().encode("utf-16"),
        "application/json; charset=utf-16",
    ),
    Case(
        "charset latin-1",
        b'{"email": "\xe9@example.com", "password": "x"}',
        "application/json; charset=latin-1",
    ),
    Case("quoted utf-8 charset (fine)", _NO_HASH, 'application/json; charset="UTF-8"'),
    Case("latin-1 bytes", b'{"email": "\xe9@example.com", "password": "x"}'),
    Case("UTF-8 BOM", b"\xef\xbb\xbf" + credentials()),
    Case("UTF-16 without charset", credentials().decode().encode("utf-16")),
    Case("garbage type", credentials(), ";;;=;=="),
    Case("very long type", credentials(), "application/json; x=" + "y" * 4000),
    Case("gzip", gzip.compress(credentials()), JSON, (("Content-Encoding", "gzip"),)),
    Case("binary", bytes(range(256)) * 4, "application/octet-stream"),
    # Sizes and framing.
    Case("over the cap, declared", b'"' + b"x" * 70_000 + b'"'),
    Case("over the cap, chunked", b'"' + b"x" * 70_000 + b'"', declared_length=None),
    Case("over the auth cap", credentials(password=json.dumps("p" * 9000))),
    Case("chunked (fine)", _NO_HASH, declared_length=None),
    Case("declared too short", credentials(), declared_length="5"),
    Case("declared length not a number", credentials(), declared_length="12abc"),
    Case("declared length huge", credentials(), declared_length="99999999999999999999999"),
    Case("hang up mid-body", credentials(), declared_length="5000", hang_up_after=20),
    Case("hang up before the body", credentials(), declared_length="5000", hang_up_after=0),
    # Well-formed, to prove the hostile ones are refused for what they are.
    Case("valid credentials", credentials()),
    Case("valid credentials form", form([("email", EMAIL), ("password", PASSWORD)]), FORM),
    Case("valid entry", entry(value='{"a": [1, 2]}')),
    Case(
        "valid sandbox form",
        form([("action", "set"), ("key", "k"), ("value", "42"), ("ttl", "30")]),
        FORM,
    ),
)

HEADER_CASES: tuple[Case, ...] = (
    Case("no Origin", _NO_HASH, origin=False),
    Case("cross-site", _NO_HASH, headers=(("Sec-Fetch-Site", "cross-site"),)),
    Case("foreign Origin", _NO_HASH, origin=False, headers=(("Origin", "https://evil.example"),)),
    Case("junk session cookie", _NO_HASH, headers=(("Cookie", "bastion_session=" + "A" * 4000),)),
    Case(
        "odd cookies",
        _NO_HASH,
        headers=(("Cookie", '__Host-bastion_session=%00; bastion_session=""; ;;='),),
    ),
    Case("JSON accept", _NO_HASH, headers=(("Accept", "application/json"),)),
    Case("garbage accept", _NO_HASH, headers=(("Accept", "*/*;q=x, ,,;"),)),
    Case(
        "forged forwarding",
        _NO_HASH,
        headers=(
            ("X-Forwarded-For", "junk, ::ffff:1.2.3.4, 999.1.1.1"),
            ("X-Forwarded-Proto", "gopher"),
        ),
    ),
    Case("two content types", _NO_HASH, headers=(("Content-Type", "text/plain"),)),
    Case("expect continue", _NO_HASH, headers=(("Expect", "100-continue"),)),
)


# -- strategies ----------------------------------------------------------------------------
#
# A generated request starts from a body some route accepts (a template) and
# gets zero to three mutations, each of which alone should make it refused:
# that is how a scanner works, and it keeps every other part of the request
# valid, so the one hostile part reaches the code that must refuse it.

HOSTILE_STRINGS = (
    "\ud800", "\udfff", "a\ud83d", "\x00", "a\x00b", "\u2028", "\ufeff", "\x7f", "\r\n", "%00",
    "a" * 3000, "a@b.c", "../../etc", "${jndi:x}", "<script>", "' OR 1=1 --",
)  # fmt: skip
TAINTS = ("\ud800", "\udfff", "\udc80", "\ud83d", "\x00", "\x00", "\u0085", "\x1b", "\ufffe")
NUMBER_TOKENS = (
    "NaN", "Infinity", "-Infinity", "1e400", "-1e400", "1e-400", "-0", "0", "1.5", "-5",
    "604801", "0x10", "01", "1_000", "+1", ".5", "1e", _LONG_DIGITS, "9" * 4301,
)  # fmt: skip
WRONG_TYPES = ("[]", "{}", "null", "true", "5", '{"x": 1}', '[""]', '"x"')
CONTENT_TYPES = (
    JSON, FORM, None, "text/plain", "application/json; charset=utf-16",
    "application/x-www-form-urlencoded; charset=iso-8859-1", "multipart/form-data; boundary=z",
    "application/json; charset=utf-8", "Application/Json ; charset=UTF8", "application/jsonx",
    "application/*", ";", "application/json, text/html",
)  # fmt: skip


@dataclass(frozen=True)
class Field:
    """A body field: its text as a form carries it; in JSON a string, or a raw token."""

    name: str
    text: str
    string: bool = True

    def json(self) -> str:
        return f"{json.dumps(self.name)}: {json.dumps(self.text) if self.string else self.text}"


TEMPLATES: tuple[tuple[Field, ...], ...] = (
    (Field("email", ADMIN_EMAIL), Field("password", ADMIN_PASSWORD)),  # signs in for real
    (Field("email", EMAIL), Field("password", PASSWORD)),
    (Field("value", '{"a": [1, 2]}', string=False), Field("ttl", "30", string=False)),
    (Field("action", "set"), Field("key", "k"), Field("value", "42"), Field("ttl", "30")),
)

strings = st.one_of(st.sampled_from(HOSTILE_STRINGS), st.text(max_size=20))
atoms = st.one_of(
    st.sampled_from(NUMBER_TOKENS),
    st.sampled_from(WRONG_TYPES),
    strings.map(json.dumps),
)
values = st.recursive(
    atoms,
    lambda children: st.one_of(
        st.lists(children, max_size=4).map(lambda items: "[" + ", ".join(items) + "]"),
        st.lists(st.tuples(strings, children), max_size=4).map(
            lambda pairs: "{" + ", ".join(f"{json.dumps(k)}: {v}" for k, v in pairs) + "}"
        ),
    ),
    max_leaves=10,
)
depths = st.sampled_from((33, 100, 1000, 5000))
#: The classes that once reached a 500 (issue 15) come up more often than the rest.
FIELD_MUTATIONS = (
    *("taint", "taint", "taint", "deepen", "deepen"),
    *("number", "retype", "duplicate", "drop", "huge", "random"),
)
BODY_MUTATIONS = ("fields", "wrap", "truncate", "encoding", "media", "charset", "coding", "raw")
FRAMINGS = ("chunked", "oversized", "short", "hang up")


@st.composite
def _mutate_field(draw: st.DrawFn, fields: list[Field]) -> None:
    if not fields:
        return
    at = draw(st.integers(0, len(fields) - 1))
    field = fields[at]
    kind = draw(st.sampled_from(FIELD_MUTATIONS))
    if kind == "taint":
        where = draw(st.integers(0, len(field.text)))
        taint = draw(st.sampled_from(TAINTS))
        fields[at] = Field(field.name, field.text[:where] + taint + field.text[where:])
    elif kind == "deepen":  # in a form, the sandbox parses the value as JSON
        fields[at] = Field(field.name, deep(draw(depths), field.text), string=False)
    elif kind == "number":
        fields[at] = Field(field.name, draw(st.sampled_from(NUMBER_TOKENS)), string=False)
    elif kind == "retype":
        fields[at] = Field(field.name, draw(st.sampled_from(WRONG_TYPES)), string=False)
    elif kind == "duplicate":
        fields.insert(draw(st.integers(0, len(fields))), Field(field.name, draw(strings)))
    elif kind == "drop":
        del fields[at]
    elif kind == "huge":
        fields[at] = Field(field.name, "x" * draw(st.sampled_from((9000, 70_000))))
    else:
        fields[at] = Field(field.name, draw(values), string=False)


@st.composite
def cases(draw: st.DrawFn) -> Case:
    """A body some route accepts, with up to three mutations, its headers, framing and fate."""
    fields = list(draw(st.sampled_from(TEMPLATES)))
    as_json = draw(st.booleans())
    body_mutations: list[str] = []
    framing = "true"
    for _ in range(draw(st.sampled_from((0, 1, 1, 1, 2, 3)))):
        target = draw(st.sampled_from(("field", "field", "field", "body", "framing")))
        if target == "field":
            draw(_mutate_field(fields))
        elif target == "body":
            body_mutations.append(draw(st.sampled_from(BODY_MUTATIONS)))
        else:
            framing = draw(st.sampled_from(FRAMINGS))
    body = draw(_render(fields, as_json, body_mutations))
    content_type: str | None = JSON if as_json else FORM
    if "media" in body_mutations:
        content_type = draw(st.sampled_from(CONTENT_TYPES))
    if "charset" in body_mutations and content_type is not None:
        charset = draw(st.sampled_from(("utf-16", "latin-1", "UTF-8", '"utf-8"', "", "x")))
        content_type += f"; charset={charset}"
    headers = draw(_headers("coding" in body_mutations))
    declared: str | None = "true"
    hang_up: int | None = None
    if framing == "chunked":
        declared = None
    elif framing == "oversized":
        body = body + b" " * 70_000
    elif framing == "short":
        declared = str(max(len(body) - 3, 0))
    elif framing == "hang up":
        declared = str(len(body) + 100)
        hang_up = draw(st.integers(0, len(body)))
    return Case(
        name="generated",
        body=body,
        content_type=content_type,
        headers=tuple(headers),
        declared_length=declared,
        hang_up_after=hang_up,
        origin=draw(st.integers(0, 9)) > 0,
    )


@st.composite
def _render(draw: st.DrawFn, fields: list[Field], as_json: bool, mutations: list[str]) -> bytes:
    if "fields" in mutations:
        count = draw(st.sampled_from((3, 65, 2000)))
        fields = fields + [Field(f"f{i}", "1") for i in range(count)]
    if as_json:
        text = "{" + ", ".join(field.json() for field in fields) + "}"
        if "wrap" in mutations:
            text = deep(draw(depths), text, draw(st.sampled_from(("[", "{"))))
    else:
        text = "&".join(f"{_quote(field.name)}={_quote(field.text)}" for field in fields)
    body = text.encode("utf-8", "surrogatepass")
    if "truncate" in mutations:
        body = body[: draw(st.integers(0, max(len(body) - 1, 0)))]
    if "encoding" in mutations:
        codec = draw(st.sampled_from(("utf-16", "utf-32", "bom", "latin-1")))
        if codec == "bom":
            body = b"\xef\xbb\xbf" + body
        else:
            errors = "replace" if codec == "latin-1" else "surrogatepass"
            body = body.decode("utf-8", "surrogatepass").encode(codec, errors)
    if "raw" in mutations:
        body = draw(st.binary(max_size=300))
    return body


@st.composite
def _headers(draw: st.DrawFn, coding: bool) -> list[tuple[str, str]]:
    headers: list[tuple[str, str]] = []
    if coding:
        headers.append(("Content-Encoding", draw(st.sampled_from(("gzip", "br", "identity", "x")))))
    cookie = draw(st.sampled_from((None, None, "admin", "junk")))
    if cookie == "junk":
        junk = draw(st.sampled_from(("x", "A" * 500, "%00", "\u00e9")))
        headers.append(("Cookie", "bastion_session=" + junk))
    elif cookie == "admin":
        headers.append(("Cookie", "admin"))  # the target puts a live admin session here
    if draw(st.booleans()):
        accept = draw(st.sampled_from(("application/json", "text/html", "*/*", ",;")))
        headers.append(("Accept", accept))
    return headers
