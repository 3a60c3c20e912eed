"""The one compiled part: axon_audit._native.leafhash, the Merkle log's hot loops
(axon_audit/_native/leafhash.c). Everything else is in pyproject.toml.

It links OpenSSL's libcrypto (the SHA-256 Python's hashlib uses). The build is
optional: without a C compiler or OpenSSL's headers the package installs without
it and hashes through polars instead (axon_audit/integrity/native.py says which
path runs); `make test` installs the headers and requires the compiled path.
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
        )
    ]
)
