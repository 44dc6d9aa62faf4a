"""The README says what is true, for the things a newcomer copies first.

A command typed as written must run in a fresh checkout, where ``bastion`` is
only on PATH through ``uv run``; every setting the model reads must be in the
configuration table; the JSON API the home page invites you to try must be
documented.
"""

from __future__ import annotations

import re

from bastion.audit import SIGN_IN_BLOCKED, SIGN_IN_FAILED, SIGN_IN_SUCCEEDED
from bastion.audit._log import SIGN_IN_RATE_LIMITED, Outcome
from bastion.config import Settings
from bastion.guard._core import FailReason
from bastion.hardening import DEFAULT_SECURITY_HEADERS
from bastion.hardening._headers import DEFAULT_HSTS
from tests.support.servers import ROOT

README = (ROOT / "README.md").read_text()
SHELL_BLOCKS = re.findall(r"```sh\n(.*?)```", README, flags=re.DOTALL)


def test_every_bastion_command_a_newcomer_types_goes_through_uv_run() -> None:
    lines = [line.strip() for block in SHELL_BLOCKS for line in block.splitlines()]
    assert lines
    bare = [line for line in lines if re.match(r"(bastion|pytest|python)\b", line)]
    assert bare == []


def test_every_setting_is_in_the_configuration_table() -> None:
    table = README.split("## Configuration", 1)[1]
    missing = [name for name in Settings.model_fields if f"| `{name}` |" not in table]
    assert missing == []


def test_the_sandbox_json_api_is_documented() -> None:
    assert "/api/sandbox/cache/{key}" in README
    for word in ("PUT", "DELETE", '"ttl"', '"value"', "Origin"):
        assert word in README.split("/api/sandbox/cache/{key}", 1)[1][:1500], word


def test_the_ci_section_names_what_ci_installs() -> None:
    section = README.split("`bash .ci/run`", 1)[1][:400]
    for program in ("uv", "Chromium", "wrk", "openssl", "Prometheus", "Alertmanager"):
        assert program in section, program


def _section(heading: str) -> str:
    return README.split(heading, 1)[1].split("\n## ", 1)[0].split("\n### ", 1)[0]


def test_the_default_security_headers_are_all_in_the_table() -> None:
    table = _section("### Security headers")
    rows = {
        match[0].lower(): match[1]
        for match in re.findall(r"^\| `([^`]+)` \| `([^`]+)`", table, re.M)
    }
    assert rows == {**DEFAULT_SECURITY_HEADERS, "strict-transport-security": DEFAULT_HSTS}


def test_the_guard_section_names_every_audit_action_and_refusal_of_a_guarded_route() -> None:
    section = _section("### What a guarded route answers, counts and writes")
    for action in (SIGN_IN_FAILED, SIGN_IN_SUCCEEDED, SIGN_IN_RATE_LIMITED, SIGN_IN_BLOCKED):
        assert f"`{action}`" in section, action
    for outcome in Outcome:
        assert f"`{outcome.value}`" in section, outcome
    for reason in (FailReason.REJECTED_BY_APP.value, FailReason.RATE_LIMITED.value):
        assert f"`{reason}`" in section, reason
    for refusal in ("RATE_LIMITED", "BODY_TOO_LARGE", "INVALID_BODY", "UNSUPPORTED_MEDIA_TYPE"):
        assert f"`{refusal}`" in section, refusal
    assert "422" in section


def test_the_docs_recipe_is_the_tested_example() -> None:
    example = (ROOT / "examples" / "fastapi_docs_app" / "app.py").read_text()
    recipe = _section("### FastAPI's `/docs` and `/redoc`")
    for line in (
        "app = security.protect(api, path_headers=docs_headers(api))",
        "add_redoc(api)",
        'swagger_ui_parameters={"validatorUrl": None}',
        "redoc_url=None,",
    ):
        assert line in recipe, line
        assert line.split("app = ")[-1] in example, line
