"""Adapters that put ACP around other code an agent runs: the @governed decorator, the MCP
proxy, the LiteLLM callback (each third-party one needs its optional extra)."""
