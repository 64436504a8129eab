"""One module per trigger: the only code that runs stages in order."""
