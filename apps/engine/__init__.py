"""The composition root: run_engine and its feeds."""
