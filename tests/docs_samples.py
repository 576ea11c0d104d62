"""Find and run the samples of the README and the docs pages.

The convention (docs/development/testing.md):

- every ```python block runs, top to bottom, one namespace per page, in a temporary
  directory (holding a link to ``examples/``), on SQLite, offline;
- a ```console or ```bash line ``$ acp ...`` runs as the ``acp`` command, after the page's
  Python blocks above it, in the same directory, and must exit 0; output shown under it must
  be what it prints (spacing aside);
- a block right after ``<!-- no-run: reason -->`` is skipped (the reason is required);
- a ```yaml block is a policy that must validate, unless it is an excerpt of a real file
  (``<!-- excerpt: path -->``: each line is in that file); ``--8<-- "path"`` includes a file.

``python -m tests.docs_samples PAGE`` runs one page's samples in the current directory.
"""

from __future__ import annotations

import re
import shlex
import sys
import traceback
import types
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>```+)(?P<info>[^`\n]*)$")
NO_RUN = re.compile(r"^<!--\s*no-run:\s*(?P<reason>.*?)\s*-->$")
EXCERPT = re.compile(r"^<!--\s*excerpt:\s*(?P<path>\S+)\s*-->$")
SNIPPET = re.compile(r'^--8<--\s+"(?P<path>[^"]+)"\s*$')


@dataclass(frozen=True)
class Block:
    """One fenced block of a page."""

    page: Path
    language: str
    code: str
    line: int  # the line of the block's first code line (1-based)
    no_run: str | None  # the reason given, if the block is marked no-run
    excerpt_of: str | None

    @property
    def where(self) -> str:
        page = self.page.relative_to(ROOT) if self.page.is_relative_to(ROOT) else self.page
        return f"{page}:{self.line}"

    def text(self) -> str:
        """The block's text, with any ``--8<--`` include replaced by the file it names."""
        lines = []
        for line in self.code.splitlines():
            match = SNIPPET.match(line.strip())
            lines.append((ROOT / match["path"]).read_text() if match else line + "\n")
        return "".join(lines)

    def commands(self) -> list[str]:
        """The ``$ acp ...`` commands of a console or bash block (continuations joined)."""
        return [command for command, _shown in self.sessions()]

    def sessions(self) -> list[tuple[str, str]]:
        """Each ``$ acp ...`` command with the output the page shows under it."""
        found: list[tuple[str, list[str]]] = []
        pending = ""
        current: list[str] | None = None
        for raw in self.code.splitlines():
            line = raw.strip()
            if pending:
                pending += " " + line.rstrip("\\").strip()
                if not line.endswith("\\"):
                    current = []
                    found.append((pending, current))
                    pending = ""
                continue
            if line.startswith("$ "):
                current = None
                if line.startswith("$ acp "):
                    command = line[2:].rstrip("\\").strip()
                    if line.endswith("\\"):
                        pending = command
                    else:
                        current = []
                        found.append((command, current))
            elif current is not None and line:
                current.append(line)
        return [(command, "\n".join(shown)) for command, shown in found]


def pages() -> list[Path]:
    """The README and every docs page."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def blocks(page: Path) -> list[Block]:
    lines = page.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        indent, fence = opening["indent"], opening["fence"]
        language = opening["info"].strip().split(" ")[0] if opening["info"].strip() else ""
        before = _previous_text(lines, index)
        body: list[str] = []
        index += 1
        while index < len(lines) and lines[index].strip() != fence:
            line = lines[index]
            body.append(line[len(indent) :] if line.startswith(indent) else line.lstrip())
            index += 1
        start = index - len(body) + 1
        no_run = NO_RUN.match(before)
        excerpt = EXCERPT.match(before)
        found.append(
            Block(
                page=page,
                language=language,
                code="\n".join(body) + "\n",
                line=start,
                no_run=no_run["reason"] if no_run else None,
                excerpt_of=excerpt["path"] if excerpt else None,
            )
        )
        index += 1
    return found


def _previous_text(lines: list[str], index: int) -> str:
    for line in reversed(lines[:index]):
        if line.strip():
            return line.strip()
    return ""


def runnable(block: Block) -> bool:
    if block.no_run is not None:
        return False
    if block.language == "python":
        return True
    return block.language in ("console", "bash", "shell") and bool(block.commands())


def run_page(page: Path) -> None:
    """Run a page's Python blocks and ``acp`` commands in order, in the current directory."""
    # The page is the program: its namespace is a real __main__ module, so that what looks
    # a class up by its module (SQLAlchemy's annotations, pickle) finds the page's names.
    page_module = types.ModuleType("__main__")
    page_module.__file__ = str(page)
    previous = sys.modules["__main__"]
    sys.modules["__main__"] = page_module
    try:
        for block in blocks(page):
            if not runnable(block):
                continue
            if block.language == "python":
                # Padding puts a traceback's line numbers on the page's own lines.
                source = "\n" * (block.line - 1) + block.code
                exec(compile(source, str(page), "exec"), page_module.__dict__)
            else:
                for command, shown in block.sessions():
                    _run_acp(command, shown, block)
    finally:
        sys.modules["__main__"] = previous


def _words(text: str) -> str:
    return " ".join(text.split())


def _run_acp(command: str, shown: str, block: Block) -> None:
    from typer.testing import CliRunner

    from agent_control_plane.cli import app

    arguments = shlex.split(command, comments=True)[1:]
    result = CliRunner().invoke(app, arguments)
    if result.exit_code != 0:
        raise AssertionError(
            f"{block.where}: `{command}` exited {result.exit_code}:\n{result.output}"
            + ("".join(traceback.format_exception(result.exception)) if result.exception else "")
        )
    # Output the page shows under a command must be what the command prints (spacing aside:
    # the terminal's width wraps lines).
    if shown and _words(shown) not in _words(result.output):
        raise AssertionError(
            f"{block.where}: `{command}` printed\n{result.output}\n"
            f"not what the page shows:\n{shown}"
        )


if __name__ == "__main__":
    run_page(Path(sys.argv[1]).resolve())
