"""The one exception type for problems a user can cause and fix.

The CLI turns it into a single line on stderr and a non-zero exit; anything else
is a programming error and stays loud (traceback).
"""


class LmClassifyError(Exception):
    """Bad input, a missing file or model, an unusable option: the message says what to do."""

    exit_code = 2


class Interrupted(LmClassifyError):
    """The user stopped a run (Ctrl-C); what was done is kept and the message says how to go on."""

    exit_code = 130


def first_line(e: BaseException) -> str:
    """An exception's message on one line: its first line (with the next, where the first
    only introduces it, as in "Validation error for field 'x':")."""
    lines = [ln.strip() for ln in str(e).strip().splitlines() if ln.strip()]
    if not lines:
        return type(e).__name__
    return f"{lines[0]} {lines[1]}" if lines[0].endswith(":") and len(lines) > 1 else lines[0]
