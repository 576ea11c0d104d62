"""Run an MCP server script and record every path under a folder it opens or lists.

    python recording.py LOG FOLDER SCRIPT [ARGS...]

An audit hook (PEP 578) sees each ``open``, ``os.listdir`` and ``os.scandir`` the
server makes, so a test can prove which files the real server touched, whatever the
proxy in front of it says.
"""

from __future__ import annotations

import os
import runpy
import sys
from typing import Any


def main() -> None:
    log_path, folder, script, *arguments = sys.argv[1:]
    watched = os.path.realpath(folder)
    log = open(log_path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 - lives with the process

    def hook(event: str, details: tuple[Any, ...]) -> None:
        if event not in ("open", "os.listdir", "os.scandir") or not details:
            return
        target = details[0]
        if isinstance(target, os.PathLike):
            target = os.fspath(target)
        if isinstance(target, bytes):
            target = target.decode(errors="replace")
        if not isinstance(target, str):
            return  # a file descriptor, or nothing
        where = os.path.normpath(os.path.join(os.getcwd(), target))
        if where == watched or where.startswith(watched + os.sep):
            log.write(f"{event} {os.path.relpath(where, watched)}\n")

    sys.addaudithook(hook)
    sys.argv = [script, *arguments]
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
