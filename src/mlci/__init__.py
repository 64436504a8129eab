"""mlci: CI/CD for machine-learning repositories."""

__version__ = "1.0.0"
