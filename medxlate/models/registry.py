"""Name -> builder registries, one per model family.

Each family (generators, discriminators, adversarial losses) has exactly one :class:`Registry`.
Builders register themselves with a decorator at import time; configs and the CLI refer to them by
name only. There are no aliases: one name per thing.

Lookups fail loudly and helpfully, in the style of MONAI's ``look_up_option``::

    unknown generator 'unet3', did you mean 'unet'? available: unet

and parameters are checked against the builder's signature *before* it is called, so a typo in a
config names the model and the parameter instead of surfacing as a ``TypeError`` deep in a stack.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from medxlate.errors import ConfigError, RegistryError

if TYPE_CHECKING:
    from torch import nn

    from medxlate.models.losses import AdversarialLoss

T = TypeVar("T")

__all__ = ["ADVERSARIAL_LOSSES", "DISCRIMINATORS", "GENERATORS", "Registry", "did_you_mean"]


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Suggest the closest match of ``name`` among ``choices``.

    Args:
        name: the string that was not found.
        choices: the valid strings.

    Returns:
        ``" did you mean 'x'?"`` (with a leading space) for the closest choice, or ``""`` when no
        choice is reasonably close.
    """
    close = difflib.get_close_matches(str(name), sorted(choices), n=1, cutoff=0.6)
    return f" did you mean '{close[0]}'?" if close else ""


class Registry(Generic[T]):
    """A family of named builders (classes or factory functions) returning ``T``.

    Args:
        family: singular noun used in messages, e.g. ``"generator"``.

    Example:
        >>> WIDGETS: Registry[object] = Registry("widget")
        >>> @WIDGETS.register("plain")
        ... class Plain:
        ...     def __init__(self, size: int = 1) -> None:
        ...         self.size = size
        >>> WIDGETS.build("plain", size=3).size
        3
    """

    def __init__(self, family: str) -> None:
        self.family = family
        self._builders: dict[str, Callable[..., T]] = {}

    def register(self, name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator registering a builder under ``name``.

        Args:
            name: the registry key; lower-case, unique within the family.

        Returns:
            A decorator that registers its argument and returns it unchanged.

        Raises:
            ValueError: if ``name`` is already taken (a programming error, not user input).
        """

        def decorator(builder: Callable[..., T]) -> Callable[..., T]:
            if name in self._builders:
                raise ValueError(
                    f"{self.family} '{name}' is already registered (by {self._builders[name]!r}); "
                    "registry names must be unique and aliases are not allowed"
                )
            self._builders[name] = builder
            return builder

        return decorator

    def names(self) -> tuple[str, ...]:
        """Return the registered names, sorted.

        Returns:
            Tuple of names.
        """
        return tuple(sorted(self._builders))

    def __contains__(self, name: object) -> bool:
        return name in self._builders

    def __len__(self) -> int:
        return len(self._builders)

    def __repr__(self) -> str:
        return f"Registry({self.family!r}, names={list(self.names())})"

    def get(self, name: str) -> Callable[..., T]:
        """Return the builder registered under ``name``.

        Args:
            name: registry key (exact match, no aliases).

        Returns:
            The registered class or function.

        Raises:
            RegistryError: if ``name`` is unknown; the message suggests the closest name and lists
                all available ones.
        """
        if isinstance(name, str) and name in self._builders:
            return self._builders[name]
        hint = did_you_mean(name, self._builders) if isinstance(name, str) else ""
        sep = "," if hint else ";"
        raise RegistryError(
            f"unknown {self.family} {name!r}{sep}{hint} available: {', '.join(self.names()) or '(none)'}"
        )

    def check_params(self, name: str, params: dict[str, Any]) -> None:
        """Check ``params`` against the signature of the builder ``name``, without calling it.

        Args:
            name: registry key.
            params: keyword arguments intended for the builder.

        Raises:
            RegistryError: if ``name`` is unknown.
            ConfigError: if a parameter is not accepted by the builder, or a required one is missing.
        """
        signature = inspect.signature(self.get(name))
        accepted = {
            p.name: p
            for p in signature.parameters.values()
            if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        }
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values())
        if not takes_any:
            for key in params:
                if key not in accepted:
                    raise ConfigError(
                        f"{self.family} '{name}' got unknown parameter '{key}',{did_you_mean(key, accepted)}"
                        f" accepted: {', '.join(accepted) or '(none)'}"
                    )
        required = [key for key, p in accepted.items() if p.default is inspect.Parameter.empty]
        missing = ", ".join(repr(key) for key in required if key not in params)
        if missing:
            raise ConfigError(f"{self.family} '{name}' is missing required parameter(s): {missing}")

    def build(self, name: str, /, **params: Any) -> T:
        """Build the registered object ``name`` with keyword ``params``.

        Args:
            name: registry key.
            **params: keyword arguments passed to the builder (checked against its signature first).

        Returns:
            Whatever the builder returns (a module for models, a loss object for losses).

        Raises:
            RegistryError: if ``name`` is unknown.
            ConfigError: for an unknown or missing parameter, or a bad value (raised by the builder).
        """
        self.check_params(name, params)
        return self.get(name)(**params)


# One registry per family. The concrete builders register themselves when their modules are imported
# by ``medxlate.models.__init__`` (importing any submodule imports the package first).
GENERATORS: Registry[nn.Module] = Registry("generator")
DISCRIMINATORS: Registry[nn.Module] = Registry("discriminator")
ADVERSARIAL_LOSSES: Registry[AdversarialLoss] = Registry("adversarial loss")
