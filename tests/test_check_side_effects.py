"""``check()`` builds the stack as ``guard()`` does, but leaves the process's logging alone."""

from __future__ import annotations

import logging

import pytest

from asgi_guard import check


@pytest.mark.parametrize("output", ["auto", "stdout", "logging"])
def test_check_leaves_logging_as_it_was(output: str, caplog: pytest.LogCaptureFixture) -> None:
    """An access log that would attach a stdout handler, set a level or warn at start-up does
    none of it when only checked: the process running ``check`` keeps its own logging."""
    logger = logging.getLogger("test.check.untouched")
    assert (logger.handlers, logger.level, logger.propagate) == ([], logging.NOTSET, True)
    check({"access_log": {"logger": logger.name, "output": output}}, environ={})
    assert (logger.handlers, logger.level, logger.propagate) == ([], logging.NOTSET, True)
    assert logging.getLogger("asgi_guard").disabled is False
    assert [r for r in caplog.records if r.name == "asgi_guard"] == []
