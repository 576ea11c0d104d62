"""``python -m agent_control_plane.cli``: the ``acp`` command without its script."""

from agent_control_plane.cli import main

main()
