"""The project's exception: every message names the bad input and how to fix it."""


class MaceError(Exception):
    """A user-facing error. The CLI prints it on one line, without a traceback."""

    def __init__(self, what: str, fix: str | None = None):
        self.what = what
        self.fix = fix
        super().__init__(what if not fix else f"{what} — fix: {fix}")
