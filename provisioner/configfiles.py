"""Reading config files: YAML without duplicate keys, ``${ENV}`` references, secrets.

Shared by the product configs (``provisioner.products``) and the billing sources
(``provisioner.billing.sources``). Every problem is collected as one line,
``file: key.path: message``, so ``provisioner products check`` can show a
reseller everything at once.
"""
from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml
from marshmallow import RAISE, Schema, ValidationError


class Loader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (PyYAML silently keeps the last)."""


def _construct_mapping(loader: Loader, node: yaml.MappingNode) -> dict:
    loader.flatten_mapping(node)
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            duplicate = key in seen
            seen.add(key)
        except TypeError:      # unhashable: construct_mapping reports it
            continue
        if duplicate:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", node.start_mark,
                f"found duplicate key {key!r}", key_node.start_mark)
    return loader.construct_mapping(node, deep=True)


Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)

FAILED = object()


def read_yaml(path: Path, problems: list[str]) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
        return yaml.load(text, Loader=Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problems.append(f"{path.name}: {where}invalid YAML: {getattr(e, 'problem', None) or e}")
    except (OSError, UnicodeDecodeError) as e:
        problems.append(f"{path.name}: cannot read the file: {e}")
    return FAILED


ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
# A whole value that is one reference, with at most an empty default.
SECRET_REF = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*(?::-)?\}")


def resolve(value: Any, path: list, environ: Mapping[str, str], file: str,
             problems: list[str]) -> Any:
    """``value`` with ``${NAME}`` / ``${NAME:-default}`` replaced in every string.

    As in a shell, ``:-`` also applies when the variable is set but empty.
    """
    if isinstance(value, Mapping):
        return {k: resolve(v, [*path, k], environ, file, problems) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, [*path, i], environ, file, problems) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match) -> str:
        name, default = match.group(1), match.group(2)
        found = environ.get(name)
        if found:
            return found
        if default is not None:
            return default
        state = "is empty" if found == "" else "is not set"
        problems.append(line(file, path, f"environment variable {name} {state}"))
        return match.group(0)

    resolved = ENV_REF.sub(substitute, value)
    if "${" in ENV_REF.sub("", value):
        problems.append(line(file, path, "malformed ${...} reference (use ${NAME} or ${NAME:-default})"))
    return resolved


def looks_secret(name: Any) -> bool:
    words = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", str(name)).lower()
    parts = [p for p in re.split(r"[^a-z0-9]+", words) if p]
    if not parts:
        return False
    # "api_key", "token", "client_secret", "accesshash"; not "key_file" or "token_url".
    return (parts[-1] in {"password", "passwd", "secret", "token", "key", "apikey",
                          "hash", "accesshash", "credentials"}
            or any(p in {"password", "passwd", "secret"} for p in parts))


def check_secrets(value: Any, path: list, file: str, problems: list[str]) -> None:
    """Secret-looking settings must be exactly one ``${ENV}`` reference."""
    if isinstance(value, Mapping):
        for k, v in value.items():
            if looks_secret(k) and v is not None and not isinstance(v, (Mapping, list)):
                if not (isinstance(v, str) and SECRET_REF.fullmatch(v.strip())):
                    extra = (" (a default after :- is inline too)"
                             if isinstance(v, str) and ENV_REF.fullmatch(v.strip()) else "")
                    problems.append(line(file, [*path, k],
                                          "secrets must be given as ${ENV} references, not inline" + extra))
            else:
                check_secrets(v, [*path, k], file, problems)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            check_secrets(v, [*path, i], file, problems)


def line(file: str, path: list, message: str) -> str:
    where = ""
    for part in path:
        where += f"[{part}]" if isinstance(part, int) else ("." if where else "") + str(part)
    return f"{file}: {where}: {message}" if where else f"{file}: {message}"


def flatten(messages: Any, path: list) -> Iterator[tuple[list, str]]:
    """marshmallow's nested error messages as (key path, message) pairs."""
    if isinstance(messages, Mapping):
        for key, sub in messages.items():
            yield from flatten(sub, path if key == "_schema" else [*path, key])
    elif isinstance(messages, list):
        for message in messages:
            yield from flatten(message, path)
    else:
        yield path, str(messages)


# --- structure (marshmallow) ----------------------------------------------------

REQUIRED = {"required": "is required", "null": "must not be empty"}
STRING = {**REQUIRED, "invalid": "must be a string"}


class StrictSchema(Schema):
    error_messages = {"unknown": "unknown key", "type": "must be a mapping"}

    class Meta:
        unknown = RAISE


def load(schema: Schema, data: Any, file: str, path: list, problems: list[str]) -> dict:
    """Load with ``schema``; on errors record them and keep whatever was valid."""
    try:
        return schema.load(data)
    except ValidationError as e:
        for where, message in flatten(e.messages, path):
            problems.append(line(file, where, message))
        return e.valid_data if isinstance(e.valid_data, dict) else {}
