"""The one exception type for bad user input; the CLI prints its message as a single `error:` line."""


class DiffdiffError(ValueError):
    """A problem with what the user gave us (file, map, option); the message says what and how to fix it."""
