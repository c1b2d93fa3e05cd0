"""The portal's forms; Flask-WTF adds the CSRF token to each."""

from __future__ import annotations

from typing import Any

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, HiddenField, PasswordField, StringField
from wtforms.validators import DataRequired, Length, ValidationError

# The control socket's limits (RFC 2865: User-Password up to 128 octets).
MAX_LOGIN = 253
MAX_PASSWORD = 128
MAX_TOKEN = 8192


def _printable(form: Any, field: Any) -> None:
    if any(ord(c) < 32 or ord(c) == 127 for c in field.data or ""):
        raise ValidationError(_l("This field holds characters that cannot be typed."))


def _octets(limit: int, message: Any) -> Any:
    # RADIUS counts octets, not characters: "é" is two.
    def check(form: Any, field: Any) -> None:
        if len((field.data or "").encode()) > limit:
            raise ValidationError(message)
    return check


class CheckInForm(FlaskForm):
    login = StringField(_l("Login (your e-mail address)"), validators=[
        DataRequired(_l("Enter your login.")),
        _octets(MAX_LOGIN, _l("The login is too long.")), _printable],
        filters=[lambda v: v.strip() if isinstance(v, str) else v])
    password = PasswordField(_l("Password"), validators=[
        DataRequired(_l("Enter your password.")),
        _octets(MAX_PASSWORD, _l("The password is too long.")), _printable])
    accept = BooleanField(_l("I accept the terms of use."), validators=[
        DataRequired(_l("Accept the terms of use to check in."))])
    to = HiddenField(validators=[Length(max=MAX_TOKEN)])


class CheckOutForm(FlaskForm):
    """Only the CSRF token: checking out needs nothing else."""


class TapForm(FlaskForm):
    """The one-tap check-in: the CSRF token and the way on; the station's
    key says who it is (gateway/joins.py)."""

    to = HiddenField(validators=[Length(max=MAX_TOKEN)])
