"""What staff_create and staff_totp_reset print, once."""

from __future__ import annotations

import io

import qrcode
from django.core.management.base import OutputWrapper

from apps.accounts.staff import Enrolment


def enrolment_print(out: OutputWrapper, enrolment: Enrolment, *, qr: bool = True) -> None:
    """The login, the authenticator (otpauth URI and its QR code) and the backup codes."""
    lines = [f"user: {enrolment.username}"]
    if enrolment.password:
        lines.append(f"password: {enrolment.password}")
    lines += [
        "authenticator (scan the QR code, or add this URI to the app):",
        f"  {enrolment.otpauth_uri}",
    ]
    out.write("\n".join(lines))
    if qr:
        code = qrcode.QRCode(border=2)
        code.add_data(enrolment.otpauth_uri)
        text = io.StringIO()
        code.print_ascii(out=text, invert=True)
        out.write(text.getvalue())
    out.write(
        "backup codes (each works once, in place of the authenticator's code):\n  "
        + "  ".join(enrolment.backup_codes)
        + "\nShown once and not stored in clear: keep them somewhere safe now."
    )
