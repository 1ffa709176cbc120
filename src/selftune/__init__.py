"""selftune: turn what a person has written into a private language model that writes like them."""

__version__ = "0.1.0"
