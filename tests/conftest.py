"""How the suite runs, and the fixtures that start and stop real servers on loopback.

The run: parallel pytest-xdist workers (:func:`pytest_cmdline_main`), each
test marked with its kind by where it lives (tests/support/kinds.py) and kept
on one worker with the tests it shares a server with (:func:`worker_group`),
``load`` tests alone on the machine (tests/support/runlock.py), and the
Debian programs the selected tests run installed first (tests/support/system.py).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import AsyncIterator, Generator, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import valkey

from bastion.cache import Cache, ValkeyOptions
from bastion.config import ENV_PREFIX, Settings, reset_settings
from tests.support.kinds import kinds_of
from tests.support.postgres import PostgresServer, unique_database_name
from tests.support.runlock import RunLock
from tests.support.servers import HungServer, ValkeyServer
from tests.support.system import SetupError, ensure

#: Parallel workers when the command line names none (``-n 0``: no workers, one process).
#: Most tests wait on servers and subprocesses, so two cores keep four busy; measured:
#: see the README's "On a fresh machine".
WORKERS = 4

#: The workerinput key that carries the controller's ``--dist`` to the workers.
DIST = "bastion_dist"

RUN_LOCK = pytest.StashKey[RunLock]()
INSTALLED = pytest.StashKey[bool]()


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> None:
    """``uv run pytest`` runs on :data:`WORKERS` pytest-xdist workers, scheduled by group.

    A default set here, not in ``addopts``: ``-n N`` (``-n 0`` for one process)
    still decides, ``-p no:xdist`` still works, and ``--pdb`` runs in-process.
    ``--dist loadgroup`` keeps the tests of one ``xdist_group`` (see
    :func:`worker_group`) on one worker.
    """
    workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
    if workerinput is not None:
        # A worker parses the command line as typed, not the controller's options:
        # without this it would not tag its tests' ids with their groups, and the
        # controller would spread a group's tests over every worker.
        config.option.loadgroup = workerinput.get(DIST) == "loadgroup"
        return
    if not config.pluginmanager.hasplugin("xdist"):
        return
    option = config.option
    if option.numprocesses is None and not option.tx and not option.usepdb:
        option.numprocesses = WORKERS
    if option.dist == "no":
        option.dist = "loadgroup"


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """Tell each worker how the controller schedules (see :func:`pytest_cmdline_main`)."""
    node.workerinput[DIST] = node.config.option.dist


def pytest_configure(config: pytest.Config) -> None:
    """A worker takes its handle on the run's lock (tests/support/runlock.py)."""
    workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
    if workerinput is None:
        return
    if config.option.basetemp:
        # popen-gwN under the controller's base temp: its parent is the run's own.
        directory = Path(config.option.basetemp).parent / "run-lock"
    else:
        directory = Path(tempfile.gettempdir()) / f"bastion-run-{workerinput['testrunuid']}"
    config.stash[RUN_LOCK] = RunLock(directory)


def pytest_unconfigure(config: pytest.Config) -> None:
    lock = config.stash.get(RUN_LOCK, None)
    if lock is not None:
        lock.close()


def _ensure(config: pytest.Config, paths: Iterable[Path]) -> None:
    """Install the Debian programs the collected tests run (Chromium, wrk, openssl).

    The README's ``uv run pytest`` is the whole set-up on a fresh machine: as
    root the missing programs are installed with apt-get, otherwise the run
    stops here with one line naming the command, instead of failing test by
    test deep inside a fixture. Once per run: in this process when it runs the
    tests itself, else in the controller when the first worker has collected.
    """
    if config.stash.get(INSTALLED, False):
        return
    config.stash[INSTALLED] = True
    try:
        installed = ensure(paths)
    except SetupError as error:
        pytest.exit(f"bastion tests: {error}", returncode=pytest.ExitCode.USAGE_ERROR)
    if installed:
        config.get_terminal_writer().line(f"bastion tests: installed {', '.join(installed)}")


def pytest_collection_finish(session: pytest.Session) -> None:
    config = session.config
    if config.option.collectonly or hasattr(config, "workerinput"):
        return
    _ensure(config, (item.path for item in session.items))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node: Any, ids: list[str]) -> None:
    """Under xdist the controller collects nothing itself: it installs for the first worker's tests."""
    config: pytest.Config = node.config
    _ensure(config, {config.rootpath / nodeid.split("::", 1)[0] for nodeid in ids})


def worker_group(item: pytest.Item) -> str | None:
    """The ``xdist_group`` of a test: tests of one group run on one worker, in a row.

    - ``load``: every load test, queued on one worker behind each other, which
      hands the run's exclusive lock from one to the next instead of letting
      the other workers in between (see tests/support/runlock.py).
    - ``browser``: every browser test, so a worker starts Chromium once for all
      of them (tests/e2e/conftest.py).
    - A fixture scoped to a module, class or package (a server started once for
      its tests): the tests that share it, per parameter, so it starts on one
      worker, not on each.

    Any other test (None) goes to whichever worker is free.
    """
    if item.get_closest_marker("load") is not None:
        return "load"
    if item.get_closest_marker("browser") is not None:
        return "browser"
    if not isinstance(item, pytest.Function):
        return None
    ranks = {"class": 1, "module": 2, "package": 3}
    owner: tuple[int, str] | None = None
    params: list[str] = []
    callspec = getattr(item, "callspec", None)
    for name, definitions in sorted(item._fixtureinfo.name2fixturedefs.items()):
        if not definitions or definitions[-1].scope not in ranks:
            continue
        definition = definitions[-1]
        rank = ranks[definition.scope]
        if definition.scope == "package":
            where = definition.baseid
        else:
            node = item.getparent(pytest.Class if definition.scope == "class" else pytest.Module)
            where = node.nodeid if node is not None else item.nodeid
        if owner is None or rank > owner[0]:
            owner = (rank, where)
        if callspec is not None and name in callspec.indices:
            params.append(f"{name}{callspec.indices[name]}")
    if owner is None:
        return None
    return "-".join([owner[1], *params])


def _tag(item: pytest.Item, group: str) -> None:
    """Give ``item`` the id ``<id>@<group>``: the suffix the controller schedules by.

    xdist writes it for an ``xdist_group`` marker in its own hook, which runs
    before this one on a worker, and (3.8) only into ``_nodeid``, which pytest
    9.2 no longer reads: there the id lives in ``_id``, a parsed ``NodeId``
    that keeps the string it was parsed from. Both are private; the test
    ``test_groups_reach_the_scheduler`` fails if neither takes.
    """
    tagged = f"{item.nodeid}@{group}"
    if hasattr(item, "_id"):
        from _pytest.nodeid import NodeId

        item._id = NodeId.parse(tagged)
    else:
        item._nodeid = tagged  # type: ignore[attr-defined]
    assert item.nodeid == tagged, "pytest keeps node ids somewhere new: see _tag"


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Each test gets its kinds' markers (tests/support/kinds.py) and its worker group.

    First among the hooks, so that ``-m`` selects by these markers and xdist
    sees the groups. Browser tests last: they are the slowest, and a run of
    them holds Playwright's event loop on its thread.
    """
    for item in items:
        for kind in kinds_of(item.path):
            item.add_marker(kind)
    if getattr(config.option, "loadgroup", False):  # a worker of a --dist loadgroup run
        for item in items:
            group = worker_group(item)
            if group is not None and item.get_closest_marker("xdist_group") is None:
                _tag(item, group)
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(
    item: pytest.Item, nextitem: pytest.Item | None
) -> Generator[None, object, object]:
    """Each test holds the run's lock from setup to teardown: shared, or exclusive for ``load``.

    Only under xdist workers (one process needs no lock). A load test keeps the
    exclusive lock when the next test on this worker is one too, so a row of
    them does not let the other workers in between.
    """
    lock = item.config.stash.get(RUN_LOCK, None)
    if lock is None:
        return (yield)
    alone = item.get_closest_marker("load") is not None
    lock.hold("exclusive" if alone else "shared")
    try:
        return (yield)
    finally:
        if not (alone and nextitem is not None and nextitem.get_closest_marker("load")):
            lock.release()


@pytest.fixture(autouse=True)
def _clean_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No test sees the developer's shell configuration or another test's settings.

    Every variable the settings model reads is cleared, taken from the model
    itself, so a setting added tomorrow is covered without anyone listing it.
    """
    for name in Settings.model_fields:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(ENV_PREFIX + name, raising=False)
    reset_settings()
    yield
    reset_settings()


@pytest.fixture(autouse=True)
def _bastion_logger_as_it_was() -> Iterator[None]:
    """A test that wraps an app leaves the ``bastion`` logger as it found it.

    ``Bastion.protect`` sends bastion's lines to stderr, once per process, and
    stops them reaching the root logger (see :func:`bastion.ops.configure_logging`);
    a later test's ``caplog`` (a handler on the root) would otherwise see none.
    """
    logger = logging.getLogger("bastion")
    handlers, level, propagate = list(logger.handlers), logger.level, logger.propagate
    yield
    for handler in list(logger.handlers):
        if handler not in handlers:
            handler.flush()
            logger.removeHandler(handler)
    for handler in handlers:
        if handler not in logger.handlers:
            logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = propagate


@pytest.fixture(scope="session")
def valkey_server() -> Iterator[ValkeyServer]:
    server = ValkeyServer().start()
    yield server
    server.close()


@pytest.fixture
def valkey_url(valkey_server: ValkeyServer) -> Iterator[str]:
    """A running Valkey, emptied after each test."""
    if valkey_server.process is None:
        valkey_server.start()
    yield valkey_server.url
    if valkey_server.process is None:  # a test killed it
        valkey_server.start()
    with valkey.Valkey.from_url(valkey_server.url) as client:
        client.flushall()


@pytest.fixture
def raw_valkey(valkey_url: str) -> Iterator[valkey.Valkey]:
    """A plain client, to look at what bastion actually wrote."""
    with valkey.Valkey.from_url(valkey_url) as client:
        yield client


@pytest.fixture
def hung_server() -> Iterator[HungServer]:
    with HungServer() as server:
        yield server


def make_cache(
    url: str | None,
    *,
    command_timeout: float = 0.5,
    prefix: str = "test:",
    failures: int = 5,
    cooldown: float = 5.0,
) -> Cache:
    if url is None:
        return Cache(None, prefix)
    options = ValkeyOptions(
        url=url,
        command_timeout=command_timeout,
        breaker_failures=failures,
        breaker_cooldown=cooldown,
    )
    return Cache(options, prefix)


@pytest.fixture
async def cache(valkey_url: str) -> AsyncIterator[Cache]:
    """A Cache on the real Valkey, with generous timeouts so semantics tests never flake."""
    instance = make_cache(valkey_url)
    yield instance
    await instance.aclose()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL 18 cluster per session: initdb costs 0.5-1.5 s, a database ~0.1 s."""
    server = PostgresServer().start()
    yield server
    server.close()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh database for this test, as ``postgresql://postgres@127.0.0.1:PORT/DB``.

    Dropped afterwards (open connections included). A test that stopped or killed
    the server gets it restarted first, on the same port and data directory.
    """
    if not postgres_server.running:
        postgres_server.start()
    name = unique_database_name(request.node.name)
    url = postgres_server.create_database(name)
    yield url
    if not postgres_server.running:
        postgres_server.start()
    postgres_server.drop_database(name)
