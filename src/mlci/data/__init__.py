"""Data: loading, hashing (DVC-aware), profiling and Great Expectations validation."""
