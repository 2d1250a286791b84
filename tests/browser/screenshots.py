"""Where the browser tests' screenshots go, and taking one.

Every screenshot goes to `test-artifacts/screenshots/` (untracked: look at them after a run).
The ones the docs show are copied into `docs/screenshots/` only when asked,
`NORTHSTAR_UPDATE_SCREENSHOTS=1 python -m pytest tests/browser`: a plain test run leaves the
tracked pictures alone (fonts and anti-aliasing move a few pixels from run to run, which dirtied
the working tree on every run and slipped re-rendered pictures into unrelated commits).

`capture` retries Chromium's transient "Unable to capture screenshot" (a compositor hiccup under
load: the page is fine and the next attempt succeeds)."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

from playwright.sync_api import Error, Page

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "screenshots"
DOCS = ROOT / "docs" / "screenshots"
UPDATE_ENV = "NORTHSTAR_UPDATE_SCREENSHOTS"
TRANSIENT = "Unable to capture screenshot"


def artifact_path(name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS / f"{name}.png"


def capture(page: Page, path: Path, **options: Any) -> None:
    for attempt in range(3):
        try:
            page.screenshot(path=str(path), **options)
            return
        except Error as exc:
            if TRANSIENT not in str(exc) or attempt == 2:
                raise
            time.sleep(0.5)


def publish(path: Path, name: str) -> bool:
    """Copy a screenshot the docs show into docs/screenshots/, when NORTHSTAR_UPDATE_SCREENSHOTS=1."""
    if os.environ.get(UPDATE_ENV) != "1":
        return False
    DOCS.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, DOCS / f"{name}.png")
    return True
