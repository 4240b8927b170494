"""Shared value types: what the stages, the pipeline and both doors exchange. No Ray, no models."""
