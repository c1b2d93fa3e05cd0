"""A refusal's reason code, in plain words, with what to do about it."""

from __future__ import annotations

from dataclasses import dataclass

from flask_babel import LazyString
from flask_babel import lazy_gettext as _l


@dataclass(frozen=True)
class Reason:
    title: LazyString
    advice: LazyString


REASONS: dict[str, Reason] = {
    "bad-credentials": Reason(
        _l("The login or the password is wrong."),
        _l("Check them and try again. Your employer can reset your password.")),
    "account-disabled": Reason(
        _l("Your account is disabled."),
        _l("Ask the person who manages telework at your employer to enable it.")),
    "company-closed": Reason(
        _l("Your employer's account is closed."),
        _l("Ask your employer: it no longer has access to this network.")),
    "company-suspended": Reason(
        _l("Your employer's account is suspended."),
        _l("Ask your employer to contact the network: access resumes once it is settled.")),
    "payment-overdue": Reason(
        _l("Your employer's payment is overdue."),
        _l("Ask your employer to settle the invoice; access resumes at once after.")),
    "site-not-allowed": Reason(
        _l("Your employer does not allow you to work at this site."),
        _l("Choose another site of the network, or ask your employer to allow this one.")),
    "service-not-allowed": Reason(
        _l("Your employer's plan does not include this service here."),
        _l("Ask your employer to add it to the plan.")),
    "site-closed": Reason(
        _l("This site is closed at this hour."),
        _l("Come back during its opening hours, shown at the reception.")),
    "no-credit": Reason(
        _l("You have no telework credit left."),
        _l("Ask your employer to top up your credit.")),
    "unknown-client": Reason(
        _l("Your device is not known on this network yet."),
        _l("Turn Wi-Fi off and on again, then reload this page.")),
    "centre-unreachable": Reason(
        _l("The network's centre does not answer right now."),
        _l("Try again in a minute. If it lasts, tell the site's reception.")),
    "no-session": Reason(
        _l("You are not checked in."),
        _l("Check in to use the Internet.")),
    "box-unavailable": Reason(
        _l("The site's Wi-Fi service is starting or unavailable."),
        _l("Try again in a minute. If it lasts, tell the site's reception.")),
}

UNKNOWN = Reason(_l("Access was refused."), _l("Tell the site's reception what happened."))


def reason(code: str) -> Reason:
    return REASONS.get(code, UNKNOWN)
