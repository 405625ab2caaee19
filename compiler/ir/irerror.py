"""The error of a refused IR edit (a programming error in a pass, not bad user input)."""


class IRError(ValueError):
    """A refused edit of the IR (the message says what to do instead)."""
