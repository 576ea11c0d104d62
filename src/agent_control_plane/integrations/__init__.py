"""Ways to put governance around code an agent runs: a decorator and an MCP proxy."""
