"""Errors that are the user's fault: shown as one line, never a traceback."""


class UserError(Exception):
    """Bad input from a person (command line, configuration): say what and exit."""
