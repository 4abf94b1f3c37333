"""Fault injection with real processes: what was published against what is stored."""
