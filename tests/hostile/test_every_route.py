"""Every route of the example app, with every method, gets the named hostile bodies and headers.

Whatever comes back is a 4xx (or a success for the few well-formed cases),
never a 5xx; the log holds no ERROR line and no traceback; and a refused
request, or any request with a safe method, changed nothing in the database,
in Valkey or in the app's memory. Failures are collected over the whole walk
and reported together, one line per request. The requests to one route go
out as a batch, with the state compared around the batch (and around each
request only where the batch changed something: see ``Target.attack_all``).

Every case goes to each route with each unsafe method the route answers:
that is where bodies are read. Every other pair (a safe method, or a method
the route does not answer and refuses with 405 before reading a byte) gets a
sample with one case of each kind: enough to show that a body it ignores
stays ignored, at a fraction of the requests. HEAD with every body that would
act is in test_safe_methods.py.
"""

from __future__ import annotations

import pytest

from tests.hostile.corpus import BODY_CASES, HEADER_CASES
from tests.hostile.routes import METHODS, SAFE_METHODS, Endpoint
from tests.hostile.target import Attack, Target

SAMPLE = frozenset(
    {
        "deep array",
        "deep form value",
        "1e400",
        "lone surrogate email",
        "form NUL",
        "duplicate keys",
        "charset utf-16",
        "over the cap, chunked",
        "declared length huge",
        "hang up mid-body",
        "valid credentials",
        "junk session cookie",
    }
)


def test_the_sample_names_real_cases() -> None:
    assert {case.name for case in BODY_CASES + HEADER_CASES} >= SAMPLE


@pytest.mark.parametrize("method", METHODS)
def test_every_route_refuses_hostile_bodies_cleanly(
    target: Target, endpoints: list[Endpoint], method: str
) -> None:
    failures: list[str] = []
    sent = 0
    for endpoint in endpoints:
        everything = endpoint.methods is not None and method in endpoint.methods - SAFE_METHODS
        attacks = [
            Attack(method, endpoint.path, case)
            for case in BODY_CASES + HEADER_CASES
            if everything or case.name in SAMPLE
        ]
        verdicts = target.attack_all(attacks)
        assert len(verdicts) == len(attacks)
        sent += len(verdicts)
        failures.extend(str(verdict) for verdict in verdicts if verdict.problems())
    assert sent >= len(endpoints) * len(SAMPLE)
    assert not failures, f"{len(failures)} of {sent} requests:\n" + "\n".join(failures)
