"""The ``phasewatch`` command line (DESIGN §5)."""
