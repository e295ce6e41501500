"""The two kinds of error a user is told about in one line (the CLI's exit codes 2 and 1); any
other exception is a bug, shown with its traceback under `--debug`."""


class UsageError(ValueError):
    """Bad input: a setting, an argument, a file, a declaration, or a request the store's state
    does not allow. The CLI exits 2."""


class Failure(RuntimeError):
    """Something the input did not cause went wrong: the database cannot be reached, the
    provider failed, a run failed. The CLI exits 1."""
