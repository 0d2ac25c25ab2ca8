"""Makes the repository root importable for the tests (pytest puts this file's folder on sys.path)."""
