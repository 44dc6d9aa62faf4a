"""The example app: every bastion block wired into one Starlette app, with a sandbox page each."""

from __future__ import annotations

from bastion_example.app import create_app

__all__ = ["create_app"]
