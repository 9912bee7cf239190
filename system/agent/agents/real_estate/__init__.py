"""Rentals from the listings database: short stays by the night, long lets by the month."""
from system.agent.registry import AgentSpec

from .agent import RealEstateAgent

AGENT = AgentSpec("real_estate", RealEstateAgent, order=10)
