"""What the benchmarks (``bench/``) and the tests (``tests/support/``) both drive.

Real servers on loopback (Valkey, a hung TCP peer, ``bastion`` on the command
line), wrk and its machine-readable result, and a Prometheus scrape. It sits
below both: it imports neither ``bench`` nor ``tests``, so neither has to
import the other.
"""
