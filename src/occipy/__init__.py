"""occipy: an OCCI 1.2 server, Python SDK and CLI."""

__version__ = "0.1.0"
