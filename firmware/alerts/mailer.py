"""SMTP submission with STARTTLS (smtplib), every operation bounded by ``[email] timeout``.

A server that does not offer STARTTLS when ``starttls`` is on is an error: the mail is never sent in
plain text instead. The certificate and host name are verified (``ca_file`` or the system's CAs).
"""
from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from typing import Any

from hal.errors import MeterError


class MailError(MeterError):
    """A mail could not be handed to the SMTP server (it is retried)."""


def tls_context(ca_file: str) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=ca_file or None)


def send(e: Any, msg: EmailMessage) -> None:
    """Hand ``msg`` to the server of ``[email]`` ``e``; MailError says why not."""
    if not e.recipients:
        raise MailError("no [email] recipients configured")
    try:
        with smtplib.SMTP(e.host, e.port, timeout=e.timeout) as smtp:
            smtp.ehlo()
            if e.starttls:
                if not smtp.has_extn("starttls"):
                    raise MailError(f"{e.host}:{e.port} does not offer STARTTLS; refusing to send in plain text")
                smtp.starttls(context=tls_context(e.ca_file))
                smtp.ehlo()
            if e.username:
                smtp.login(e.username, e.password)
            refused = smtp.send_message(msg, from_addr=e.sender, to_addrs=list(e.recipients))
            if refused:
                raise MailError(f"recipients refused: {refused}")
    except MailError:
        raise
    except (smtplib.SMTPException, OSError, ssl.SSLError) as exc:
        raise MailError(f"SMTP {e.host}:{e.port}: {type(exc).__name__}: {exc}") from None
