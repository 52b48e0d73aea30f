"""Benchmarks: ``python -m bench`` (``make bench``); see the README's Performance section."""
