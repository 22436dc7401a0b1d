"""Building blocks by name (as torchvision's ``models/_api.py`` does): ``model.encoder``, ``model.cell``."""

from __future__ import annotations

from typing import Callable, Generic, TypeVar

from lstm_tv.errors import ConfigError

F = TypeVar("F", bound=Callable)


class Registry(Generic[F]):
    """Factories by name; an unknown name is a ConfigError naming the config key and listing the names."""

    def __init__(self, key: str):
        self.key = key  # the config key that picks from this registry, for error messages
        self.factories: dict[str, F] = {}

    def register(self, name: str) -> Callable[[F], F]:
        """Decorator: register ``factory`` under ``name``."""

        def wrap(factory: F) -> F:
            if name in self.factories:
                raise ValueError(f"{self.key} {name!r} is already registered")
            self.factories[name] = factory
            return factory

        return wrap

    def unregister(self, name: str) -> None:
        """Remove ``name`` (for tests that register a part of their own)."""
        del self.factories[name]

    def names(self) -> list[str]:
        """Registered names, in registration order (the default first)."""
        return list(self.factories)

    def __getitem__(self, name: str) -> F:
        if name not in self.factories:
            raise ConfigError(f"{self.key}: unknown {name!r}; choose from {', '.join(self.factories)}")
        return self.factories[name]

    def __contains__(self, name: str) -> bool:
        return name in self.factories
