"""The one user-facing error type; the CLI turns it into a message, the server into an HTTP error."""


class SelftuneError(Exception):
    """An error the user can act on. The message says what went wrong, where, and what to do."""


class ConfigError(SelftuneError):
    """twin.yaml or a command-line option is invalid. Lists every problem at once."""
