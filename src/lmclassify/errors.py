"""The one exception type for problems a user can cause and fix.

The CLI turns it into a single line on stderr and a non-zero exit; anything else
is a programming error and stays loud (traceback).
"""


class LmClassifyError(Exception):
    """Bad input, a missing file or model, an unusable option: the message says what to do."""
