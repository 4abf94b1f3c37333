"""One e-mail to one SMTP server: plain, STARTTLS or implicit TLS, optional login.

A failure says whether trying again can help (Alertmanager's notifiers do the same):
a network error, a 4xx reply or a rejected login (a setting someone will fix) is
retried; a 5xx refusal of the message or the address is permanent.
"""

from __future__ import annotations

import smtplib
import ssl
from email.utils import parseaddr

from alerts.config import SmtpSection


class DeliveryError(Exception):
    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class Mailer:
    def __init__(self, smtp: SmtpSection) -> None:
        self.smtp = smtp
        self.envelope_from = parseaddr(smtp.sender)[1]

    def _tls_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.smtp.ca_file or None)

    def send(self, to: str, message: bytes) -> None:
        smtp = self.smtp
        try:
            if smtp.security == "tls":
                client: smtplib.SMTP = smtplib.SMTP_SSL(smtp.host, smtp.port,
                                                        timeout=smtp.timeout_s,
                                                        context=self._tls_context())
            else:
                client = smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout_s)
            with client:
                if smtp.security == "starttls":
                    client.starttls(context=self._tls_context())
                if smtp.username:
                    client.login(smtp.username, smtp.password)
                client.sendmail(self.envelope_from, [to], message)
        except smtplib.SMTPRecipientsRefused as exc:
            code, reply = next(iter(exc.recipients.values()))
            raise DeliveryError(f"{to} refused: {code} {_text(reply)}",
                                retryable=400 <= code < 500) from None
        except smtplib.SMTPAuthenticationError as exc:
            raise DeliveryError(f"login as {smtp.username!r} refused: {exc.smtp_code} "
                                f"{_text(exc.smtp_error)}", retryable=True) from None
        except smtplib.SMTPResponseException as exc:
            raise DeliveryError(f"server said {exc.smtp_code} {_text(exc.smtp_error)}",
                                retryable=not 500 <= exc.smtp_code < 600) from None
        except (OSError, smtplib.SMTPException) as exc:  # refused, timed out, TLS, dropped
            raise DeliveryError(f"cannot reach {smtp.host}:{smtp.port}: {exc}",
                                retryable=True) from None


def _text(reply: bytes | str) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
    return " ".join(text.split())[:200]
