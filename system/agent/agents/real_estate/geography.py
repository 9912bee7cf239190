"""The cities and areas the listings cover, with their price levels.

One table feeds both the generator (where listings are and what they cost) and the
message parser (which place names it recognises), so the two cannot drift apart.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class City:
    name: str
    currency: str
    night: int  # typical nightly price of a 1-bedroom short stay
    month: int  # typical monthly rent of a 1-bedroom long let
    areas: tuple[tuple[str, float], ...]  # (area, price premium factor)
    aliases: tuple[str, ...] = ()


CITIES: tuple[City, ...] = (
    City("Lisbon", "EUR", 85, 1300, (("Alfama", 1.0), ("Baixa", 1.15), ("Chiado", 1.3),
         ("Belém", 0.95), ("Príncipe Real", 1.35), ("Parque das Nações", 1.1)), ("lisboa", "lisbonne", "lissabon")),
    City("Porto", "EUR", 70, 950, (("Ribeira", 1.2), ("Boavista", 1.05), ("Cedofeita", 0.95),
         ("Foz do Douro", 1.3), ("Bonfim", 0.85)), ("oporto",)),
    City("Barcelona", "EUR", 110, 1450, (("Gràcia", 1.05), ("Eixample", 1.2), ("El Born", 1.25),
         ("Poblenou", 1.0), ("Barceloneta", 1.15), ("Sants", 0.85)), ("barna", "bcn")),
    City("Madrid", "EUR", 95, 1400, (("Malasaña", 1.1), ("Salamanca", 1.35), ("Chamberí", 1.2),
         ("Lavapiés", 0.9), ("Retiro", 1.25)), ()),
    City("Berlin", "EUR", 90, 1250, (("Mitte", 1.3), ("Kreuzberg", 1.1), ("Neukölln", 0.9),
         ("Prenzlauer Berg", 1.2), ("Friedrichshain", 1.05)), ("berlim",)),
    City("London", "GBP", 150, 2300, (("Camden", 1.15), ("Hackney", 1.0), ("Shoreditch", 1.2),
         ("Islington", 1.25), ("Brixton", 0.9), ("Notting Hill", 1.45)), ("londres", "londra")),
    City("Paris", "EUR", 140, 1900, (("Le Marais", 1.3), ("Montmartre", 1.05), ("Belleville", 0.85),
         ("Bastille", 1.1), ("Saint-Germain", 1.45)), ()),
    City("Amsterdam", "EUR", 135, 2000, (("Jordaan", 1.3), ("De Pijp", 1.15), ("Oud-West", 1.05),
         ("Oost", 0.95), ("Noord", 0.8)), ()),
)

CITY_BY_NAME: dict[str, City] = {c.name: c for c in CITIES}
CITY_OF_AREA: dict[str, str] = {area: c.name for c in CITIES for area, _ in c.areas}
