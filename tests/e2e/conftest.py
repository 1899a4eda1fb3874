"""Fixtures of the end-to-end tests."""

from tests.browser import browser  # noqa: F401 (a fixture: Debian's Chromium, headless)
