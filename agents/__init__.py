"""Faust agents and services: ingestion, progress, Credly sink, lifecycle events."""
