"""The real-estate agent: understanding, policy, tools and rendering glued together."""
from __future__ import annotations

from system.agent.registry import AgentContext, AgentRequest, Reading, Reply

from . import render
from .policy import Ask, Clarify, SearchPolicy, State
from .tools import ListingTools
from .understand import Understanding, understand

ROUTE_SCORE_IN_FLOW = 0.8  # a follow-up ("cheaper", "short stay") stays with the agent mid-search
RESULTS_LIMIT = 5


class RealEstateAgent:
    name = render.AGENT

    def __init__(self, context: AgentContext):
        self.tools = ListingTools(context.listings_db)

    def new_state(self) -> SearchPolicy:
        return SearchPolicy()

    def read(self, request: AgentRequest, state: SearchPolicy) -> Reading:
        u = understand(request.text, request.today)
        if request.tenure:
            u.tenure = request.tenure
        score, reason = u.signal, "keywords"
        if state.state is not State.IDLE and (u.has_criteria or u.problems) and score < ROUTE_SCORE_IN_FLOW:
            score, reason = ROUTE_SCORE_IN_FLOW, f"follow-up in {state.state.value}"
        return Reading(score, u, reason)

    def respond(self, request: AgentRequest, reading: Reading, state: SearchPolicy) -> Reply:
        u: Understanding = reading.parsed
        decision = state.handle(u)
        if isinstance(decision, Clarify):
            return Reply([render.clarify(decision)], state.criteria.tenure or "unknown", 0)
        if isinstance(decision, Ask):
            return Reply([render.ask(decision)], decision.criteria.tenure or "unknown", 0)
        found = self.tools.search_listings(decision.criteria, limit=RESULTS_LIMIT)
        state.results(found)
        body = render.results(decision.criteria, found, decision.refine)
        return Reply([body], decision.criteria.tenure, len(found))
