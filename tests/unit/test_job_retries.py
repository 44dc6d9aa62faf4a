"""The retry schedule a task declares: the rule both backends ask, with no backend running.

The integration tests run the example's demo task with a backoff base of 1 s
(``SANDBOX_DEMO_BACKOFF``) so that a job fails for good in seconds; the
exponential shape of the schedule is pinned here instead, where it costs nothing.
"""

from __future__ import annotations

import pytest

from bastion.jobs import JobContext, Task
from bastion_example import sandbox_jobs


async def _body(ctx: JobContext) -> None:
    return None


@pytest.mark.parametrize(("backoff", "waits"), [(2, [2.0, 4.0, 8.0]), (1, [1.0, 1.0, 1.0])])
def test_three_retries_wait_backoff_to_the_power_of_the_attempt_then_give_up(
    backoff: int, waits: list[float]
) -> None:
    declared = Task("retries.demo", _body, retries=3, backoff=backoff)
    seen = [declared.retry_in(RuntimeError("boom"), runs) for runs in (1, 2, 3)]
    assert seen == pytest.approx(waits, abs=0.05)
    assert declared.retry_in(RuntimeError("boom"), 4) is None


def test_a_task_without_retries_gives_up_at_once() -> None:
    assert Task("retries.none", _body).retry_in(RuntimeError("boom"), 1) is None


def test_the_demo_task_backs_off_by_its_declared_base() -> None:
    demo = sandbox_jobs.demo
    assert demo.retries == sandbox_jobs.DEMO_RETRIES == 3
    base = sandbox_jobs.DEMO_BACKOFF
    expected = [float(base**attempt) for attempt in (1, 2, 3)]
    assert [demo.retry_in(RuntimeError(), runs) for runs in (1, 2, 3)] == pytest.approx(
        expected, abs=0.05
    )


@pytest.mark.parametrize("raw", ["0", "11", "1.5", "two", "", "٣"])
def test_a_bad_demo_backoff_is_refused_by_name(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv("SANDBOX_DEMO_BACKOFF", raw)
    with pytest.raises(ValueError, match="SANDBOX_DEMO_BACKOFF"):
        sandbox_jobs._backoff()


def test_the_demo_backoff_defaults_to_2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SANDBOX_DEMO_BACKOFF", raising=False)
    assert sandbox_jobs._backoff() == 2
    monkeypatch.setenv("SANDBOX_DEMO_BACKOFF", "1")
    assert sandbox_jobs._backoff() == 1
