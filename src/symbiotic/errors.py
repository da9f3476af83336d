"""The one exception type a user sees.

Every problem a user can fix (bad params, missing or corrupt data, a wrong
device, a checkpoint of the wrong shape) is raised as a ``UserError`` whose
message is one line: what is wrong, then how to fix it. Stage entry points turn
it into ``error: <message>`` on stderr and exit status 2, so nothing else (a
traceback, a half-written output) reaches the user.
"""


class UserError(Exception):
    """A problem the user can fix; the message names it and the fix."""

    def __init__(self, problem: str, fix: str):
        self.problem = problem
        self.fix = fix
        super().__init__(f"{problem} — {fix}")
