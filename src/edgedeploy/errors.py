"""The two kinds of failure: the user's (one line, non-zero exit) and ours (a traceback)."""


class UserError(Exception):
    """A mistake the user can fix: bad input, a missing package, an unknown name.

    The message says what was given, what was expected and what to do; the CLI prints it
    on one line and exits with :attr:`exit_code`.
    """

    exit_code = 2


class EngineMissing(UserError):
    """An engine's Python package is not installed."""


class ConversionError(UserError):
    """A converter (paddle2onnx, torch.onnx) could not convert the model."""


def did_you_mean(given: str, choices) -> str:
    """' (did you mean X?)' for the closest choice, or '' when none is close."""
    import difflib

    close = difflib.get_close_matches(given, list(choices), n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else ""
