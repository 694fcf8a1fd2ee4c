"""This suite is part of the emulator contract: it runs on every local backend."""

from tests.fixtures.aws import on_every_backend as pytest_generate_tests

__all__ = ["pytest_generate_tests"]
