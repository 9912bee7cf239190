"""The v1.0 frame contract: golden frames, frozen schemas, and validation errors a client can act on."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from system.contracts import ROOT, load_schema, schema_names, validator
from system.server.frames import CLIENT_TYPES, FrameError, parse_client_frame

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "ws"
FROZEN = json.loads((GOLDEN / "frozen-v1.0.sha256.json").read_text())
GOLDEN_FRAMES = sorted((GOLDEN / "v1.0").glob("*.json"))


def test_v1_0_schemas_are_frozen():
    """Editing a v1.0 schema breaks every client in the field: make a new version instead."""
    current = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((ROOT / "ws" / "1.0").glob("*.json"))}
    assert current == FROZEN


@pytest.mark.parametrize("name", schema_names("ws", "1.0"))
def test_schemas_are_valid_draft_2020_12(name):
    schema = load_schema("ws", "1.0", name)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)


def test_every_frame_type_has_a_golden_frame():
    assert {p.stem for p in GOLDEN_FRAMES} == set(schema_names("ws", "1.0")) - {"envelope"}


@pytest.mark.parametrize("path", GOLDEN_FRAMES, ids=lambda p: p.stem)
def test_golden_frame_validates(path):
    frame = json.loads(path.read_text())
    assert frame["type"] == path.stem
    validator("ws", "1.0", "envelope").validate(frame)
    validator("ws", "1.0", frame["type"]).validate(frame)
    if frame["type"] in CLIENT_TYPES:
        assert parse_client_frame(path.read_text()) == frame


@pytest.mark.parametrize("raw, code, mentions", [
    ("not json", "invalid_json", "not JSON"),
    ("[1, 2]", "invalid_frame", "object"),
    ('{"type": "ping"}', "invalid_frame", "'v'"),
    ('{"v": "2.0", "type": "ping"}', "invalid_frame", "field 'v'"),
    ('{"v": "1.0", "type": "shout"}', "unknown_type", "user_message"),
    ('{"v": "1.0", "type": "user_message", "id": "m1"}', "invalid_frame", "'text'"),
    ('{"v": "1.0", "type": "user_message", "id": "m1", "text": 5}', "invalid_frame", "field 'text'"),
    ('{"v": "1.0", "type": "resume", "id": "r", "last_seq": -1}', "invalid_frame", "field 'last_seq'"),
    ('{"v": "1.0", "type": "ping", "extra": 1}', "invalid_frame", "extra"),
    ('{"v": "1.0", "type": "welcome", "session_id": "s"}', "unknown_type", "type"),
    (b'{"v": "1.0", "type": "ping"}', "invalid_frame", "binary"),
])
def test_invalid_client_frames_name_the_problem(raw, code, mentions):
    with pytest.raises(FrameError) as err:
        parse_client_frame(raw)
    assert err.value.code == code
    assert mentions in str(err.value)


def test_deep_nesting_is_an_invalid_frame_not_a_crash():
    with pytest.raises(FrameError) as err:
        parse_client_frame("[" * 30000 + "]" * 30000)
    assert err.value.code == "invalid_json"


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20)
FIELDS = st.fixed_dictionaries({}, optional={
    "v": st.sampled_from(["1.0", "1.1", 1.0, None]), "type": st.sampled_from([*CLIENT_TYPES, "welcome", "", 3]),
    "id": JSON, "text": JSON, "last_seq": JSON, "token": JSON, "extra": JSON})


@settings(max_examples=300, deadline=None)
@given(st.one_of(JSON.map(json.dumps), FIELDS.map(json.dumps), st.text(max_size=200), st.binary(max_size=50)))
def test_any_input_is_a_valid_frame_or_a_frame_error(raw):
    try:
        frame = parse_client_frame(raw)
    except FrameError as exc:
        assert exc.code in ("invalid_json", "invalid_frame", "unknown_type") and str(exc)
    else:
        validator("ws", "1.0", frame["type"]).validate(frame)
