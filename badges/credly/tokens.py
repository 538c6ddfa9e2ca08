"""Where an organization's Credly token comes from (docs/CONTRACT.md "Organizations and templates").

With ``api_key_env`` only the variable's name is in the configuration and every worker reads the
token from its own environment; an inline ``api_key`` travels in the configuration topic.
"""

from __future__ import annotations

import os
from typing import Callable

from badges.config.entities import ConfigSnapshot, Organization


class MissingToken(LookupError):
    """No usable token: the message names the organization and the variable, never a token."""


def organization_token(org: Organization) -> str:
    if org.api_key is not None:
        return org.api_key.get_secret_value()
    if org.api_key_env:
        token = os.environ.get(org.api_key_env)
        if token:
            return token
        raise MissingToken(
            f"organization {org.uuid}: environment variable {org.api_key_env} is not set on this worker"
        )
    raise MissingToken(f"organization {org.uuid} has no token configured")


def token_lookup(snapshot: Callable[[], ConfigSnapshot]) -> Callable[[str], str]:
    """A `token_for(org_uuid)` for CredlyClient that follows configuration changes."""

    def token_for(org_uuid: str) -> str:
        org = snapshot().organizations.get(org_uuid)
        if org is None:
            raise MissingToken(f"organization {org_uuid} is not configured")
        return organization_token(org)

    return token_for
