"""The ``showo`` command: ``showo.cli.main.main`` (``python -m showo`` too)."""
