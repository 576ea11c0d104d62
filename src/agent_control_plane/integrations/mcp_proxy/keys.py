"""Who may call tools through the HTTP proxy: a client presenting an ACP API key.

The key goes in ``Authorization: Bearer acp_…``, checked by the MCP SDK's own bearer
middleware with this verifier. Agent and admin keys may call tools, held by the same rule
as the gateway's: a key confined to a tenant only through a proxy serving that tenant's
session, an agent key only through a proxy serving a session of one of its agents.
"""

from __future__ import annotations

from mcp.server.auth.provider import AccessToken

from agent_control_plane.errors import AuthenticationError
from agent_control_plane.integrations.mcp_proxy.governance import Authenticates
from agent_control_plane.rules.keys import Access

TOOLS_SCOPE = "acp:tools"
TOOL_ROLES = ("agent", "admin")


class ApiKeyVerifier:
    """An MCP ``TokenVerifier`` backed by ACP's API keys."""

    def __init__(self, control_plane: Authenticates, tenant: str | None, agent_id: str) -> None:
        self._control_plane = control_plane
        self._tenant = tenant
        self._agent_id = agent_id

    async def verify_token(self, token: str) -> AccessToken | None:
        try:
            # A key verified in the last second is checked here, on the event loop: it
            # need not queue on the governance thread behind the last call's outcome.
            principal = self._control_plane.remembered_principal(
                token
            ) or await self._control_plane.authenticate_api_key(token)
        except AuthenticationError:
            return None  # 401
        allowed = (
            principal.role in TOOL_ROLES
            and principal.access(self._tenant, self._agent_id) is Access.ALLOWED
        )
        return AccessToken(
            token=token,
            client_id=principal.identity,
            # Without the scope the SDK answers 403 insufficient_scope.
            scopes=[TOOLS_SCOPE] if allowed else [],
        )
