"""Fixtures shared by the ops tests."""

from tests.ops.test_mailer import smtp  # noqa: F401 - the SMTP server (aiosmtpd) of the outbox tests
