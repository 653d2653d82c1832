"""meetplatform: a self-hostable meeting platform on Twisted."""

__version__ = "0.1.0"
