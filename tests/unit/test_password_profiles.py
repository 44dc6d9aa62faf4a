"""``PASSWORD_HASH_PROFILE``: argon2id's parameters for new hashes, cheap only outside production.

The in-process account tests hash with ``cheapest``
(tests/integration/auth/conftest.py); these tests prove what that setting may
and may not do.
"""

from __future__ import annotations

import pytest

from bastion.auth._passwords import Passwords
from bastion.config import ConfigError, Settings, load_settings

PASSWORD = "a long enough password"


def test_the_default_is_rfc_9106_low_memory() -> None:
    assert Settings().PASSWORD_HASH_PROFILE == "rfc_9106_low_memory"
    hasher = Passwords.for_profile("rfc_9106_low_memory").hasher
    assert (hasher.time_cost, hasher.memory_cost, hasher.parallelism) == (3, 65536, 4)


def test_production_refuses_the_cheapest_profile() -> None:
    with pytest.raises(ConfigError, match="PASSWORD_HASH_PROFILE: 'cheapest' is for test suites"):
        load_settings(APP_ENV="production", SECRET_KEY="s" * 64, PASSWORD_HASH_PROFILE="cheapest")
    assert load_settings(PASSWORD_HASH_PROFILE="cheapest").PASSWORD_HASH_PROFILE == "cheapest"


async def test_a_hash_verifies_across_profiles_and_is_rehashed_to_the_current_one() -> None:
    cheap, default = Passwords.for_profile("cheapest"), Passwords.for_profile("rfc_9106_low_memory")
    stored = await cheap.hash(PASSWORD)
    assert (await cheap.verify(stored, PASSWORD)).ok
    moved = await default.verify(stored, PASSWORD)
    assert moved.ok
    assert moved.needs_rehash
    assert not (await default.verify(stored, "not the password")).ok
    assert not (await default.verify(None, PASSWORD)).ok  # the dummy hash: same work, no user
