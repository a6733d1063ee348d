"""The observability option's part in the tests: nothing it needs is required to start.

conftest.py loads this module as a pytest plugin. Traces, metrics and error reports each stay
local while their variables are unset, so the service's other tests run as they are; the
tests of the three signals, in tests/observability/, set them against receivers of their own.
"""

from __future__ import annotations

from ..option_tests import OptionTests, add_option_tests

add_option_tests(OptionTests(environment={}, with_password=lambda _password: {}))
