"""The public benchmark converters, on the real files in ../shared/datasets (read in place)."""

from __future__ import annotations

import re

import pytest
import yaml

from nlu import datasets
from nlu.data_checks import ENTITY_MARKUP

pytestmark = pytest.mark.skipif(not datasets.datasets_root().exists(), reason="../shared/datasets is missing")


def test_banking77_has_77_intents_and_the_published_split():
    bench = datasets.load("banking77")
    assert (len(bench.train), len(bench.test)) == (10003, 3080)
    assert len({e.intent for e in bench.train}) == 77 and not bench.has_oos and bench.validation is None


def test_clinc150_maps_oos_and_keeps_val_for_the_threshold():
    bench = datasets.load("clinc150")
    oos = datasets.OOS_INTENT
    assert len({e.intent for e in bench.train}) == 151  # 150 intents + out_of_scope (oos_train)
    assert sum(e.intent == oos for e in bench.test) == 1000 and len(bench.test) == 5500
    assert sum(e.intent == oos for e in bench.validation) == 100 and len(bench.validation) == 3100
    assert "oos" not in {e.intent for e in bench.train + bench.test + bench.validation}
    assert not {e.text for e in bench.validation} & {e.text for e in bench.test} - {""}


def test_snips_spans_are_exact_and_the_latin1_file_is_repaired():
    bench = datasets.load("snips")
    assert len({e.intent for e in bench.train}) == 7 and len(bench.test) == 700
    for example in bench.train + bench.test:
        for entity in example.entities:
            assert example.text[entity.start : entity.end] == entity.value
            assert entity.value == entity.value.strip()
    play = [e.text for e in bench.train if e.intent == "PlayMusic"]
    assert any("Música" in text for text in play)  # UTF-8 read as Latin-1, repaired
    assert not any(re.search(r"[\x00-\x1f\x7f-\x9f]|Ã", text) for text in play)


def test_rasa_yaml_round_trips_texts_and_entities(tmp_path):
    examples = [
        datasets.Example(
            "play Aspro Mavro on youtube",
            "PlayMusic",
            (datasets.Entity(5, 16, "track", "Aspro Mavro"), datasets.Entity(20, 27, "service", "youtube")),
        ),
        datasets.Example("what's the weather: rain?", "GetWeather"),
    ]
    path = datasets.write_rasa_yaml(examples, tmp_path / "nlu.yml")
    blocks = yaml.safe_load(path.read_text())["nlu"]
    lines = {b["intent"]: [line[2:] for line in b["examples"].splitlines()] for b in blocks}
    assert lines["GetWeather"] == ["what's the weather: rain?"]
    (marked,) = lines["PlayMusic"]
    assert [(m["text"], m["entity"]) for m in ENTITY_MARKUP.finditer(marked)] == [
        ("Aspro Mavro", "track"),
        ("youtube", "service"),
    ]
    assert ENTITY_MARKUP.sub(lambda m: m["text"], marked) == examples[0].text


def test_rasa_yaml_refuses_only_text_rasa_would_misread(tmp_path):
    with pytest.raises(ValueError, match="misread"):
        datasets.write_rasa_yaml([datasets.Example("see [this](link)", "x")], tmp_path / "nlu.yml")
    path = datasets.write_rasa_yaml(
        [datasets.Example("Where is my transfer from [country]?", "x")], tmp_path / "ok.yml"
    )  # a real Banking77 text: plain brackets are fine
    assert "- Where is my transfer from [country]?" in path.read_text()


def test_split_is_stratified_and_deterministic():
    examples = [datasets.Example(f"{intent} {i}", intent) for intent in "abc" for i in range(10)]
    rest, held = datasets.split_examples(examples, 0.2, seed=1)
    assert sorted(e.intent for e in held) == ["a", "a", "b", "b", "c", "c"]
    assert not set(rest) & set(held) and len(rest) + len(held) == 30
    assert datasets.split_examples(examples, 0.2, seed=1) == (rest, held)
    assert len(datasets.sample_per_intent(examples, 3, seed=0, intents=["a", "b"])) == 6
