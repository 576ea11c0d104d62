"""A governing MCP proxy: every ``tools/call`` passes ``govern`` before the real server sees it.

Needs the ``mcp`` extra (``pip install 'agent-control-plane-sql[mcp]'``).
"""
