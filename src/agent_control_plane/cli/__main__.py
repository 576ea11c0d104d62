"""``python -m agent_control_plane.cli`` runs ``acp``."""

from agent_control_plane.cli import main

main()
