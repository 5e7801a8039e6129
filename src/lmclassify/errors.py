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
