"""The ``llmrouter`` command line."""
