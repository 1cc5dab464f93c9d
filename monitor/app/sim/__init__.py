"""Simulated time: ``replay`` of a JSON Lines history and the ``demo``."""
