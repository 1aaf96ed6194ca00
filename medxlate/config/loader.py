"""Load YAML configs into frozen :class:`ExperimentConfig` objects; the only place YAML is parsed."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from medxlate.config.schema import ExperimentConfig
from medxlate.errors import ConfigError

# A YAML document may expand (aliases, merge keys) to at most this many nodes and nest this deep. A real
# config has a few hundred nodes and fewer than ten levels; an alias bomb (nine levels of nine aliases,
# 600 bytes) expands to ~10**9 and would hang every consumer that walks the tree.
MAX_YAML_NODES = 100_000
MAX_YAML_DEPTH = 64


def safe_load_bounded(text: str, source: str = "<yaml>") -> Any:
    """``yaml.safe_load`` that refuses documents expanding beyond :data:`MAX_YAML_NODES` nodes or nesting
    deeper than :data:`MAX_YAML_DEPTH` levels, and recursive aliases (an anchor used inside itself).

    The node graph is checked after composing (where an alias is one shared node) and before
    constructing Python objects, so a bomb is refused in time linear in its size.

    Args:
        text: The YAML document.
        source: Where the text came from (a file name), for the message.

    Returns:
        The parsed document (``None`` for an empty one).

    Raises:
        ConfigError: for a document over the limits or with a recursive alias.
        yaml.YAMLError: for text that is not valid YAML.
    """
    loader = yaml.SafeLoader(text)
    try:
        try:
            node = loader.get_single_node()
        except RecursionError as e:  # the composer recurses once per nesting level
            raise ConfigError(f"{source}: YAML nested too deeply (expected at most {MAX_YAML_DEPTH} levels)") from e
        if node is None:
            return None
        _check_expansion(node, source)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _check_expansion(root: yaml.Node, source: str) -> None:
    """Count the nodes ``root`` expands to (each alias counted in full), iteratively, memoised per node."""
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, int, bool]] = [(root, 1, False)]
    while stack:
        node, depth, children_done = stack.pop()
        children = _children(node)
        if children_done:
            on_path.discard(id(node))
            sizes[id(node)] = 1 + sum(sizes[id(child)] for child in children)
            if sizes[id(node)] > MAX_YAML_NODES:
                raise ConfigError(
                    f"{source}: YAML expands to more than {MAX_YAML_NODES} values (through anchors and aliases); "
                    "expected a plain config"
                )
            continue
        if id(node) in sizes:
            continue
        if depth > MAX_YAML_DEPTH:
            raise ConfigError(f"{source}: YAML nested too deeply (expected at most {MAX_YAML_DEPTH} levels)")
        on_path.add(id(node))
        stack.append((node, depth, True))
        for child in children:
            if id(child) in on_path:
                mark = child.start_mark
                raise ConfigError(
                    f"{source}: recursive YAML alias: the anchor at line {mark.line + 1}, column {mark.column + 1} "
                    "is used inside itself; expected a tree"
                )
            if id(child) not in sizes:
                stack.append((child, depth + 1, False))


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [item for pair in node.value for item in pair]
    return []


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML file that must hold a mapping.

    Args:
        path: YAML file.

    Returns:
        The parsed mapping.

    Raises:
        ConfigError: if the file is missing, is not valid YAML or does not hold a mapping.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found (expected a YAML file)")
    try:
        data = safe_load_bounded(path.read_text(encoding="utf-8"), source=str(path))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from e
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at top level, found {type(data).__name__}")
    return data


def apply_overrides(raw: Mapping[str, Any], overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """Return a deep copy of ``raw`` with dotted-key overrides applied (``{"train.epochs": 2}``).

    Args:
        raw: Nested mapping as read from YAML.
        overrides: Dotted keys to values; intermediate mappings are created when missing.

    Returns:
        The merged nested dict.

    Raises:
        ConfigError: if an override descends into a value that is not a mapping.
    """
    merged = _deep_copy(raw)
    for dotted, value in (overrides or {}).items():
        node = merged
        parts = dotted.split(".")
        for depth, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                where = ".".join(parts[: depth + 1])
                raise ConfigError(f"override '{dotted}': '{where}' holds a {type(child).__name__}, not a section")
            node = child
        node[parts[-1]] = value
    return merged


def parse_override(text: str) -> tuple[str, Any]:
    """Parse ``key.path=value`` from the command line; the value is read as YAML (``2``, ``[1, 2]``).

    Raises:
        ConfigError: if there is no ``=`` or the key is empty.
    """
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {text!r}: expected KEY.PATH=VALUE, e.g. train.epochs=2")
    try:
        parsed = safe_load_bounded(value, source=f"override {text!r}")
    except yaml.YAMLError as e:
        raise ConfigError(f"override {text!r}: value is not valid YAML: {e}") from e
    return key.strip(), parsed


def load_config(path: str | Path, overrides: Mapping[str, Any] | None = None) -> ExperimentConfig:
    """Load and validate an experiment config.

    Args:
        path: YAML file.
        overrides: Dotted keys to values applied before validation, e.g. ``{"train.epochs": 2}``.

    Returns:
        The frozen, validated config.

    Raises:
        ConfigError: listing every problem with its key path, the value found and what was expected.
    """
    raw = apply_overrides(read_yaml(path), overrides)
    return validate_config(raw, source=str(path))


def validate_config(raw: Mapping[str, Any], source: str = "<config>") -> ExperimentConfig:
    """Validate a nested mapping into an :class:`ExperimentConfig` (see :func:`load_config`)."""
    return validate_model(ExperimentConfig, raw, source)


ModelT = TypeVar("ModelT", bound=BaseModel)


def validate_model(model_cls: type[ModelT], raw: Mapping[str, Any], source: str = "<config>") -> ModelT:
    """Validate a nested mapping into any config model, with the same error messages as experiments.

    Args:
        model_cls: A pydantic model class (frozen, ``extra="forbid"``).
        raw: Nested mapping as read from YAML.
        source: Where ``raw`` came from, for the message (a file name).

    Returns:
        The validated model.

    Raises:
        ConfigError: listing every problem with its key path, the value found and what was expected
            (unknown keys with a "did you mean" hint).
    """
    try:
        return model_cls.model_validate(dict(raw))
    except ValidationError as e:
        lines = [_describe_error(err, model_cls) for err in e.errors()]
        raise ConfigError(f"{source}: invalid config:\n  " + "\n  ".join(lines)) from e


def _describe_error(err: Mapping[str, Any], model_cls: type[BaseModel] = ExperimentConfig) -> str:
    loc = tuple(err["loc"])
    key = ".".join(str(p) for p in loc)
    if err["type"] == "extra_forbidden":
        known = _known_keys(model_cls, loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
        hint = f", did you mean '{close[0]}'?" if close else ""
        return f"'{key}': unknown key{hint} (allowed here: {', '.join(sorted(known))})"
    if err["type"] == "missing":
        return f"'{key}': required key is missing"
    found = err.get("input")
    return f"'{key}': {err['msg']} (found {found!r})"


def _known_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Field names of the (nested) model reached by following ``loc`` from ``model``."""
    current: Any = model
    for part in loc:
        field = current.model_fields.get(str(part)) if isinstance(current, type) else None
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        current = annotation
    return list(current.model_fields) if isinstance(current, type) else []


def _deep_copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value


def flatten_config(cfg: ExperimentConfig) -> dict[str, str]:
    """Flatten the resolved config to ``section.key`` -> string, for tracking params."""
    out: dict[str, str] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        else:
            out[prefix] = str(value)

    dumped = cfg.model_dump(mode="json")
    if dumped.get("xray") is None:  # the X-ray section exists only for X-ray -> CT runs
        dumped.pop("xray", None)
    walk("", dumped)
    return out
