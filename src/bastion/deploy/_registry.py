"""How a deployment check is declared: its IDs and its rule, registered together.

A rule is a pure function of the loaded settings that yields findings; the
IDs it may report are registered with it, by one decorator, so an ID cannot
exist without the rule that reports it, nor a rule report an ID nobody
declared (Django's ``@register(..., deploy=True)``)::

    checks = CheckRegistry()

    @checks.register(CheckSpec("bastion.W041", "the sandbox is served in production"))
    def sandbox(settings: Settings) -> Iterator[Finding]:
        if settings.is_production:
            yield finding("bastion.W041", "...", "...")

bastion's own checks live in :mod:`bastion.deploy._checks`; an app hands its
own :class:`CheckRegistry` to ``bastion check`` through a ``bastion.checks``
entry point (see :mod:`bastion._plugins`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, TypeVar

from bastion._redact import redact

if TYPE_CHECKING:
    from bastion.config import Settings

Level = Literal["error", "warning"]


def level_of(check_id: str) -> Level:
    """The level an ID carries in its letter: ``bastion.E001`` an error, ``bastion.W013`` not."""
    return "error" if check_id.split(".", 1)[1].startswith("E") else "warning"


@dataclass(frozen=True, slots=True)
class CheckSpec:
    """One ID: what it looks for, and whether only ``--deploy`` runs it."""

    id: str
    what: str
    deploy: bool = True

    @property
    def level(self) -> Level:
        return level_of(self.id)


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem: its stable ID, level, what is wrong, and what to do about it."""

    id: str
    level: Level
    message: str
    hint: str

    def __post_init__(self) -> None:
        """Redacted once, here, so that no check (a plugin's included) can print a secret."""
        object.__setattr__(self, "message", redact(self.message))
        object.__setattr__(self, "hint", redact(self.hint))

    def to_json(self) -> dict[str, str]:
        return {"id": self.id, "level": self.level, "message": self.message, "hint": self.hint}

    def to_text(self) -> str:
        return f"{self.id} {self.level}: {self.message}\n  hint: {self.hint}"


@dataclass(frozen=True, slots=True)
class CheckResult:
    """What a run found, with the silenced findings kept apart (reported only as a count)."""

    findings: tuple[Finding, ...]
    silenced: tuple[Finding, ...]

    @property
    def errors(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.level == "error")

    @property
    def warnings(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.level == "warning")

    def failed(self, fail_level: Level = "error") -> bool:
        """Whether the run should end with a non-zero status at this threshold."""
        return bool(self.errors) if fail_level == "error" else bool(self.findings)


def finding(id: str, message: str, hint: str) -> Finding:
    """A finding whose level comes from its ID, so an ID never changes level silently."""
    return Finding(id, level_of(id), message, hint)


Rule = Callable[["Settings"], Iterator[Finding]]
#: A function whose findings the caller computes and passes to the run (see ``declare``).
_Fed = TypeVar("_Fed", bound=Callable[..., Iterator[Finding]])


class CheckRegistry:
    """IDs in the order they were registered, and the rules that report them, in that order."""

    def __init__(self) -> None:
        self.specs: dict[str, CheckSpec] = {}
        self.rules: list[Rule] = []

    def register(self, *specs: CheckSpec) -> Callable[[Rule], Rule]:
        """Decorator: ``rule`` reports these IDs, and runs with every ``bastion check``."""

        def add(rule: Rule) -> Rule:
            self._add_specs(specs)
            self.rules.append(rule)
            return rule

        return add

    def declare(self, *specs: CheckSpec) -> Callable[[_Fed], _Fed]:
        """Decorator for a rule that needs more than the settings (W060 reads the database):
        its IDs are registered here, and the caller runs it and passes its findings to
        :func:`~bastion.deploy._checks.run_checks` as ``extra``."""

        def add(rule: _Fed) -> _Fed:
            self._add_specs(specs)
            return rule

        return add

    def merge(self, other: CheckRegistry) -> None:
        """Take ``other``'s IDs and rules after this registry's own (an app's, after bastion's)."""
        self._add_specs(other.specs.values())
        self.rules.extend(other.rules)

    def _add_specs(self, specs: Iterable[CheckSpec]) -> None:
        for spec in specs:
            if spec.id in self.specs:
                raise ValueError(f"check ID {spec.id} is registered twice")
            self.specs[spec.id] = spec
