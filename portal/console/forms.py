"""The console's forms; Flask-WTF adds the CSRF token to each."""

from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from wtforms import HiddenField, PasswordField, StringField
from wtforms.validators import DataRequired, Length, ValidationError

from passerelle.radius.admin import MAX_OPERATOR_PASSWORD

from .auth_ops import MAX_LOGIN


def _printable(form: Any, field: Any) -> None:
    if any(ord(c) < 32 or ord(c) == 127 for c in field.data or ""):
        raise ValidationError("This field holds characters that cannot be typed.")


class SignInForm(FlaskForm):
    login = StringField("Login", validators=[
        DataRequired("Enter your login."), Length(max=MAX_LOGIN), _printable],
        filters=[lambda v: v.strip() if isinstance(v, str) else v])
    password = PasswordField("Password", validators=[
        DataRequired("Enter your password."), Length(max=MAX_OPERATOR_PASSWORD)])


class PostForm(FlaskForm):
    """Only the CSRF token: sign-out, Disconnect."""


class DisconnectForm(FlaskForm):
    # The live view's filters, to come back to the same view.
    back = HiddenField(validators=[Length(max=400)])
