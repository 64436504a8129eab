"""Flows: one module per trigger, the only code that runs steps in order."""
