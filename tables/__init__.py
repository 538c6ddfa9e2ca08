"""Changelog-backed Faust tables and the codecs of their values."""
