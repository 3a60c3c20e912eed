"""The compiled parts: axon_audit._native.leafhash, the Merkle log's hot loops
(axon_audit/_native/leafhash.c), and axon_audit._native.ingest, log_batch's hot loops
(generated event ids, metadata texts: axon_audit/_native/ingest.c). Everything else is in pyproject.toml.

It links OpenSSL's libcrypto (the SHA-256 Python's hashlib uses). Both builds are
optional: without a C compiler or OpenSSL's headers the package installs without
them and hashes (makes ids) through polars instead (axon_audit/integrity/native.py,
axon_audit/model/batch_ids.py say which path runs); `make test` installs the headers
and requires the compiled paths.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "axon_audit._native.leafhash",
            sources=["axon_audit/_native/leafhash.c"],
            libraries=["crypto"],
            extra_compile_args=["-O3", "-std=c11", "-Wall", "-Wextra", "-Wno-unused-parameter"],
            extra_link_args=["-pthread"],
            optional=True,
        ),
        Extension(
            "axon_audit._native.ingest",
            sources=["axon_audit/_native/ingest.c"],
            extra_compile_args=["-O3", "-std=c11", "-Wall", "-Wextra", "-Wno-unused-parameter"],
            optional=True,
        ),
    ]
)
