"""mkdocs hooks: fill the reference pages from the code when the site is built.

A page's ``<!-- generated: NAME -->`` line is replaced by ``docs.generators.render(NAME)``,
so the CLI, REST, policy, settings and database references cannot fall behind the code.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Any

# litellm fetches its cost map over the network when imported; the docs build is offline.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "src"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from docs.generators import render  # noqa: E402
from docs.generators.rest import openapi  # noqa: E402

MARKER = re.compile(r"^<!-- generated: ([a-z-]+) -->$", re.MULTILINE)


def on_page_markdown(markdown: str, **_: Any) -> str:
    return MARKER.sub(lambda match: render(match.group(1)), markdown)


def on_files(files: Any, config: Any, **_: Any) -> Any:
    """Publish the gateway's OpenAPI document beside the REST reference."""
    from mkdocs.structure.files import File

    document = json.dumps(openapi(), indent=2) + "\n"
    files.append(File.generated(config, "reference/openapi.json", content=document))
    return files
