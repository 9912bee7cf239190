"""Errors shared by every command-line entry point.

It lives in `system/` because the system under test has commands of its own
(`serve`, `client`, `seed-db`) and must not depend on the harness; the harness's
dispatcher (`commands.cli`) catches it for every subcommand.
"""


class UsageError(Exception):
    """An error the user can fix (bad file, field or flag): printed without a traceback, exit 2."""
