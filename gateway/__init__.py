"""tokuden gateway: SMTP compliance relay for Japanese marketing mail."""

__version__ = "0.1.0"
