"""The RADIUS messages the centre and the box exchange, typed and frozen.

How to use it::

    from passerelle.radius import messages as m

    # A server decodes a request; a peer's mistake raises m.Drop (log it, drop it).
    try:
        req = m.decode_request(datagram, secret)
    except m.Drop as why:            # MalformedPacket or BadAuthenticator
        log.warning("dropped: %s", why)
    for problem in req.problems:     # rule breaches worth a log line, not a drop
        log.warning("%s", problem)
    match req:
        case m.AccessRequest(user_name=name, credential=m.Password(text=clear)): ...
        case m.AccountingRequest(status=m.AcctStatus.STOP): ...
    answer = m.AccessAccept(session_timeout=3600, class_=b"...").encode(secret, req)

    # A client encodes a request and decodes the answer against what it sent.
    sent = m.DisconnectRequest(acct_session_id="5F2A0001", event_timestamp=now).encode(secret)
    reply = m.decode_reply(answer, secret, sent)   # m.Drop if it is not a valid answer

Rules the layer applies: Length 20-4096, padding past Length ignored, bad
attribute lengths and a second Message-Authenticator refused; Request,
Response and Message-Authenticator computed and checked (constant time); a
reply we send carries Message-Authenticator first (but an Accounting-Response
to an Accounting-Request: none, as FreeRADIUS) and the request's
Proxy-States in order. A field whose value does not decode (text that is not
UTF-8, an integer of the wrong length) is absent (None) and named in
``problems``; so are the rules a peer breaks without making the packet
unusable (RFC 2866 section 5.13, NAS identity, both passwords). Attributes no
field holds are kept raw, in order, in ``other`` and sent again by
``encode``. ``identifier`` and ``authenticator`` are those of the packet.
"""

from __future__ import annotations

import enum
import hmac
import secrets
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, ClassVar, Self, cast

from .codec import (
    EVS5_KEYS,
    PROXY_STATE,
    RANDOM,
    RESPONSE,
    ZEROED,
    BadAuthenticator,
    BadValue,
    Drop,
    Key,
    MalformedPacket,
    NotAnAnswer,
    Packet,
    Raw,
    TooLong,
    build,
    chap_response,
    check_message_authenticator,
    check_request_authenticator,
    check_response_authenticator,
    codec,
    hide_password,
    hide_tunnel_password,
    new_salts,
    parse,
    reveal_password,
    reveal_tunnel_password,
)

__all__ = [
    "AccessAccept", "AccessChallenge", "AccessReject", "AccessRequest", "AccountingRequest",
    "AccountingResponse", "AcctStatus", "BadAuthenticator", "BadValue", "Chap", "CoAAck",
    "CoANak", "CoARequest", "Code", "DisconnectAck", "DisconnectNak", "DisconnectRequest",
    "Drop", "ErrorCause", "MalformedPacket", "Message", "NotAnAnswer", "Password", "Reply",
    "Request", "StatusServer", "TerminateCause", "TooLong", "decode", "decode_reply",
    "decode_request",
]

GIGA = 2**32


# -- vocabulary ---------------------------------------------------------------------


class _Labelled(enum.IntEnum):
    """An RFC number with its RFC name in ``label``."""

    label: str

    def __new__(cls, value: int, label: str = "") -> Self:
        obj = int.__new__(cls, value)
        obj._value_ = value
        obj.label = label
        return obj


class Code(_Labelled):
    """Packet codes (RFC 2865, 2866, 5176, 5997)."""

    ACCESS_REQUEST = 1, "Access-Request"
    ACCESS_ACCEPT = 2, "Access-Accept"
    ACCESS_REJECT = 3, "Access-Reject"
    ACCOUNTING_REQUEST = 4, "Accounting-Request"
    ACCOUNTING_RESPONSE = 5, "Accounting-Response"
    ACCESS_CHALLENGE = 11, "Access-Challenge"
    STATUS_SERVER = 12, "Status-Server"
    STATUS_CLIENT = 13, "Status-Client"
    DISCONNECT_REQUEST = 40, "Disconnect-Request"
    DISCONNECT_ACK = 41, "Disconnect-ACK"
    DISCONNECT_NAK = 42, "Disconnect-NAK"
    COA_REQUEST = 43, "CoA-Request"
    COA_ACK = 44, "CoA-ACK"
    COA_NAK = 45, "CoA-NAK"


class AcctStatus(_Labelled):
    """Acct-Status-Type (RFC 2866 section 5.1, RFC 2867 for the others)."""

    START = 1, "Start"
    STOP = 2, "Stop"
    INTERIM_UPDATE = 3, "Interim-Update"
    ACCOUNTING_ON = 7, "Accounting-On"
    ACCOUNTING_OFF = 8, "Accounting-Off"


class TerminateCause(_Labelled):
    """Acct-Terminate-Cause (RFC 2866 section 5.10)."""

    USER_REQUEST = 1, "User-Request"
    LOST_CARRIER = 2, "Lost-Carrier"
    LOST_SERVICE = 3, "Lost-Service"
    IDLE_TIMEOUT = 4, "Idle-Timeout"
    SESSION_TIMEOUT = 5, "Session-Timeout"
    ADMIN_RESET = 6, "Admin-Reset"
    ADMIN_REBOOT = 7, "Admin-Reboot"
    PORT_ERROR = 8, "Port-Error"
    NAS_ERROR = 9, "NAS-Error"
    NAS_REQUEST = 10, "NAS-Request"
    NAS_REBOOT = 11, "NAS-Reboot"
    PORT_UNNEEDED = 12, "Port-Unneeded"
    PORT_PREEMPTED = 13, "Port-Preempted"
    PORT_SUSPENDED = 14, "Port-Suspended"
    SERVICE_UNAVAILABLE = 15, "Service-Unavailable"
    CALLBACK = 16, "Callback"
    USER_ERROR = 17, "User-Error"
    HOST_REQUEST = 18, "Host-Request"


class ErrorCause(_Labelled):
    """Error-Cause (RFC 5176 section 3.5); ``words`` says it plainly."""

    RESIDUAL_CONTEXT_REMOVED = 201, "Residual-Context-Removed"
    INVALID_EAP_PACKET = 202, "Invalid-EAP-Packet"
    UNSUPPORTED_ATTRIBUTE = 401, "Unsupported-Attribute"
    MISSING_ATTRIBUTE = 402, "Missing-Attribute"
    NAS_IDENTIFICATION_MISMATCH = 403, "NAS-Identification-Mismatch"
    INVALID_REQUEST = 404, "Invalid-Request"
    UNSUPPORTED_SERVICE = 405, "Unsupported-Service"
    UNSUPPORTED_EXTENSION = 406, "Unsupported-Extension"
    INVALID_ATTRIBUTE_VALUE = 407, "Invalid-Attribute-Value"
    ADMINISTRATIVELY_PROHIBITED = 501, "Administratively-Prohibited"
    REQUEST_NOT_ROUTABLE = 502, "Request-Not-Routable"
    SESSION_CONTEXT_NOT_FOUND = 503, "Session-Context-Not-Found"
    SESSION_CONTEXT_NOT_REMOVABLE = 504, "Session-Context-Not-Removable"
    OTHER_PROXY_PROCESSING_ERROR = 505, "Other-Proxy-Processing-Error"
    RESOURCES_UNAVAILABLE = 506, "Resources-Unavailable"
    REQUEST_INITIATED = 507, "Request-Initiated"
    MULTIPLE_SESSION_SELECTION_UNSUPPORTED = 508, "Multiple-Session-Selection-Unsupported"

    @property
    def words(self) -> str:
        return _ERROR_WORDS[self]


_ERROR_WORDS = {
    ErrorCause.RESIDUAL_CONTEXT_REMOVED: "the session was cut, some state may remain",
    ErrorCause.INVALID_EAP_PACKET: "the EAP packet was invalid",
    ErrorCause.UNSUPPORTED_ATTRIBUTE: "the gateway does not act on an attribute of the request",
    ErrorCause.MISSING_ATTRIBUTE: "the request lacks an attribute the gateway needs",
    ErrorCause.NAS_IDENTIFICATION_MISMATCH: "the request names another gateway",
    ErrorCause.INVALID_REQUEST: "the gateway found the request invalid",
    ErrorCause.UNSUPPORTED_SERVICE: "the gateway does not offer that service",
    ErrorCause.UNSUPPORTED_EXTENSION: "the gateway does not support that extension",
    ErrorCause.INVALID_ATTRIBUTE_VALUE: "a value in the request is not acceptable",
    ErrorCause.ADMINISTRATIVELY_PROHIBITED: "the gateway is configured to refuse it",
    ErrorCause.REQUEST_NOT_ROUTABLE: "the request could not be passed on",
    ErrorCause.SESSION_CONTEXT_NOT_FOUND: "no such session on the gateway",
    ErrorCause.SESSION_CONTEXT_NOT_REMOVABLE: "the gateway cannot end that session",
    ErrorCause.OTHER_PROXY_PROCESSING_ERROR: "a proxy failed to handle the request",
    ErrorCause.RESOURCES_UNAVAILABLE: "the gateway lacks the resources to do it now",
    ErrorCause.REQUEST_INITIATED: "the gateway started the action itself",
    ErrorCause.MULTIPLE_SESSION_SELECTION_UNSUPPORTED:
        "the request matches several sessions and the gateway cannot pick",
}


def _known(enum_type: type[_Labelled], value: int) -> Any:
    """The member for ``value``, or the plain int when the RFC has none."""
    return enum_type._value2member_map_.get(value, value)


# -- credentials -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Password:
    """A User-Password, in clear; ``text`` None: it was not UTF-8 (refuse)."""

    text: str | None


@dataclass(frozen=True, slots=True)
class Chap:
    """A CHAP-Password (RFC 2865 section 5.3) and the challenge it answers:
    CHAP-Challenge, or the Request Authenticator when there is none."""

    ident: int
    response: bytes
    challenge: bytes

    @classmethod
    def answer(cls, password: str, challenge: bytes | None = None) -> Chap:
        """What a client sends: a fresh identifier and challenge."""
        ident = secrets.randbelow(256)
        challenge = challenge or secrets.token_bytes(16)
        return cls(ident, chap_response(ident, password.encode(), challenge), challenge)

    def verify(self, password: str) -> bool:
        expected = chap_response(self.ident, password.encode(), self.challenge)
        return hmac.compare_digest(expected, self.response)


# -- the messages ---------------------------------------------------------------------

_C = codec()
_KEY = {name: _C.key(name) for name in (
    "User-Password", "CHAP-Password", "CHAP-Challenge", "Reply-Message", "State",
    "Acct-Status-Type", "Acct-Input-Octets", "Acct-Input-Gigawords", "Acct-Output-Octets",
    "Acct-Output-Gigawords", "Acct-Terminate-Cause", "Tunnel-Password", "Tunnel-Type",
    "Tunnel-Medium-Type", "Tunnel-Private-Group-Id", "Error-Cause", "NAS-IP-Address",
    "NAS-Identifier", "NAS-IPv6-Address", "Message-Authenticator", "Cisco-AVPair",
    "Aruba-MPSK-Passphrase", "Ruckus-Dpsk", "Ruckus-DPSK-Params")}
_KEY.update(EVS5_KEYS)
# Ruckus-DPSK-Params sub-attributes (type, length, value): AKM suite, ANonce, EAPoL-Key.
_RUCKUS_AKM, _RUCKUS_ANONCE, _RUCKUS_EAPOL = 1, 3, 4
_VLAN, _IEEE_802 = 13, 6  # Tunnel-Type and Tunnel-Medium-Type (RFC 3580 section 3.31)
_VLAN_TUNNEL = (_C.raw("Tunnel-Type:1", _VLAN), _C.raw("Tunnel-Medium-Type:1", _IEEE_802))
_NOT_IN_ACCOUNTING_KEYS = tuple((_KEY[name], name) for name in (
    "User-Password", "CHAP-Password", "Reply-Message", "State"))
_STATUS_TYPE, _TERMINATE_CAUSE = _KEY["Acct-Status-Type"], _KEY["Acct-Terminate-Cause"]
# The 64-bit counters (RFC 2869 section 5.1): field, then (key, attribute, scale).
_OCTETS = tuple((name, ((_KEY[low], low, 1), (_KEY[high], high, GIGA))) for name, low, high in (
    ("input_octets", "Acct-Input-Octets", "Acct-Input-Gigawords"),
    ("output_octets", "Acct-Output-Octets", "Acct-Output-Gigawords")))
_MA = _KEY["Message-Authenticator"]
# By class: attribute key -> (field, decoder, attribute name) of its plain fields.
_PLANS: dict[type, dict[Key, tuple[str, Callable[[bytes], Any], str]]] = {}
# By class: (field, attribute key, encoder) of its plain fields, in order.
_ENCODINGS: dict[type, tuple[tuple[str, Key, Callable[[Any], bytes]], ...]] = {}
# By class: its decoder's constructor (_maker).
_MAKERS: dict[type, Callable[..., Any]] = {}


def _maker(cls: type) -> Callable[..., Any]:
    """``cls(**fields)`` for a decoded message, the same object, made faster:
    a frozen dataclass's __init__ sets each field through
    ``object.__setattr__``, which was a third of an Accounting-Request's
    decoding (some thirty fields); this sets the slots directly. A field
    with a default factory must be given."""
    if hasattr(cls, "__post_init__"):  # it would be skipped: say so at import
        raise TypeError(f"{cls.__name__}: _maker does not run __post_init__")
    env: dict[str, Any] = {"_new": object.__new__, "_cls": cls}
    params, lines = [], []
    for f in fields(cls):
        env[f"_set_{f.name}"] = getattr(cls, f.name).__set__  # the slot's descriptor
        if f.default is MISSING:
            params.append(f.name)
        else:
            env[f"_default_{f.name}"] = f.default
            params.append(f"{f.name}=_default_{f.name}")
        lines.append(f"    _set_{f.name}(obj, {f.name})")
    source = (f"def make(*, {', '.join(params)}):\n    obj = _new(_cls)\n"
              + "\n".join(lines) + "\n    return obj\n")
    exec(source, env)  # our own field names only, as dataclasses does
    return cast(Callable[..., Any], env["make"])


def _new_id() -> int:
    return secrets.randbelow(256)


def _new_authenticator() -> bytes:
    return secrets.token_bytes(16)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Message:
    CODE: ClassVar[Code]
    # (field, attribute) for the fields that are one attribute's first value.
    PLAIN: ClassVar[tuple[tuple[str, str], ...]] = ()

    identifier: int = field(default_factory=_new_id)
    authenticator: bytes = field(default_factory=_new_authenticator, repr=False)
    proxy_state: tuple[bytes, ...] = ()
    other: tuple[Raw, ...] = ()
    message_authenticator: bool = False
    problems: tuple[str, ...] = ()

    @classmethod
    def of(cls, attributes: Mapping[str, Any], **fields_: Any) -> Self:
        """A message from attribute names and values ("Session-Timeout": 60);
        names no field holds go to ``other``."""
        by_attribute = {attribute: name for name, attribute in cls.PLAIN}
        other = []
        for name, value in attributes.items():
            if name in by_attribute:
                fields_[by_attribute[name]] = value
            else:
                other.append(_C.raw(name, value))
        return cls(**fields_, other=tuple(other))

    # -- decoding

    @classmethod
    def _decode(cls, pkt: Packet, secret: bytes, request_authenticator: bytes) -> Self:
        # One pass over the attributes (the hot path of the centre): a plain
        # field's attribute is decoded at once, the others grouped by key.
        plain = _PLANS[cls]
        kwargs: dict[str, Any] = {}
        problems: list[str] = []
        index: dict[Key, list[bytes]] = {}
        for key, value in pkt.attributes:
            entry = plain.get(key)
            if entry is None:
                values = index.get(key)
                if values is None:
                    index[key] = [value]
                else:
                    values.append(value)
                continue
            name, decode, attribute = entry
            if name in kwargs:
                problems.append(f"{attribute} given more than once; the first is used")
                continue
            try:
                kwargs[name] = decode(value)
            except BadValue as exc:
                kwargs[name] = None
                problems.append(f"{attribute}: {exc}; taken as absent")
        proxy = index.pop(PROXY_STATE, ())
        index.pop(_MA, None)
        cls._special(index, kwargs, problems, secret, request_authenticator)
        other = tuple(a for a in pkt.attributes if a[0] in index) if index else ()
        return cast(Self, _MAKERS[cls](
            identifier=pkt.identifier, authenticator=pkt.authenticator,
            proxy_state=tuple(proxy), other=other, message_authenticator=pkt.ma_offset != 0,
            problems=tuple(problems), **kwargs))

    @classmethod
    def _special(cls, index: dict[Key, list[bytes]], kwargs: dict[str, Any],
                 problems: list[str], secret: bytes, request_authenticator: bytes) -> None:
        """The fields that are not one attribute's first value."""

    # -- encoding

    def _attributes(self, secret: bytes, request_authenticator: bytes) -> list[Raw]:
        out = []
        for name, key, encode in _ENCODINGS[type(self)]:
            value = getattr(self, name)
            if value is not None:
                out.append((key, encode(value)))
        return out


_NAS = (("nas_identifier", "NAS-Identifier"), ("nas_ip_address", "NAS-IP-Address"),
        ("nas_ipv6_address", "NAS-IPv6-Address"))


@dataclass(frozen=True, slots=True, kw_only=True)
class _Request(_Message):
    KIND: ClassVar[str] = ZEROED
    WITH_MA: ClassVar[bool] = True

    def encode(self, secret: bytes, *, with_ma: bool | None = None) -> bytes:
        """The datagram to send; Message-Authenticator unless ``with_ma`` is False
        (default: always, except in Accounting-Request)."""
        attrs = self._attributes(secret, self.authenticator)
        attrs.extend((PROXY_STATE, p) for p in self.proxy_state)
        attrs.extend(self.other)
        return build(self.CODE, self.identifier, attrs, secret, kind=self.KIND,
                     authenticator=self.authenticator,
                     with_ma=self.WITH_MA if with_ma is None else with_ma)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Reply(_Message):
    def encode(self, secret: bytes, request: Request) -> bytes:
        """The reply to ``request``: its Identifier and Proxy-States,
        Message-Authenticator first, then the Response Authenticator.
        An Accounting-Response to an Accounting-Request carries no
        Message-Authenticator (see _ma_vector)."""
        attrs = self._attributes(secret, request.authenticator)
        attrs.extend(self.other)
        attrs.extend((PROXY_STATE, p) for p in request.proxy_state)
        return build(self.CODE, request.identifier, attrs, secret, kind=RESPONSE,
                     authenticator=request.authenticator,
                     with_ma=_ma_vector(self.CODE, request.CODE) is None)


@dataclass(frozen=True, slots=True, kw_only=True)
class AccessRequest(_Request):
    CODE = Code.ACCESS_REQUEST
    KIND = RANDOM
    PLAIN = (("user_name", "User-Name"), ("calling_station_id", "Calling-Station-Id"),
             ("called_station_id", "Called-Station-Id"), *_NAS,
             ("nas_port_type", "NAS-Port-Type"), ("service_type", "Service-Type"),
             ("framed_ip_address", "Framed-IP-Address"), ("operator_name", "Operator-Name"),
             ("state", "State"), ("connect_info", "Connect-Info"),
             ("akm_suite", "WLAN-AKM-Suite"))

    user_name: str | None = None
    credential: Password | Chap | None = None
    calling_station_id: str | None = None
    called_station_id: str | None = None
    nas_identifier: str | None = None
    nas_ip_address: str | None = None
    nas_ipv6_address: str | None = None
    nas_port_type: int | None = None
    service_type: int | None = None
    framed_ip_address: str | None = None
    operator_name: str | None = None
    state: bytes | None = None
    connect_info: str | None = None
    # A Wi-Fi access point's 4-way handshake (hostapd wpa_psk_radius=3 sends
    # them as FreeRADIUS-802.1X-Anonce / -EAPoL-Key-Msg, Ruckus inside
    # Ruckus-DPSK-Params): message 1's ANonce and the whole message 2.
    akm_suite: int | None = None  # WLAN-AKM-Suite (RFC 7268), e.g. 0x000FAC02
    anonce: bytes | None = None
    eapol_key: bytes | None = None

    @classmethod
    def _special(cls, index: dict[Key, list[bytes]], kwargs: dict[str, Any],
                 problems: list[str], secret: bytes, request_authenticator: bytes) -> None:
        _handshake(index, kwargs, problems)
        pap = index.pop(_KEY["User-Password"], None)
        chap = index.pop(_KEY["CHAP-Password"], None)
        challenge = index.pop(_KEY["CHAP-Challenge"], None)
        if pap and chap:
            problems.append("both User-Password and CHAP-Password (RFC 2865 section 4.1): "
                            "neither is used")
        elif pap:
            try:
                clear = reveal_password(pap[0], secret, request_authenticator)
            except BadValue as exc:
                raise MalformedPacket(str(exc)) from None
            kwargs["credential"] = Password(clear)
        elif chap:
            if len(chap[0]) != 17:
                problems.append(f"CHAP-Password of {len(chap[0])} octets; taken as absent")
            else:
                kwargs["credential"] = Chap(chap[0][0], chap[0][1:],
                                            challenge[0] if challenge else request_authenticator)
        if not any(k in kwargs for k in ("nas_identifier", "nas_ip_address",
                                         "nas_ipv6_address")) \
                and not any(_KEY[n] in index for n in ("NAS-Identifier", "NAS-IP-Address",
                                                      "NAS-IPv6-Address")):
            problems.append("no NAS-IP-Address or NAS-Identifier (RFC 2865 section 4.1)")

    def _attributes(self, secret: bytes, request_authenticator: bytes) -> list[Raw]:
        out = _Message._attributes(self, secret, request_authenticator)
        match self.credential:
            case Password(text=text):
                out.insert(1, (_KEY["User-Password"],
                               hide_password(text or "", secret, self.authenticator)))
            case Chap(ident=ident, response=response, challenge=challenge):
                out.insert(1, (_KEY["CHAP-Password"], bytes([ident]) + response))
                out.insert(2, (_KEY["CHAP-Challenge"], challenge))
            case None:
                pass
        for name, value in (("FreeRADIUS-802.1X-Anonce", self.anonce),
                            ("FreeRADIUS-802.1X-EAPoL-Key-Msg", self.eapol_key)):
            if value is not None:
                out.append((_KEY[name], value))
        return out


def _handshake(index: dict[Key, list[bytes]], kwargs: dict[str, Any],
               problems: list[str]) -> None:
    for field_, name in (("anonce", "FreeRADIUS-802.1X-Anonce"),
                         ("eapol_key", "FreeRADIUS-802.1X-EAPoL-Key-Msg")):
        values = index.pop(_KEY[name], None)
        if values:
            kwargs[field_] = values[0]
            if len(values) > 1:
                problems.append(f"{name} given more than once; the first is used")
    for params in index.pop(_KEY["Ruckus-DPSK-Params"], ()):
        pos = 0
        while pos + 2 <= len(params) and params[pos + 1] >= 2 \
                and pos + params[pos + 1] <= len(params):
            kind, value = params[pos], params[pos + 2:pos + params[pos + 1]]
            if kind == _RUCKUS_ANONCE:
                kwargs.setdefault("anonce", value)
            elif kind == _RUCKUS_EAPOL:
                kwargs.setdefault("eapol_key", value)
            elif kind == _RUCKUS_AKM and len(value) == 4:
                kwargs.setdefault("akm_suite", int.from_bytes(value, "big"))
            pos += params[pos + 1]
        if pos != len(params):
            problems.append("Ruckus-DPSK-Params is not a list of type-length-values; "
                            "its rest is ignored")


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusServer(_Request):
    """RFC 5997: Message-Authenticator is required."""

    CODE = Code.STATUS_SERVER
    KIND = RANDOM
    PLAIN = _NAS

    nas_identifier: str | None = None
    nas_ip_address: str | None = None
    nas_ipv6_address: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountingRequest(_Request):
    CODE = Code.ACCOUNTING_REQUEST
    WITH_MA = False
    PLAIN = (("session_id", "Acct-Session-Id"), ("user_name", "User-Name"),
             ("calling_station_id", "Calling-Station-Id"),
             ("called_station_id", "Called-Station-Id"),
             ("framed_ip_address", "Framed-IP-Address"),
             ("framed_ipv6_address", "Framed-IPv6-Address"), ("class_", "Class"),
             ("session_time", "Acct-Session-Time"), ("input_packets", "Acct-Input-Packets"),
             ("output_packets", "Acct-Output-Packets"), ("event_timestamp", "Event-Timestamp"),
             ("delay_time", "Acct-Delay-Time"), *_NAS, ("nas_port_id", "NAS-Port-Id"),
             ("nas_port_type", "NAS-Port-Type"), ("service_type", "Service-Type"),
             ("framed_protocol", "Framed-Protocol"), ("acct_authentic", "Acct-Authentic"),
             ("acct_interim_interval", "Acct-Interim-Interval"),
             ("connect_info", "Connect-Info"))

    status: AcctStatus | int = AcctStatus.START  # an int: a type RFC 2866 does not name
    session_id: str | None = None
    user_name: str | None = None
    calling_station_id: str | None = None
    called_station_id: str | None = None
    framed_ip_address: str | None = None
    framed_ipv6_address: str | None = None
    class_: bytes | None = None
    session_time: int | None = None
    input_octets: int | None = None  # 64 bits: Gigawords * 2**32 + Octets (RFC 2869 5.1)
    output_octets: int | None = None
    input_packets: int | None = None
    output_packets: int | None = None
    terminate_cause: TerminateCause | None = None
    event_timestamp: int | None = None
    delay_time: int | None = None
    nas_identifier: str | None = None
    nas_ip_address: str | None = None
    nas_ipv6_address: str | None = None
    nas_port_id: str | None = None
    nas_port_type: int | None = None
    service_type: int | None = None
    framed_protocol: int | None = None
    acct_authentic: int | None = None
    acct_interim_interval: int | None = None
    connect_info: str | None = None

    @classmethod
    def _special(cls, index: dict[Key, list[bytes]], kwargs: dict[str, Any],
                 problems: list[str], secret: bytes, request_authenticator: bytes) -> None:
        status = index.pop(_STATUS_TYPE, None)
        if not status or len(status[0]) != 4:
            raise MalformedPacket("Accounting-Request without a valid Acct-Status-Type")
        kwargs["status"] = _known(AcctStatus, int.from_bytes(status[0], "big"))
        for name, parts in _OCTETS:
            total, given = 0, False
            for key, attribute, scale in parts:
                values = index.pop(key, None)
                if values is None:
                    continue
                given = True
                if len(values[0]) == 4:
                    total += int.from_bytes(values[0], "big") * scale
                else:
                    problems.append(f"{attribute} of {len(values[0])} octets; taken as 0")
            if given:
                kwargs[name] = total
        cause = index.pop(_TERMINATE_CAUSE, None)
        if cause:
            value = int.from_bytes(cause[0], "big") if len(cause[0]) == 4 else 0
            if value in TerminateCause._value2member_map_:
                kwargs["terminate_cause"] = TerminateCause(value)
            else:
                problems.append(f"Acct-Terminate-Cause {cause[0].hex()} is not one of RFC "
                                "2866 section 5.10; taken as absent")
            if kwargs["status"] != AcctStatus.STOP:
                problems.append("Acct-Terminate-Cause outside a Stop (RFC 2866 section 5.10)")
        if index:
            for key, name in _NOT_IN_ACCOUNTING_KEYS:
                if key in index:
                    problems.append(f"carries {name} (RFC 2866 section 5.13 forbids it)")

    def _attributes(self, secret: bytes, request_authenticator: bytes) -> list[Raw]:
        out = [(_KEY["Acct-Status-Type"], int(self.status).to_bytes(4, "big"))]
        out += _Message._attributes(self, secret, request_authenticator)
        for total, low, high in ((self.input_octets, "Acct-Input-Octets",
                                  "Acct-Input-Gigawords"),
                                 (self.output_octets, "Acct-Output-Octets",
                                  "Acct-Output-Gigawords")):
            if total is not None:
                out.append((_KEY[low], (total % GIGA).to_bytes(4, "big")))
                if total >= GIGA:
                    out.append((_KEY[high], (total // GIGA).to_bytes(4, "big")))
        if self.terminate_cause is not None:
            out.append((_KEY["Acct-Terminate-Cause"], int(self.terminate_cause).to_bytes(4, "big")))
        return out


_SELECTOR = (("acct_session_id", "Acct-Session-Id"), ("user_name", "User-Name"),
             ("calling_station_id", "Calling-Station-Id"),
             ("framed_ip_address", "Framed-IP-Address"), *_NAS,
             ("event_timestamp", "Event-Timestamp"))


@dataclass(frozen=True, slots=True, kw_only=True)
class DisconnectRequest(_Request):
    """RFC 5176: the session selector, the NAS's identity, Event-Timestamp."""

    CODE = Code.DISCONNECT_REQUEST
    PLAIN = _SELECTOR

    acct_session_id: str | None = None
    user_name: str | None = None
    calling_station_id: str | None = None
    framed_ip_address: str | None = None
    nas_identifier: str | None = None
    nas_ip_address: str | None = None
    nas_ipv6_address: str | None = None
    event_timestamp: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CoARequest(_Request):
    """RFC 5176: a Disconnect-Request's fields plus what to change."""

    CODE = Code.COA_REQUEST
    PLAIN = (*_SELECTOR, ("session_timeout", "Session-Timeout"),
             ("bandwidth_up", "WISPr-Bandwidth-Max-Up"),
             ("bandwidth_down", "WISPr-Bandwidth-Max-Down"),
             ("chilli_bandwidth_up", "ChilliSpot-Bandwidth-Max-Up"),
             ("chilli_bandwidth_down", "ChilliSpot-Bandwidth-Max-Down"))

    acct_session_id: str | None = None
    user_name: str | None = None
    calling_station_id: str | None = None
    framed_ip_address: str | None = None
    nas_identifier: str | None = None
    nas_ip_address: str | None = None
    nas_ipv6_address: str | None = None
    event_timestamp: int | None = None
    session_timeout: int | None = None
    bandwidth_up: int | None = None  # bit/s
    bandwidth_down: int | None = None
    chilli_bandwidth_up: int | None = None  # kbit/s
    chilli_bandwidth_down: int | None = None


def _reply_message(index: dict[Key, list[bytes]], kwargs: dict[str, Any],
                   problems: list[str]) -> None:
    # Several Reply-Messages are one text (RFC 2865 section 5.18).
    parts = index.pop(_KEY["Reply-Message"], None)
    if parts:
        kwargs["reply_message"] = b"".join(parts).decode("utf-8", "replace")


def _reply_message_attributes(text: str | None) -> list[Raw]:
    if not text:
        return []
    raw = text.encode("utf-8")
    return [(_KEY["Reply-Message"], raw[i:i + 253]) for i in range(0, len(raw), 253)]


@dataclass(frozen=True, slots=True, kw_only=True)
class AccessAccept(_Reply):
    CODE = Code.ACCESS_ACCEPT
    PLAIN = (("session_timeout", "Session-Timeout"), ("idle_timeout", "Idle-Timeout"),
             ("acct_interim_interval", "Acct-Interim-Interval"), ("class_", "Class"),
             ("bandwidth_up", "WISPr-Bandwidth-Max-Up"),
             ("bandwidth_down", "WISPr-Bandwidth-Max-Down"),
             ("mikrotik_wireless_psk", "Mikrotik-Wireless-PSK"),
             ("credit_left", "Passerelle-Credit-Left"))

    session_timeout: int | None = None
    idle_timeout: int | None = None
    acct_interim_interval: int | None = None
    class_: bytes | None = None
    tunnel_passwords: tuple[str, ...] = ()  # in clear; the Wi-Fi key
    vlan: int | None = None  # Tunnel-Private-Group-Id, 1-4094
    bandwidth_up: int | None = None  # bit/s
    bandwidth_down: int | None = None
    reply_message: str | None = None
    # The Wi-Fi key in the dialect of an access point's vendor.
    cisco_avpairs: tuple[str, ...] = ()  # Cisco iPSK: "psk-mode=ascii", "psk=KEY"
    aruba_mpsk_passphrase: str | None = None  # hidden like Tunnel-Password, no tag
    mikrotik_wireless_psk: str | None = None  # in clear (a plain field)
    ruckus_dpsk: bytes | None = None  # the 32-octet PMK; sent as 0x00 || PMK
    credit_left: int | None = None  # seconds of the person's credit at the Accept

    @classmethod
    def _special(cls, index: dict[Key, list[bytes]], kwargs: dict[str, Any],
                 problems: list[str], secret: bytes, request_authenticator: bytes) -> None:
        _reply_message(index, kwargs, problems)
        _vendor_keys(index, kwargs, problems, secret, request_authenticator)
        clear = []
        for raw in index.pop(_KEY["Tunnel-Password"], ()):
            try:
                clear.append(reveal_tunnel_password(raw, secret, request_authenticator))
            except BadValue as exc:
                problems.append(f"Tunnel-Password: {exc}; ignored")
        kwargs["tunnel_passwords"] = tuple(clear)
        index.pop(_KEY["Tunnel-Type"], None)
        index.pop(_KEY["Tunnel-Medium-Type"], None)
        for raw in index.pop(_KEY["Tunnel-Private-Group-Id"], ()):
            text = raw[1:] if raw and raw[0] <= 0x1F else raw
            try:
                vlan = int(text.decode("ascii"))
            except (UnicodeDecodeError, ValueError):
                vlan = 0
            if 1 <= vlan <= 4094:
                kwargs["vlan"] = vlan
                break
            problems.append(f"Tunnel-Private-Group-Id {raw!r} is not a VLAN; ignored")

    def _attributes(self, secret: bytes, request_authenticator: bytes) -> list[Raw]:
        out = _Message._attributes(self, secret, request_authenticator)
        salts = new_salts(len(self.tunnel_passwords))
        for key, salt in zip(self.tunnel_passwords, salts, strict=True):
            out.append((_KEY["Tunnel-Password"],
                        hide_tunnel_password(key, secret, request_authenticator, salt)))
        if self.vlan is not None:
            out += [*_VLAN_TUNNEL, _C.raw("Tunnel-Private-Group-Id:1", str(self.vlan))]
        out += [_C.raw("Cisco-AVPair", pair) for pair in self.cisco_avpairs]
        if self.aruba_mpsk_passphrase is not None:
            salt = new_salts(1)[0]
            hidden = hide_tunnel_password(self.aruba_mpsk_passphrase, secret,
                                          request_authenticator, salt)
            out.append((_KEY["Aruba-MPSK-Passphrase"], hidden[1:]))  # no tag octet
        if self.ruckus_dpsk is not None:
            out.append((_KEY["Ruckus-Dpsk"], b"\x00" + self.ruckus_dpsk))
        return out + _reply_message_attributes(self.reply_message)


def _vendor_keys(index: dict[Key, list[bytes]], kwargs: dict[str, Any], problems: list[str],
                 secret: bytes, request_authenticator: bytes) -> None:
    pairs = []
    for raw in index.pop(_KEY["Cisco-AVPair"], ()):
        try:
            pairs.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            problems.append("Cisco-AVPair is not UTF-8; ignored")
    kwargs["cisco_avpairs"] = tuple(pairs)
    for raw in index.pop(_KEY["Aruba-MPSK-Passphrase"], ())[:1]:
        try:
            kwargs["aruba_mpsk_passphrase"] = reveal_tunnel_password(raw, secret,
                                                                     request_authenticator)
        except BadValue as exc:
            problems.append(f"Aruba-MPSK-Passphrase: {exc}; ignored")
    for raw in index.pop(_KEY["Ruckus-Dpsk"], ())[:1]:
        if len(raw) == 33 and raw[0] == 0:
            kwargs["ruckus_dpsk"] = raw[1:]
        else:
            problems.append(f"Ruckus-Dpsk of {len(raw)} octets is not 0x00 and a PMK; ignored")


@dataclass(frozen=True, slots=True, kw_only=True)
class AccessReject(_Reply):
    CODE = Code.ACCESS_REJECT

    reply_message: str | None = None

    @classmethod
    def _special(cls, index: dict[Key, list[bytes]], kwargs: dict[str, Any],
                 problems: list[str], secret: bytes, request_authenticator: bytes) -> None:
        _reply_message(index, kwargs, problems)

    def _attributes(self, secret: bytes, request_authenticator: bytes) -> list[Raw]:
        return _reply_message_attributes(self.reply_message)


@dataclass(frozen=True, slots=True, kw_only=True)
class AccessChallenge(_Reply):
    """We never send one; a client takes it as a refusal."""

    CODE = Code.ACCESS_CHALLENGE
    PLAIN = (("state", "State"),)

    reply_message: str | None = None
    state: bytes | None = None

    @classmethod
    def _special(cls, index: dict[Key, list[bytes]], kwargs: dict[str, Any],
                 problems: list[str], secret: bytes, request_authenticator: bytes) -> None:
        _reply_message(index, kwargs, problems)

    def _attributes(self, secret: bytes, request_authenticator: bytes) -> list[Raw]:
        return (_Message._attributes(self, secret, request_authenticator)
                + _reply_message_attributes(self.reply_message))


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountingResponse(_Reply):
    CODE = Code.ACCOUNTING_RESPONSE


@dataclass(frozen=True, slots=True, kw_only=True)
class DisconnectAck(_Reply):
    CODE = Code.DISCONNECT_ACK


@dataclass(frozen=True, slots=True, kw_only=True)
class CoAAck(_Reply):
    CODE = Code.COA_ACK


@dataclass(frozen=True, slots=True, kw_only=True)
class _Nak(_Reply):
    PLAIN = (("error_cause", "Error-Cause"),)

    error_cause: ErrorCause | int | None = None  # an int: a value RFC 5176 does not name

    @classmethod
    def _special(cls, index: dict[Key, list[bytes]], kwargs: dict[str, Any],
                 problems: list[str], secret: bytes, request_authenticator: bytes) -> None:
        if kwargs.get("error_cause") is not None:
            kwargs["error_cause"] = _known(ErrorCause, kwargs["error_cause"])


@dataclass(frozen=True, slots=True, kw_only=True)
class DisconnectNak(_Nak):
    CODE = Code.DISCONNECT_NAK


@dataclass(frozen=True, slots=True, kw_only=True)
class CoANak(_Nak):
    CODE = Code.COA_NAK


Request = AccessRequest | AccountingRequest | StatusServer | DisconnectRequest | CoARequest
Reply = (AccessAccept | AccessReject | AccessChallenge | AccountingResponse | DisconnectAck
         | DisconnectNak | CoAAck | CoANak)
Message = Request | Reply

_REQUESTS: dict[int, type[Request]] = {
    c.CODE: c for c in (AccessRequest, AccountingRequest, StatusServer, DisconnectRequest,
                        CoARequest)}
_REPLIES: dict[int, type[Reply]] = {
    c.CODE: c for c in (AccessAccept, AccessReject, AccessChallenge, AccountingResponse,
                        DisconnectAck, DisconnectNak, CoAAck, CoANak)}
ANSWERS: dict[int, tuple[Code, ...]] = {
    Code.ACCESS_REQUEST: (Code.ACCESS_ACCEPT, Code.ACCESS_REJECT, Code.ACCESS_CHALLENGE),
    Code.ACCOUNTING_REQUEST: (Code.ACCOUNTING_RESPONSE,),
    Code.STATUS_SERVER: (Code.ACCESS_ACCEPT, Code.ACCOUNTING_RESPONSE),
    Code.DISCONNECT_REQUEST: (Code.DISCONNECT_ACK, Code.DISCONNECT_NAK),
    Code.COA_REQUEST: (Code.COA_ACK, Code.COA_NAK),
}

for _cls in (*_REQUESTS.values(), *_REPLIES.values()):
    _names = {f.name for f in fields(_cls)}
    for _field, _attribute in _cls.PLAIN:
        assert _field in _names, (_cls, _field)
    _PLANS[_cls] = {_C.spec(a).key: (f, _C.spec(a).decode, a) for f, a in _cls.PLAIN}
    _ENCODINGS[_cls] = tuple((f, _C.spec(a).key, _C.spec(a).encode) for f, a in _cls.PLAIN)
    _MAKERS[_cls] = _maker(_cls)


def decode_request(datagram: bytes, secret: bytes) -> Request:
    """A request as a server receives it, its authenticators checked;
    MalformedPacket or BadAuthenticator (both Drop) otherwise. Whether a
    missing Message-Authenticator is acceptable in an Access-Request is the
    caller's policy: see ``message_authenticator``."""
    pkt = parse(datagram)
    cls = _REQUESTS.get(pkt.code)
    if cls is None:
        raise MalformedPacket(f"unexpected packet code {pkt.code}")
    if cls.KIND == RANDOM:
        if cls is StatusServer and not pkt.ma_offset:
            raise MalformedPacket("Status-Server without Message-Authenticator (RFC 5997)")
        if pkt.ma_offset and not check_message_authenticator(pkt, secret, pkt.authenticator):
            raise BadAuthenticator("bad Message-Authenticator (wrong secret?)")
    else:
        if not check_request_authenticator(pkt, secret):
            raise BadAuthenticator("bad Request Authenticator (wrong secret?)")
        if pkt.ma_offset and not check_message_authenticator(pkt, secret, bytes(16)):
            raise BadAuthenticator("bad Message-Authenticator")
    return cls._decode(pkt, secret, pkt.authenticator)


def _ma_vector(code: int, request_code: int) -> bytes | None:
    """16 zero octets for the Message-Authenticator of an Accounting-Response
    to an Accounting-Request, None for every other reply (the Request
    Authenticator, RFC 3579 section 3.2, RFC 5176 section 3.4, RFC 5997
    section 3). RFC 2866 defines no Message-Authenticator there: the peers
    that check one anyway (FreeRADIUS, pyrad) compute it as for the request,
    with zeros; we send none, as they do."""
    if code == Code.ACCOUNTING_RESPONSE and request_code == Code.ACCOUNTING_REQUEST:
        return bytes(16)
    return None


def decode_reply(datagram: bytes, secret: bytes, sent: bytes) -> Reply:
    """The answer to the request datagram ``sent``, checked: Identifier, a
    code that answers it, Response Authenticator, Message-Authenticator when
    present, our Proxy-States back. NotAnAnswer, MalformedPacket or
    BadAuthenticator (all Drop) otherwise."""
    pkt = parse(datagram)
    if pkt.identifier != sent[1]:
        raise NotAnAnswer(f"Identifier {pkt.identifier} does not match {sent[1]}")
    if pkt.code not in ANSWERS.get(sent[0], ()):
        raise NotAnAnswer(f"code {pkt.code} does not answer a request of code {sent[0]}")
    request_authenticator = sent[4:20]
    if not check_response_authenticator(pkt, request_authenticator, secret):
        raise BadAuthenticator("bad Response Authenticator (wrong secret?)")
    if pkt.ma_offset and not check_message_authenticator(
            pkt, secret, _ma_vector(pkt.code, sent[0]) or request_authenticator):
        raise BadAuthenticator("bad Message-Authenticator")
    ours = [v for k, v in parse(sent).attributes if k == PROXY_STATE]
    if [v for k, v in pkt.attributes if k == PROXY_STATE] != ours:
        raise NotAnAnswer("Proxy-State we did not send")
    return _REPLIES[pkt.code]._decode(pkt, secret, request_authenticator)


def decode(datagram: bytes, secret: bytes, sent: bytes | None = None) -> Message:
    """decode_request, or decode_reply when ``sent`` (our request) is given."""
    if sent is None:
        return decode_request(datagram, secret)
    return decode_reply(datagram, secret, sent)

