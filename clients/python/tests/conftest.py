"""The tests run against a real logbookd: LOGBOOK_ADDRESS (and, to restart
it, LOGBOOK_RESTART: a command that restarts it on the same address), set
by tests/e2e/python_client_e2etest.sh."""

import os
import uuid

import pytest

import logbook


@pytest.fixture
def address() -> str:
    address = os.environ.get("LOGBOOK_ADDRESS")
    if not address:
        pytest.fail("LOGBOOK_ADDRESS is not set: run tests/e2e/python_client_e2etest.sh")
    return address


@pytest.fixture
def client(address):
    with logbook.Client(address, timeout=10) as c:
        yield c


@pytest.fixture
def stream() -> str:
    """A stream of its own for each test."""
    return f"pytest-{uuid.uuid4().hex[:12]}"
