"""The synthetic host application used by ``acp demo`` and by the test suite."""
