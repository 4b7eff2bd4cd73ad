"""Checks of the Rasa training data that name the file and line of each problem (stdlib + PyYAML).

``rasa data validate`` stops on a YAML syntax error, but only warns about an entity the domain does not
declare and says nothing about an intent block with no examples; either would train a broken model.
:func:`check_nlu_data` finds all three:

- a YAML syntax error in any data file (file and line);
- an entity annotated in an NLU example (``[text](entity)``, ``[text](entity:value)`` or
  ``[text]{"entity": ...}``) that the domain does not declare (file and line of the example);
- an intent with no examples: an NLU block without any (file and line), or a domain intent that no
  NLU file has examples for (domain file and line).

Usage: ``python -m nlu.data_checks DOMAIN DATA_DIR`` lists every problem (exit code 1 if any).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import yaml

# [text](entity) / [text](entity:value) / [text]{"entity": ...} / [text][{...}, {...}]
ENTITY_MARKUP = re.compile(
    r"\[(?P<text>[^\]]+)\](?:\((?P<entity>[^:)]+)(?::[^)]*)?\)|(?P<dict>\{[^}]*\})"
    r"|\[(?P<list>[^\]]*)\])"
)
BUILTIN_INTENTS = {"nlu_fallback", "session_start", "restart", "back", "out_of_scope_default"}
#: Intents a pipeline component sets rather than the classifier learns (no training examples on purpose).
COMPONENT_INTENTS = {"unsupported_language"}  # nlu/components/language.py


def _yaml_files(folder: Path) -> list[Path]:
    if folder.is_file():
        return [folder]
    return sorted(p for p in folder.rglob("*") if p.suffix in (".yml", ".yaml") and p.is_file())


def _rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _compose(path: Path, problems: list[str]) -> yaml.Node | None:
    """The YAML node tree of a file (line numbers included), or None and a problem if it does not parse."""
    try:
        return yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        what = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        problems.append(f"{_rel(path)}{line}: YAML syntax error: {what}")
    except UnicodeDecodeError as exc:
        problems.append(f"{_rel(path)}: not UTF-8 text ({exc.reason})")
    return None


def _mapping(node: yaml.Node | None) -> dict[str, yaml.Node]:
    if not isinstance(node, yaml.MappingNode):
        return {}
    return {k.value: v for k, v in node.value if isinstance(k, yaml.ScalarNode)}


def _domain(domain: Path, problems: list[str]) -> tuple[dict[str, int], set[str], Path] | None:
    """Declared intents (with their line) and entities of the domain file."""
    node = _compose(domain, problems)
    if node is None:
        return None
    top = _mapping(node)
    intents: dict[str, int] = {}
    for item in getattr(top.get("intents"), "value", None) or []:
        if isinstance(item, yaml.ScalarNode):
            intents[item.value] = item.start_mark.line + 1
        elif isinstance(item, yaml.MappingNode) and item.value:
            key = item.value[0][0]
            intents[key.value] = key.start_mark.line + 1
    entities: set[str] = set()
    for item in getattr(top.get("entities"), "value", None) or []:
        if isinstance(item, yaml.ScalarNode):
            entities.add(item.value)
        elif isinstance(item, yaml.MappingNode) and item.value:
            entities.add(item.value[0][0].value)
    return intents, entities, domain


def _match_entities(match: re.Match) -> list[str]:
    """The entity names one ``[text](entity)`` / ``[text]{"entity": ...}`` / ``[text][{...}, ...]`` mark gives."""
    if match.group("entity"):
        return [match.group("entity").strip()]
    raw = match.group("dict") or f"[{match.group('list')}]"
    try:
        parsed = json.loads(raw)
    except json.JSONDecodeError:
        return []
    return [str(item["entity"]) for item in (parsed if isinstance(parsed, list) else [parsed])
            if isinstance(item, dict) and item.get("entity")]  # fmt: skip


def _example_entities(example: str) -> list[str]:
    return [name for match in ENTITY_MARKUP.finditer(example) for name in _match_entities(match)]


def marked_spans(example: str) -> tuple[str, list[tuple[int, int, str]]]:
    """An example's plain text (marks removed, stripped) and its entities as (start, end, entity) character spans
    of that text (the first entity of a mark that names several)."""
    plain, spans, at, start = [], [], 0, 0
    for match in ENTITY_MARKUP.finditer(example):
        plain.append(example[at : match.start()])
        start += len(plain[-1])
        plain.append(match.group("text"))
        names = _match_entities(match)
        if names:
            spans.append((start, start + len(match.group("text")), names[0]))
        start += len(match.group("text"))
        at = match.end()
    plain.append(example[at:])
    text = "".join(plain)
    lead = len(text) - len(text.lstrip())
    return text.strip(), [(s - lead, e - lead, name) for s, e, name in spans]


def check_nlu_data(domain: Path, data: Path) -> list[str]:
    """Every problem found, one line each: ``file:line: what is wrong``. Empty when the data is fine."""
    problems: list[str] = []
    declared = _domain(domain, problems)
    with_examples: set[str] = set()
    for path in _yaml_files(data):
        node = _compose(path, problems)
        nlu = _mapping(node).get("nlu")
        if not isinstance(nlu, yaml.SequenceNode):
            continue
        for block in nlu.value:
            fields = _mapping(block)
            intent = fields.get("intent")
            if not isinstance(intent, yaml.ScalarNode):
                continue
            examples_node = fields.get("examples")
            text = examples_node.value if isinstance(examples_node, yaml.ScalarNode) else ""
            lines = [
                (i, line.strip()[2:].strip())
                for i, line in enumerate(text.splitlines())
                if line.strip().startswith("- ") and line.strip()[2:].strip()
            ]
            if not lines:
                problems.append(
                    f"{_rel(path)}:{intent.start_mark.line + 1}: intent '{intent.value}' has no examples"
                )
                continue
            with_examples.add(intent.value)
            if declared is None:
                continue
            # a block scalar's content starts on the line after its indicator (`examples: |`)
            first = examples_node.start_mark.line + (1 if examples_node.style in ("|", ">") else 0)
            for offset, example in lines:
                for entity in _example_entities(example):
                    if entity not in declared[1]:
                        problems.append(
                            f"{_rel(path)}:{first + offset + 1}: entity '{entity}' is not declared "
                            f"in {_rel(domain)} (example: {example!r})"
                        )
    if declared is not None:
        intents, _, domain_path = declared
        for intent, line in intents.items():
            if intent not in with_examples and intent not in BUILTIN_INTENTS | COMPONENT_INTENTS:
                problems.append(
                    f"{_rel(domain_path)}:{line}: intent '{intent}' has no training examples in {_rel(data)}"
                )
    return problems


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    problems = check_nlu_data(Path(args[0]), Path(args[1]))
    for problem in problems:
        print(problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
