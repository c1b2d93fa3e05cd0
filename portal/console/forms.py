"""The console's forms; Flask-WTF adds the CSRF token to each."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import BooleanField, HiddenField, PasswordField, SelectField, StringField
from wtforms.validators import DataRequired, Length, ValidationError

from passerelle.errors import UserError
from passerelle.radius.admin import LANGUAGES, MAX_OPERATOR_PASSWORD

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


# -- the data pages (manage_*.py) ---------------------------------------------------

def _strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def check(form: FlaskForm, rules: dict[str, Callable[[str], object]]) -> bool:
    """Run radius/admin.py's rule for each field and put its message next to
    the field: every mistake of the form shows at once, in admin.py's words."""
    ok = True
    for name, rule in rules.items():
        field = form[name]
        if field.errors:
            ok = False
            continue  # one message a field: the form's own check said it
        try:
            rule(field.data or "")
        except UserError as exc:
            field.errors = [*field.errors, str(exc)]
            ok = False
    return ok


def accepted(form: FlaskForm, rules: dict[str, Callable[[str], object]]) -> bool:
    """A submitted form that passes its own checks and admin.py's rules."""
    valid = form.validate()
    return check(form, rules) and valid


def _text(label: str, limit: int, **kwargs: Any) -> StringField:
    return StringField(label, validators=[Length(max=limit), _printable], filters=[_strip],
                       **kwargs)


class CompanyForm(FlaskForm):
    name = _text("Name", 128)
    status = SelectField("Status", choices=["active", "suspended", "closed"],
                         validate_choice=False)
    payment = SelectField("Payment standing", choices=["ok", "overdue"],
                          validate_choice=False)
    categories = _text("Site categories", 16, description="the star ratings allowed, e.g. 123")
    services = _text("Services", 128, description="comma-separated, e.g. wifi")
    bandwidth_up = _text("Upload cap (bit/s)", 32, description="2M, 500k; empty: no cap")
    bandwidth_down = _text("Download cap (bit/s)", 32, description="10M; empty: no cap")
    max_session = _text("Longest session", 32, description="seconds, or 90m, 8h; empty: none")
    vlan = _text("VLAN", 8, description="1 to 4094; empty: none")


class StatusForm(FlaskForm):
    """Suspend, close or reactivate a company with one button."""

    status = HiddenField(validators=[Length(max=16)])


class PersonForm(FlaskForm):
    login = _text("Login (e-mail address)", 300)
    name = _text("Full name", 128)
    company = SelectField("Company", choices=[], validate_choice=False)
    language = SelectField("Language", choices=list(LANGUAGES),
                           validate_choice=False)
    password = PasswordField("Password", validators=[Length(max=MAX_OPERATOR_PASSWORD)],
                             description="empty: a generated one, shown once")


class ActiveForm(FlaskForm):
    active = HiddenField(validators=[Length(max=1)])


class PasswordForm(FlaskForm):
    password = PasswordField("New password", validators=[Length(max=MAX_OPERATOR_PASSWORD)],
                             description="empty: a generated one, shown once")


class CreditForm(FlaskForm):
    minutes = _text("Minutes", 24)
    note = _text("Note", 256, description="why: an invoice number...")


class ImportForm(FlaskForm):
    file = FileField("CSV file", validators=[FileRequired("Choose a CSV file.")])


class SiteForm(FlaskForm):
    name = _text("Name", 128)
    network = SelectField("Network", choices=[], validate_choice=False)
    category = _text("Category (stars)", 8, description="1, 2 or 3")
    capacity = _text("Capacity (seats)", 24)
    city = _text("City", 128)
    opens = _text("Opens", 8, description="HH:MM local time; empty with Closes: always open")
    closes = _text("Closes", 8, description="HH:MM; 24:00 is midnight")
    days = _text("Opening days", 16, description="12345 (Monday-Friday), mon-sat, all")
    staffed = BooleanField("Staffed")
    timezone = _text("Time zone", 64, description="e.g. Europe/Brussels")


class GatewayForm(FlaskForm):
    identifier = _text("Identifier (NAS-Identifier)", 64)
    site = SelectField("Site", choices=[], validate_choice=False)
    ip = _text("Source address", 64)
    secret = PasswordField("Shared secret", validators=[Length(max=256)],
                           description="16 to 128 printable characters")
    coa_port = _text("CoA port (RFC 5176)", 8)
    require_ma = BooleanField("Require Message-Authenticator")
