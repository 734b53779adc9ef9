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
