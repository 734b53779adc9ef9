"""Typed errors. The CLI turns every DnncompError into one line on stderr and exit code 2."""


class DnncompError(Exception):
    """Base class: the message says what was wrong and what to do about it."""


class DataError(DnncompError):
    """A dataset is missing, corrupt, or not in the expected format."""


class UnsafePickleError(DataError):
    """A pickle tried to load something a dataset pickle never holds."""


class ModelError(DnncompError):
    """A model file is missing, unreadable, or does not fit the dataset."""


class RecipeError(DnncompError):
    """A compression recipe is unknown or got bad parameters."""


class RunError(DnncompError):
    """A run directory is inconsistent or a stage failed."""


class MissingDependencyError(DnncompError):
    """An optional dependency (TensorFlow, matplotlib) is needed but not installed."""


class StorageError(DnncompError):
    """A file could not be written: disk full, read-only file system, no permission, a directory in the way."""


class RunLockedError(RunError):
    """Another dnncomp process holds the run directory's lock."""


class ResultsError(RunError):
    """A results.json is missing, unreadable, or not of the results schema (docs/results.schema.json)."""


def first_line(exc: BaseException, *, limit: int = 300, with_type: bool = False) -> str:
    """The first line of an exception's message (its type's name when it has none), at most ``limit`` characters.

    For one-line errors that quote a library's multi-line exception. ``with_type`` prefixes
    ``TypeName: ``.
    """
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    if with_type and text:
        line = f"{type(exc).__name__}: {line}"
    return line[:limit]
