"""One registry helper behind every registry of the zoo (models, schedulers, optimizers, augmentations,
loaders, backends): entries by name, aliases, a listing, and one error that names the valid choices.

A ``Registry`` is a read-only mapping from each name to its entry, so ``name in registry``,
``registry[name]``, ``list(registry)`` and ``choices=registry.choices()`` (argparse) all work; an alias
resolves to its entry. Adding a model, a scheduler or an augmentation is one ``register`` call; no other
module learns its name.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Generic, TypeVar

T = TypeVar("T")


class UnknownName(KeyError, ValueError):
    """A name no entry has; the message lists the valid ones. A ``KeyError`` for mapping code, a
    ``ValueError`` for the callers that check values."""

    def __init__(self, kind: str, name: object, valid: list[str]) -> None:
        super().__init__(name)
        self.kind, self.name, self.valid = kind, name, valid

    def __str__(self) -> str:
        return f"unknown {self.kind} {self.name!r}; valid: {', '.join(self.valid)}"


class Registry(Mapping[str, T], Generic[T]):
    """Entries of one ``kind`` ("model", "scheduler", ...) by name, in the order they were registered."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._aliases: dict[str, str] = {}

    def register(self, name: str, entry: T, aliases: tuple[str, ...] = ()) -> T:
        """Add ``entry`` under ``name`` (and ``aliases``); a name taken twice is a programming error."""
        for n in (name, *aliases):
            if n in self._aliases:
                raise ValueError(f"{self.kind} name {n!r} is registered twice")
            self._aliases[n] = name
        self._entries[name] = entry
        return entry

    def key(self, name: str) -> str:
        """The registered name that ``name`` (a name or an alias) stands for."""
        try:
            return self._aliases[name]
        except (KeyError, TypeError):
            listed = [f"{k} ({'/'.join(self.aliases(k))})" if self.aliases(k) else k for k in self._entries]
            raise UnknownName(self.kind, name, listed) from None

    def __getitem__(self, name: str) -> T:
        return self._entries[self.key(name)]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def aliases(self, name: str) -> list[str]:
        """The other names of entry ``name``."""
        return [a for a, k in self._aliases.items() if k == name and a != name]

    def choices(self) -> list[str]:
        """Every accepted name, aliases included: argparse's ``choices=``."""
        return list(self._aliases)
