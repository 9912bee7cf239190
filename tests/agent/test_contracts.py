"""Agent contracts: v1.0 frozen, v1.1 only adds (every v1.1 answer is a valid v1.0 answer), golden frames valid."""
from __future__ import annotations

import hashlib
import json

import pytest
from jsonschema import Draft202012Validator

from system.agent import contracts
from system.agent.contracts import ContractError

from .golden import FRAMES_DIR, load_sessions, replay

WS_CONTRACTS = contracts.CONTRACTS.parent / "ws" / "1.0"
# sha256 of the frozen v1.0 files: changing v1.0 is a new version, not an edit
FROZEN_V1_0 = {
    "request.json": "0afb0c531c02294d329b649478878f13abe3342409d95e1c508a2fc062dd3610",
    "response.json": "80a67e4fb69fa5902eb2938af57b75a9772d1896653ea247c26141d56e5e3242",
}


def _ws_validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(json.loads((WS_CONTRACTS / f"{name}.json").read_text()))


@pytest.mark.parametrize("name", sorted(FROZEN_V1_0))
def test_v1_0_contract_is_frozen(name):
    data = (contracts.CONTRACTS / "real_estate" / "1.0" / name).read_bytes()
    assert hashlib.sha256(data).hexdigest() == FROZEN_V1_0[name]


def test_every_golden_answer_validates_as_v1_1_and_as_v1_0(supervisor):
    checked = 0
    for session in load_sessions():
        for answers in replay(supervisor, session):
            for body in answers:
                if body["agent"] != "real_estate":
                    continue
                contracts.check("response", "1.1", body)
                contracts.check("response", "1.0", body)
                checked += 1
    assert checked >= 12  # the three sessions hold at least this many real-estate answers


def test_a_v1_0_request_is_served_and_a_v1_1_field_in_it_is_refused(supervisor):
    answer = supervisor.handle({"version": "1.0", "conversation_id": "c", "text": "2 bed flat in Porto, 1200/month"})
    contracts.check("response", "1.0", answer[0])
    with pytest.raises(ContractError, match="tenure"):
        supervisor.handle({"version": "1.0", "conversation_id": "c", "text": "flat", "tenure": "short"})


def test_a_v1_1_preset_tenure_skips_the_question(supervisor):
    [body] = supervisor.handle({"version": "1.1", "conversation_id": "c", "text": "2 bed in Lisbon",
                                "tenure": "short"})
    listings = body["actions"][0]["listings"]
    assert listings and all(x["tenure"] == "short" and x["price"]["unit"] == "night" for x in listings)


def test_an_unknown_version_is_refused_naming_the_field(supervisor):
    with pytest.raises(ContractError, match=r"version: '2\.0' is not one of"):
        supervisor.respond("c", "2 bed in Lisbon", "2.0")


def test_v1_0_schema_rejects_what_it_must_reject():
    """The ⊇ test above would pass against a schema that accepts anything; this one would not."""
    bad = [
        {"agent": "general", "text": "hi"},
        {"agent": "real_estate", "text": ""},
        {"agent": "real_estate", "text": "x", "actions": [{"type": "show_listings"}]},
        {"agent": "real_estate", "text": "x", "actions": [{"type": "show_listings", "listings": [
            {"id": "L1", "title": "t", "city": "c", "area": "a", "bedrooms": 1, "price": 900}]}]},
    ]
    for body in bad:
        with pytest.raises(ContractError):
            contracts.check("response", "1.0", body)
    with pytest.raises(ContractError, match="unit"):  # v1.1 demands the price unit
        contracts.check("response", "1.1", {"agent": "real_estate", "text": "x", "actions": [
            {"type": "show_listings", "criteria": {"tenure": "long", "city": "Porto"}, "listings": [
                {"id": "L1", "title": "t", "city": "c", "area": "a", "bedrooms": 1, "tenure": "long",
                 "price": {"amount": 900, "currency": "EUR"}}]}]})


@pytest.mark.parametrize("name", ["show_listings", "tenure_question"])
def test_golden_assistant_frames_validate_against_ws_and_agent_contracts(name):
    frame = json.loads((FRAMES_DIR / f"{name}.json").read_text())
    assert not list(_ws_validator("assistant_message").iter_errors(frame))
    body = {k: v for k, v in frame.items() if k not in ("v", "type", "id", "seq")}
    assert body["agent"] == "real_estate"
    contracts.check("response", "1.1", body)
    contracts.check("response", "1.0", body)


def test_golden_typing_frame_validates():
    frame = json.loads((FRAMES_DIR / "typing.json").read_text())
    assert not list(_ws_validator("chat_status").iter_errors(frame))
    assert frame["status"] == "typing"


def test_golden_frames_match_what_the_agent_answers_today(supervisor):
    """The checked-in frames are not stale copies: the agent still produces these bodies."""
    session = next(s for s in load_sessions() if s["name"] == "short_term")
    answers = replay(supervisor, session)
    for name, turn in (("tenure_question", 0), ("show_listings", 1)):
        frame = json.loads((FRAMES_DIR / f"{name}.json").read_text())
        body = {k: v for k, v in frame.items() if k not in ("v", "type", "id", "seq")}
        assert answers[turn] == [body]
