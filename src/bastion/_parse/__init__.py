"""The notations the settings are written in, parsed: leaves at the bottom of the house.

``bastion.config`` validates every value at start-up with these parsers, and
the blocks that use a value parse it with the same ones, so a value the
settings accepted can never fail later in other words. That is why each
module here imports nothing of bastion (and this ``__init__`` imports
nothing at all): config sits on them, and everything else sits on config
(``tests/unit/test_import_graph.py`` keeps it so).

- :mod:`bastion._parse.origins`: a Host value, a serialised origin, ``TRUSTED_ORIGINS``
- :mod:`bastion._parse.networks`: ``TRUSTED_PROXIES`` (IPs, CIDRs, ``unix``)
- :mod:`bastion._parse.ratelimit`: ``10/minute`` (the ``limits`` notation)
- :mod:`bastion._parse.schedule`: "every N seconds" as a cron expression
- :mod:`bastion._parse.urls`: ``DATABASE_URL`` and ``VALKEY_URL``
"""
