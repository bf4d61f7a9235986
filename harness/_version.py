"""The harness's version, in a module of its own: the package's ``__init__`` imports the runner, so a module the
runner imports takes the version from here, not from the package (which would be an import cycle)."""
__version__ = "0.1.0"
