"""``Bastion.protect`` turns bastion's logging on by itself, once, and only when asked to.

In-process: only the ``bastion`` logger's handlers are looked at (the
subprocess tests in ``tests/integration/ops/test_adopted_logs.py`` read the
lines themselves).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from starlette.applications import Starlette

from bastion import Bastion
from bastion.config import load_settings
from bastion.ops import configure_logging
from bastion.ops._logs import HANDLER_NAME, JsonFormatter

LOGGER = logging.getLogger("bastion")
#: A Bastion for ``APP_ENV`` (default development), with ``Bastion``'s keyword options.
Make = Callable[..., Bastion]


def _ours() -> list[logging.Handler]:
    return [h for h in LOGGER.handlers if h.get_name() == HANDLER_NAME]


@pytest.fixture(autouse=True)
def clean_bastion_logger() -> Iterator[None]:
    """No bastion handler before the test, and the logger as it was after it."""
    kept, level = list(LOGGER.handlers), LOGGER.level
    for handler in _ours():
        LOGGER.removeHandler(handler)
    yield
    for handler in list(LOGGER.handlers):
        LOGGER.removeHandler(handler)
    for handler in kept:
        LOGGER.addHandler(handler)
    LOGGER.setLevel(level)


@pytest.fixture
async def make(tmp_path: Path) -> AsyncIterator[Make]:
    made: list[Bastion] = []

    def build(app_env: str = "development", *, configure_logging: bool = True) -> Bastion:
        settings = load_settings(
            DATABASE_URL=f"sqlite:///{tmp_path}/b.db", APP_ENV=app_env, SECRET_KEY="k" * 64
        )
        made.append(Bastion(settings, configure_logging=configure_logging))
        return made[-1]

    yield build
    for bastion in made:
        await bastion.shutdown()


async def test_protect_sends_bastions_lines_to_stderr_once(make: Make) -> None:
    root_before = list(logging.getLogger().handlers)
    uvicorn_before = list(logging.getLogger("uvicorn").handlers)
    security = make("production")
    security.protect(Starlette())
    security.protect(Starlette())
    (handler,) = _ours()
    assert isinstance(handler.formatter, logging.Formatter)
    assert isinstance(getattr(handler.formatter, "inner", None), JsonFormatter)
    assert LOGGER.isEnabledFor(logging.INFO)
    assert logging.getLogger().handlers == root_before, "the app's root logger is its own"
    assert logging.getLogger("uvicorn").handlers == uvicorn_before


async def test_configure_logging_false_leaves_logging_to_the_app(make: Make) -> None:
    make(configure_logging=False).protect(Starlette())
    assert _ours() == []


async def test_an_explicit_configure_logging_is_kept_as_it_was_made(make: Make) -> None:
    configure_logging(json_lines=False, level=logging.WARNING)
    (explicit,) = _ours()
    make("production").protect(Starlette())
    assert _ours() == [explicit]
    assert LOGGER.level == logging.WARNING
    assert not isinstance(getattr(explicit.formatter, "inner", None), JsonFormatter)
