"""User-facing errors: the CLI prints these as one line, without a traceback."""


class NmfdnnError(Exception):
    """A mistake the user can fix (bad config value, missing or corrupt data, ...)."""


class DataFormatError(NmfdnnError):
    """A data file that is not what it claims to be (bad magic number, truncated, ...)."""


class NumericalError(NmfdnnError):
    """A step produced non-finite values; the message names the layer, the step and a remedy."""


class Interrupted(NmfdnnError):
    """The run stopped on a signal after saving a checkpoint."""
