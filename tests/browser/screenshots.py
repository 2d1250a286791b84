"""Taking a screenshot, with one retry for Chromium's transient "Unable to capture screenshot"
(a compositor hiccup under load: the page is fine and the next attempt succeeds)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from playwright.sync_api import Error, Page

TRANSIENT = "Unable to capture screenshot"


def capture(page: Page, path: Path, **options: Any) -> None:
    for attempt in range(3):
        try:
            page.screenshot(path=str(path), **options)
            return
        except Error as exc:
            if TRANSIENT not in str(exc) or attempt == 2:
                raise
            time.sleep(0.5)
