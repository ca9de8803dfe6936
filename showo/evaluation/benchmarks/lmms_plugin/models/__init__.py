"""The models of the plugin: lmms-eval reads ``AVAILABLE_MODELS`` and imports ``models.<name>.<class>``."""

AVAILABLE_MODELS = {"showo": "ShowoLmms"}
