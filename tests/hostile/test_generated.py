"""Generated hostile requests: Hypothesis recombines the corpus's ingredients on every route.

Each example picks a route from the app's router, a method, a path (the
route's own, with a hostile parameter, or with a hostile query string), and a
body with headers, framing and fate from :func:`tests.hostile.corpus.cases`.
The properties are those of the named corpus: no 5xx, no ERROR line or
traceback in the log, and nothing changed by a refused or a safe request.

Hypothesis draws the examples first; they are then sent in batches, with the
state compared around each batch (``Target.attack_all``). Only if one fails
does Hypothesis run again, one request and two snapshots per example, so that
it can shrink the failure to the smallest request that still shows it.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from tests.hostile.corpus import Case, cases
from tests.hostile.routes import METHODS, Endpoint
from tests.hostile.target import Attack, Target

UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
EXPLORE = bool(os.environ.get("HOSTILE_EXPLORE"))
EXAMPLES = int(os.environ.get("HOSTILE_EXAMPLES", "3000" if EXPLORE else "600"))

#: Path parameters and query strings as a scanner writes them (already percent-encoded).
HOSTILE_SEGMENTS = (
    "%00",
    "%ED%A0%80",
    "%FF",
    "..%2F..%2Fetc",
    "a" * 300,
    "%2e%2e",
    "k%0d%0aX:1",
    "%25",
    "~",
    "%E2%80%AE",
    "k;v",
    "",
)
HOSTILE_QUERIES = (
    "?page=%00",
    "?page=99999999999999999999",
    "?page=-1",
    "?action=%00",
    "?action=%ED%A0%80",
    "?action=" + "a" * 100,
    "?page=1&page=2",
    "?%FF=%FF",
    "?=",
    "?action=auth.sign_in.failed",
    "?a=" + "&a=".join(["1"] * 200),
)


@st.composite
def requests(draw: st.DrawFn, endpoints: list[Endpoint]) -> tuple[str, str, Case]:
    # Mostly the routes that read a body, with a method that makes them read it.
    readers = [e for e in endpoints if e.methods and e.methods & UNSAFE]
    endpoint = draw(st.sampled_from(readers if draw(st.integers(0, 3)) else endpoints))
    unsafe = sorted(endpoint.methods & UNSAFE) if endpoint.methods else []
    # A reader's own unsafe methods, or a safe one (which must never act on the body), or any.
    pick = draw(st.integers(0, 5))
    if unsafe and pick < 3:
        method = draw(st.sampled_from(unsafe))
    elif pick < 5:
        method = draw(st.sampled_from(("HEAD", "GET", "OPTIONS")))
    else:
        method = draw(st.sampled_from(METHODS))
    path = endpoint.path
    if endpoint.has_params and draw(st.booleans()):
        path = endpoint.with_param(draw(st.sampled_from(HOSTILE_SEGMENTS)))
    if draw(st.integers(0, 3)) == 0:
        path += draw(st.sampled_from(HOSTILE_QUERIES))
    return method, path, draw(cases())


def test_generated_hostile_requests_are_refused_cleanly(
    target: Target, endpoints: list[Endpoint]
) -> None:
    drawn: list[Attack] = []
    one_by_one = False

    @settings(
        max_examples=EXAMPLES,
        # The same examples on every run, unless HOSTILE_EXPLORE is set: CI stays
        # deterministic, and a developer can let Hypothesis roam for longer.
        derandomize=not EXPLORE,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(requests(endpoints))
    def attack(request: tuple[str, str, Case]) -> None:
        """Draws the examples; run again (the same ones, derandomized) to test one by one."""
        if not one_by_one:
            drawn.append(Attack(*request))
            return
        method, path, case = request
        note(f"{method} {path} {case}")
        verdict = target.attack(method, path, case)
        assert not verdict.problems(), str(verdict)

    attack()
    assert len(drawn) >= EXAMPLES * 0.9, len(drawn)  # Hypothesis did not run out of ideas
    failures = [str(verdict) for verdict in target.attack_all(drawn) if verdict.problems()]
    if failures:
        one_by_one = True
        attack()  # raises with the shrunk example, if one request alone still fails
        raise AssertionError(  # none did alone: report what the batches saw
            f"{len(failures)} of {len(drawn)} requests:\n" + "\n".join(failures)
        )
