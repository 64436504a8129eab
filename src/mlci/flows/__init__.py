"""Flows: one module per trigger, the only code that runs the steps in order."""
