"""Fixtures that several integration modules share, beside the suite-wide ones in tests/conftest.py.

The fault fixtures (tests/support/valkey_ha.py): a test that asks for
``killable``, ``refused`` or ``hung`` runs twice, on a plain ``redis://`` URL
and through a Sentinel, so every Valkey fault is also a fault of a
Sentinel-managed primary.
"""

from tests.support.valkey_ha import (  # noqa: F401 - fixtures, found by name
    hung,
    killable,
    managed,
    refused,
    sentinel_managed,
)
