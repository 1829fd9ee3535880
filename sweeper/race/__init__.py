"""Racing a grid over seeds (F-race, as irace does it): every configuration runs a few seeds,
those significantly behind the best are eliminated, the rest get one more seed, and so on.

:mod:`~sweeper.race.elimination` holds the statistics of one look; :mod:`~sweeper.race.state`
replays a race from the ledger (what was decided, what runs next). No Ray, no TensorFlow.
"""

from __future__ import annotations

from sweeper.race.elimination import TESTS, Look, comparison_level, look, look_level, seeds_needed, smallest_p
from sweeper.race.state import RaceState, Round, comparison, race_state

__all__ = ["TESTS", "Look", "RaceState", "Round", "comparison", "comparison_level", "look", "look_level", "race_state",
           "seeds_needed", "smallest_p"]
