"""commune-watch: hardware and link monitoring for local government offices."""

__version__ = "0.1.0"
