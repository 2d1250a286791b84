"""Surveys: versioned definitions, validated responses from every channel, one-click tokens."""
