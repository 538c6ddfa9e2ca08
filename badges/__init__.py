"""Open edX Credentials Badges (Credly) as a Faust stream worker."""

__version__ = "0.1.0"
