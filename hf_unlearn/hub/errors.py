"""The errors of publishing a folder (shared by ``folder.py`` and ``adapter.py``)."""


class RunDirError(ValueError):
    """The run directory cannot be published as it is (no report, no weights, ...)."""


class LeakError(RuntimeError):
    """A forgotten id was found in a file of the upload folder: nothing is uploaded."""
