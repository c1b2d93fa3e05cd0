"""Each refusal in plain words, with what to do about it (translated)."""

from __future__ import annotations

from dataclasses import dataclass

from flask_babel import LazyString
from flask_babel import lazy_gettext as _l

from passerelle.refusal import Refusal


@dataclass(frozen=True)
class Reason:
    title: LazyString
    advice: LazyString


REASONS: dict[Refusal, Reason] = {
    Refusal.bad_credentials: Reason(
        _l("The login or the password is wrong."),
        _l("Check them and try again. Your employer can reset your password.")),
    Refusal.account_disabled: Reason(
        _l("Your account is disabled."),
        _l("Ask the person who manages telework at your employer to enable it.")),
    Refusal.company_closed: Reason(
        _l("Your employer's account is closed."),
        _l("Ask your employer: it no longer has access to this network.")),
    Refusal.company_suspended: Reason(
        _l("Your employer's account is suspended."),
        _l("Ask your employer to contact the network: access resumes once it is settled.")),
    Refusal.payment_overdue: Reason(
        _l("Your employer's payment is overdue."),
        _l("Ask your employer to settle the invoice; access resumes at once after.")),
    Refusal.site_not_allowed: Reason(
        _l("Your employer does not allow you to work at this site."),
        _l("Choose another site of the network, or ask your employer to allow this one.")),
    Refusal.service_not_allowed: Reason(
        _l("Your employer's plan does not include this service here."),
        _l("Ask your employer to add it to the plan.")),
    Refusal.site_closed: Reason(
        _l("This site is closed at this hour."),
        _l("Come back during its opening hours, shown at the reception.")),
    Refusal.no_credit: Reason(
        _l("You have no telework credit left."),
        _l("Ask your employer to top up your credit.")),
    Refusal.too_many_sessions: Reason(
        _l("Too many of your devices are connected at once."),
        _l("Check out on another device first, or ask your employer for a plan with "
           "more devices.")),
    Refusal.unknown_client: Reason(
        _l("Your device is not known on this network yet."),
        _l("Turn Wi-Fi off and on again, then reload this page.")),
    Refusal.centre_unreachable: Reason(
        _l("The network's centre does not answer right now."),
        _l("Try again in a minute. If it lasts, tell the site's reception.")),
    Refusal.no_session: Reason(
        _l("You are not checked in."),
        _l("Check in to use the Internet.")),
    Refusal.box_unavailable: Reason(
        _l("The site's Wi-Fi service is starting or unavailable."),
        _l("Try again in a minute. If it lasts, tell the site's reception.")),
    Refusal.bad_request: Reason(
        _l("The check-in could not be understood."),
        _l("Check the login and the password, then try again.")),
    Refusal.already_checked_in: Reason(
        _l("This device is checked in already."),
        _l("Reload this page to see your session.")),
    Refusal.address_taken: Reason(
        _l("Another device is using this device's address."),
        _l("Turn Wi-Fi off and on again to get an address of your own. If it lasts, "
           "tell the site's reception.")),
    Refusal.wrong_vlan: Reason(
        _l("This private network belongs to another company."),
        _l("Join the site's open Wi-Fi network to check in, or the private network with "
           "your own key.")),
    Refusal.rejected: Reason(
        _l("Access was refused."),
        _l("Tell the site's reception what happened.")),
    Refusal.key_not_current: Reason(
        _l("The Wi-Fi key of this device is no longer your current key."),
        _l("Check in with your login and password. Your current key is shown after; "
           "enter it on this device for the private network.")),
}
