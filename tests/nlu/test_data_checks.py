"""Bad training data is found with its file and line (YAML syntax, unknown entity, intent without examples)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from nlu.data_checks import check_nlu_data

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def data(tmp_path) -> Path:
    shutil.copytree(ROOT / "nlu" / "data", tmp_path / "data")
    return tmp_path / "data"


DOMAIN = ROOT / "nlu" / "domain.yml"


def test_the_bots_data_passes():
    assert check_nlu_data(DOMAIN, ROOT / "nlu" / "data") == []


def test_yaml_syntax_error_names_file_and_line(data):
    bad = data / "nlu" / "broken.yml"
    bad.write_text('version: "3.1"\nnlu:\n  - intent: greet\n    examples: |\n      - hi\n   - oops: [\n')
    (problem,) = check_nlu_data(DOMAIN, data)
    assert problem.startswith(f"{bad}:6: YAML syntax error")


def test_unknown_entity_names_file_line_and_entity(data):
    bad = data / "nlu" / "extra.yml"
    bad.write_text(
        'version: "3.1"\nnlu:\n  - intent: greet\n    examples: |\n      - hi\n'
        '      - hello, I am [Bob](person_name)\n      - hey [x]{"entity": "shoe_size"}\n'
    )
    problems = check_nlu_data(DOMAIN, data)
    assert [p.split(": ")[0] for p in problems] == [f"{bad}:6", f"{bad}:7"]
    assert "'person_name'" in problems[0] and "'shoe_size'" in problems[1]


def test_intent_without_examples_in_a_file_and_in_the_domain(data):
    bad = data / "nlu" / "extra.yml"
    bad.write_text('version: "3.1"\nnlu:\n  - intent: ask_warranty\n    examples: |\n')
    assert check_nlu_data(DOMAIN, data) == [f"{bad}:3: intent 'ask_warranty' has no examples"]
    (data / "nlu" / "extra.yml").unlink()
    for path in (data / "nlu").glob("*.yml"):  # remove every example of one domain intent
        text = path.read_text()
        if "- intent: ask_warranty" in text:
            head, _, tail = text.partition("  - intent: ask_warranty")
            rest = tail.split("\n  - ", 1)
            path.write_text(head + ("  - " + rest[1] if len(rest) > 1 else ""))
    (problem,) = check_nlu_data(DOMAIN, data)
    assert (
        problem.startswith(f"{DOMAIN.relative_to(ROOT)}:")
        and "'ask_warranty' has no training examples" in problem
    )
