"""The errors the user can fix: the CLI prints their message on one line; anything else is a bug (a traceback).

No heavy imports here: the CLI, the config loader and the data readers all raise these.
"""


class UserError(Exception):
    """Something the user gave (a config, a flag, a file, a folder) that nanofm cannot use; the message
    says which, and what to do."""


class DataError(UserError, ValueError):
    """A user's data file or folder that cannot be read (bad encoding, a malformed line, a missing part);
    the message names the file (and line). A ValueError too, for callers that catch that."""
