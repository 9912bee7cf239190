"""The general agent: everything that is not a property search gets a short, friendly answer.

It never claims a message (score 0); the router hands it whatever no other agent wants.
"""
from __future__ import annotations

import re

from system.agent.registry import AgentContext, AgentRequest, AgentSpec, Reading, Reply
from system.agent.text import normalize

_ANSWERS: tuple[tuple[re.Pattern, str], ...] = (
    (re.compile(r"\b(thanks?|thank you|thx|ty|cheers|obrigad[oa]|gracias|merci|danke)\b"),
     "You're welcome! Anything else I can look up for you?"),
    (re.compile(r"\b(bye|goodbye|see you|see ya|ciao|adeus|adios|au revoir|tschuss)\b"),
     "Goodbye, and good luck with the move!"),
    (re.compile(r"\b(help|what can you do|how does this work|who are you|what are you)\b"),
     "I'm a rental assistant: tell me a city, bedrooms and a budget (per night for short stays, "
     "per month for long lets) and I'll find listings."),
    (re.compile(r"^(hi|hello|hey|hiya|good (morning|afternoon|evening)|ola|hola|bonjour|hallo|yo)\b"),
     "Hello! I can help you find a place to rent. Where are you looking?"),
)
_DEFAULT = ("I can only help with rentals, I'm afraid. Try 'a 2-bedroom flat in Lisbon under 1200/month' "
            "or 'somewhere in Porto 3-10 Dec under 90 a night'.")


class GeneralAgent:
    name = "general"

    def __init__(self, context: AgentContext):
        pass

    def new_state(self) -> None:
        return None

    def read(self, request: AgentRequest, state: None) -> Reading:
        return Reading(0.0, normalize(request.text), "fallback")

    def respond(self, request: AgentRequest, reading: Reading, state: None) -> Reply:
        text = next((answer for pattern, answer in _ANSWERS if pattern.search(reading.parsed)), _DEFAULT)
        return Reply([{"agent": self.name, "text": text}], "none", 0)


AGENT = AgentSpec("general", GeneralAgent, order=1000)
