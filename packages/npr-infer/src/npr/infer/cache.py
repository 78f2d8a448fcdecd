"""Opt-in persistent compilation cache: compiled samplers survive the Python process."""

import os

import jax


def enable_compilation_cache(path):
    """Store XLA compilations under `path` and reuse them in later processes.

    A fresh process that runs the same model with the same shapes then loads its compiled warmup and
    sampling loops from disk instead of compiling them again. npr never sets this on import.

    Args:
      path: a directory (created if missing).
    Example:
      >>> import tempfile
      >>> enable_compilation_cache(tempfile.mkdtemp())  # doctest: +SKIP
    """
    path = os.fspath(path)
    os.makedirs(path, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
