"""Statistics: metrics, bootstrap, drift and sequential tests (leaves: numpy and scipy only)."""
