"""Schemathesis against the running gateway: generated requests, valid and not, never get
a 5xx, and every answer is one the OpenAPI document declares, in the declared shape."""

from __future__ import annotations

import ipaddress
import itertools
from urllib.parse import urlsplit, urlunsplit

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import seed as fixed_seed

from tests.conftest import CANARY_HOST
from tests.support.stack import Stack

pytestmark = pytest.mark.integration


# Every check about the server's honesty. Not positive_data_acceptance: any string is a
# schema-valid "url", and refusing most of them with a 422 code is the documented contract.
CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_schema_conformance,
    schemathesis.checks.response_headers_conformance,
    schemathesis.checks.negative_data_rejection,
    schemathesis.checks.missing_required_header,
]


@pytest.fixture(scope="session")
def api_schema(gateway: Stack) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{gateway.base_url}/api/v1/schema/openapi.json")


@pytest.fixture(scope="session")
def auth_headers(gateway: Stack) -> dict[str, str]:
    return {"Authorization": f"Bearer {gateway.create_key('schemathesis')}"}


def loopback_only(url: object) -> object:
    """A generated link whose host would need DNS points at the canary's address instead:
    the guard judges it like any other link, and no lookup leaves the machine."""
    if not isinstance(url, str):
        return url
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return url
    if not host:
        return url
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return urlunsplit(parts._replace(netloc=CANARY_HOST))
    return url


def test_api_conforms_to_its_openapi_document(
    api_schema: schemathesis.BaseSchema, auth_headers: dict[str, str], canary: object
) -> None:
    """Each operation, with valid and invalid data, 25 examples each, a fixed seed.

    A plain loop: schemathesis' pytest plugin does not load under this pytest.
    """
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 8
    for operation, mode in itertools.product(operations, schemathesis.GenerationMode):
        takes_input = any(operation.iter_parameters()) or bool(operation.body)
        if mode is schemathesis.GenerationMode.NEGATIVE and not takes_input:
            continue  # nothing to get wrong (the owner's event stream takes no input)

        @given(case=operation.as_strategy(generation_mode=mode))
        @fixed_seed(20261202)
        @settings(
            max_examples=25,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def call(case: schemathesis.Case) -> None:
            if isinstance(case.body, dict) and "url" in case.body:
                case.body["url"] = loopback_only(case.body["url"])
            case.call_and_validate(headers=auth_headers, timeout=10, checks=CHECKS)

        call()
