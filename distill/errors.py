"""One error family. The CLI turns these into a one-line message and an exit code, never a traceback.

Messages name the bad value and say how to fix it.
"""


class DistillError(Exception):
    """A failure we expected and can explain. Exit code 1: something went wrong at run time."""

    exit_code = 1


class BadInput(DistillError):
    """The user's input or settings are wrong (missing file, unknown column, bad label set). Exit code 2."""

    exit_code = 2


class TeacherUnavailable(BadInput):
    """The teacher cannot be reached or used as configured (no API key, server down). Exit code 2."""


class ParityError(DistillError):
    """An exported model does not match its source closely enough. Exit code 1."""
