"""Text typed into the console's forms as the server keeps it: browsers send CR LF line endings."""

from __future__ import annotations


def unix_newlines(text: str) -> str:
    """`text` with every CR LF or lone CR as LF, so stored text and its validation see one kind."""
    return text.replace("\r\n", "\n").replace("\r", "\n")
