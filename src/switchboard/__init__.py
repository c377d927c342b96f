"""Switchboard: customer-service live chat for web shops."""

__all__ = ["__version__"]

__version__ = "0.1.0"
