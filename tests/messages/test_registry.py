"""The registry of the 36 message models: every model registered under its instance and tag, in
spec order, found by ``model_for`` and ``model_tagged``, and not to be mutated."""

from __future__ import annotations

import pytest

import bridge.messages as messages
from bridge.messages import INSTANCES, MESSAGE_TYPES, TAGS, LogEntry, Message, NodeHealth, model_for
from tests.messages.helpers import CASES, EXPECTED_REGISTRY


def test_cases_cover_every_registered_model() -> None:
    """The test table exercises exactly the 36 registered models."""
    assert set(CASES) == set(MESSAGE_TYPES.values())
    assert len(CASES) == 36


def test_registry_matches_the_spec_table() -> None:
    """MESSAGE_TYPES holds the 36 (instance, tag) pairs of docs/messages.md, and nothing else."""
    expected = {
        (instance, tag): model
        for instance, tags in EXPECTED_REGISTRY.items()
        for tag, model in tags.items()
    }
    assert dict(MESSAGE_TYPES) == expected
    assert len(MESSAGE_TYPES) == 36


def test_instances_are_the_nine_in_spec_order() -> None:
    """INSTANCES lists the nine instances in their bus order (docs/messages.md)."""
    assert tuple(EXPECTED_REGISTRY) == INSTANCES
    assert {instance for instance, _ in MESSAGE_TYPES} == set(INSTANCES)


def test_tags_are_unique_and_index_every_model() -> None:
    """TAGS maps each of the 36 tags to the same model MESSAGE_TYPES does."""
    assert len(TAGS) == 36
    assert {tag: model for (_, tag), model in MESSAGE_TYPES.items()} == dict(TAGS)


@pytest.mark.parametrize(("key", "model"), list(MESSAGE_TYPES.items()), ids=str)
def test_model_carries_its_own_instance_and_tag(key: tuple[str, str], model: type[Message]) -> None:
    """Each model's INSTANCE and TAG are the key it is registered under."""
    assert key == (model.INSTANCE, model.TAG)


def test_model_for_finds_known_pairs() -> None:
    """model_for returns the model registered for an (instance, tag) pair."""
    assert model_for("ex_esdb_logging", "log_entry") is LogEntry
    assert model_for("ex_esdb_health", "node_health_updated") is NodeHealth


@pytest.mark.parametrize(
    ("instance", "tag"),
    [
        ("ex_esdb_logging", "node_health_updated"),
        ("ex_esdb_nope", "log_entry"),
        ("ex_esdb_logging", "log_entries"),
        ("", ""),
    ],
)
def test_model_for_returns_none_for_unknown_pairs(instance: str, tag: str) -> None:
    """model_for returns None for an unknown instance, an unknown tag or a mismatched pair."""
    assert model_for(instance, tag) is None


@pytest.mark.parametrize("tag", list(TAGS), ids=str)
def test_model_tagged_finds_every_registered_tag(tag: str) -> None:
    """model_tagged finds each tag's model as TAGS does (publish asks it, building one module),
    a model whose TAG is that tag."""
    model = messages.model_tagged(tag)
    assert model is TAGS[tag]
    assert tag == model.TAG


def test_model_tagged_refuses_a_model_of_another_tag(monkeypatch: pytest.MonkeyPatch) -> None:
    """A tag whose model's name finds a model of another tag (here SystemAlert's name bound to
    NodeHealth) gives None, so publish asks the registry rather than send the wrong model."""
    monkeypatch.setattr(messages, "SystemAlert", TAGS["node_health_updated"])
    assert messages.model_tagged("system_alert") is None


@pytest.mark.parametrize("name", ["SystemAlert", "system_alerts", "ex_esdb_alerts", ""])
def test_model_tagged_returns_none_for_anything_but_a_tag(name: str) -> None:
    """model_tagged returns None for a class name, an unknown tag or an instance."""
    assert messages.model_tagged(name) is None


def test_registry_cannot_be_mutated() -> None:
    """MESSAGE_TYPES and TAGS are read-only views."""
    with pytest.raises(TypeError):
        MESSAGE_TYPES[("x", "y")] = LogEntry  # type: ignore[index]
    with pytest.raises(TypeError):
        TAGS["x"] = LogEntry  # type: ignore[index]


def test_every_model_is_exported() -> None:
    """Each message model is a public name of bridge.messages (the names are pinned elsewhere)."""
    assert {model.__name__ for model in CASES} <= set(messages.__all__)
