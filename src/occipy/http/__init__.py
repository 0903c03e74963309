"""The Starlette adapter around the service."""
