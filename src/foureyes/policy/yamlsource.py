"""Load YAML while remembering where every value came from.

Policies and staff directories are security configuration: an error must name the file, line and
field, and YAML's quieter habits are refused rather than guessed at (a duplicate key, which a
plain loader resolves by silently keeping the last one, is an error here).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from foureyes.errors import PolicyError
from foureyes.policy.scalar_forms import scalar_problem

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class SourceDocument:
    """A parsed YAML document with the line (1-based) of every mapping key and sequence item,
    where its block scalars (`|`, `>`: values written as lines) are, and which scalars YAML
    folded (`folded`: a `>` block, or a plain or quoted scalar written over several lines,
    whose lines YAML joined with spaces, so that the value's one line is not what the source
    showed as lines), the line each scalar's text starts on (`starts`), and each scalar YAML
    1.1 reads as other than it shows (`surprises`: location, line, why; `scalar_forms`),
    which a new policy text may not hold."""

    file: str
    data: Any
    lines: dict[Loc, int]
    blocks: frozenset[Loc] = frozenset()
    folded: frozenset[Loc] = frozenset()
    starts: Mapping[Loc, int] = field(default_factory=dict)
    surprises: tuple[tuple[Loc, int, str], ...] = ()

    def line_of(self, loc: Loc) -> int | None:
        """The line of `loc`, or of its nearest enclosing value that has one."""
        probe = tuple(loc)
        while probe:
            if probe in self.lines:
                return self.lines[probe]
            probe = probe[:-1]
        return self.lines.get((), None)

    def error(self, loc: Loc, message: str) -> PolicyError:
        return PolicyError(message, file=self.file, line=self.line_of(loc), field=dotted(loc))

    def validation_error(self, exc: ValidationError) -> PolicyError:
        """The first Pydantic error, located in the source."""
        first = exc.errors()[0]
        loc = tuple(part for part in first["loc"] if isinstance(part, str | int))
        message = first["msg"].removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            message = "unknown field"
        return self.error(loc, message)


def dotted(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def load_yaml(path: Path | str) -> SourceDocument:
    """Read and parse a YAML file; raise PolicyError (with file and line) on any problem."""
    return parse_yaml(read_text(path), str(path))


def read_text(path: Path | str) -> str:
    """A YAML file's text (UTF-8); PolicyError naming the file when it cannot be read."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise PolicyError(f"cannot read: {reason}", file=str(path)) from exc


def parse_yaml(text: str, file: str = "<string>") -> SourceDocument:
    """Parse YAML text (one document) into plain data plus line numbers."""
    try:
        loader = yaml.SafeLoader(text)  # refuses control characters up front
    except yaml.reader.ReaderError as exc:
        raise PolicyError(
            f"malformed YAML: character #x{exc.character:04x} at position {exc.position} "
            "is not allowed",
            file=file,
        ) from exc
    try:
        node = loader.get_single_node()
        shape = _Shape()
        data = _build(loader, node, (), shape, file) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or exc.context or "malformed YAML"
        raise PolicyError(f"malformed YAML: {problem}", file=file, line=line) from exc
    except yaml.YAMLError as exc:
        raise PolicyError(f"malformed YAML: {exc}", file=file) from exc
    finally:
        loader.dispose()
    return SourceDocument(
        file=file,
        data=data,
        lines=shape.lines,
        blocks=frozenset(shape.blocks),
        folded=frozenset(shape.folded),
        starts=shape.starts,
        surprises=tuple(shape.surprises),
    )


@dataclass
class _Shape:
    """What `_build` notes of the source while it builds the data."""

    lines: dict[Loc, int] = field(default_factory=dict)
    blocks: set[Loc] = field(default_factory=set)
    folded: set[Loc] = field(default_factory=set)
    starts: dict[Loc, int] = field(default_factory=dict)
    surprises: list[tuple[Loc, int, str]] = field(default_factory=list)

    def note(self, node: yaml.Node, loc: Loc, what: str = "") -> None:
        """Note the scalar `node` at `loc` when YAML reads it as other than it shows."""
        if isinstance(node, yaml.ScalarNode):
            problem = scalar_problem(node.tag, node.value)
            if problem is not None:
                self.surprises.append((loc, node.start_mark.line + 1, f"{what}{problem}"))


def _build(loader: yaml.SafeLoader, node: yaml.Node, loc: Loc, shape: _Shape, file: str) -> Any:
    lines = shape.lines
    lines.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise PolicyError(
                    "YAML merge keys (<<) are not allowed",
                    file=file,
                    line=key_node.start_mark.line + 1,
                )
            shape.note(key_node, loc, "a key here: ")
            key = _construct(loader, key_node, file)
            if not isinstance(key, str | int | bool) or key is None:
                raise PolicyError(
                    "mapping keys must be plain strings",
                    file=file,
                    line=key_node.start_mark.line + 1,
                )
            key = str(key) if not isinstance(key, str) else key
            if key in result:
                raise PolicyError(
                    f"duplicate key {key!r}", file=file, line=key_node.start_mark.line + 1
                )
            lines[(*loc, key)] = key_node.start_mark.line + 1
            result[key] = _build(loader, value_node, (*loc, key), shape, file)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [
            _build(loader, item, (*loc, index), shape, file)
            for index, item in enumerate(node.value)
        ]
    if isinstance(node, yaml.ScalarNode):
        block = node.style in ("|", ">")
        if block:
            shape.blocks.add(loc)
        if node.style == ">" or (not block and node.end_mark.line > node.start_mark.line):
            shape.folded.add(loc)
        # A block's text starts on the line after its indicator.
        shape.starts[loc] = node.start_mark.line + 1 + (1 if block else 0)
        shape.note(node, loc)
    return _construct(loader, node, file)


def _construct(loader: yaml.SafeLoader, node: yaml.Node, file: str) -> Any:
    """A scalar's value; a PolicyError (with the line) for one YAML cannot build, such as a
    date that does not exist (``2027-02-30``, ``0000-01-01``)."""
    try:
        return loader.construct_object(node, deep=True)
    except (ValueError, OverflowError) as exc:
        raise PolicyError(
            f"{node.value!r} is not a valid value: {exc}"
            if isinstance(node, yaml.ScalarNode)
            else f"not a valid value: {exc}",
            file=file,
            line=node.start_mark.line + 1,
        ) from exc
