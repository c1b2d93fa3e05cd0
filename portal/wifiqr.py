"""The Wi-Fi QR code a phone camera joins with, as inline SVG (no script, no image file).

Payload (the ZXing "WIFI:" format): ``WIFI:T:WPA;S:<ssid>;P:<key>;;`` where
``\\ ; , : "`` in the SSID and the key are escaped with a backslash.
"""

from __future__ import annotations

from functools import lru_cache

import qrcode
import qrcode.constants

_SPECIAL = '\\;,:"'


def escape(value: str) -> str:
    return "".join("\\" + c if c in _SPECIAL else c for c in value)


def payload(ssid: str, key: str) -> str:
    return f"WIFI:T:WPA;S:{escape(ssid)};P:{escape(key)};;"


def matrix(data: str) -> list[list[bool]]:
    qr = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=4)
    qr.add_data(data)
    qr.make(fit=True)
    return [list(row) for row in qr.get_matrix()]


@lru_cache(maxsize=256)  # a person reloads the page; the code is the costly part
def svg(data: str, title: str) -> str:
    """A self-contained SVG of the QR code of ``data``; ``title`` must be plain
    text (it is escaped here). One path of unit squares: small and crisp."""
    cells = matrix(data)
    size = len(cells)
    runs = []
    for y, row in enumerate(cells):
        x = 0
        while x < size:
            if row[x]:
                start = x
                while x < size and row[x]:
                    x += 1
                runs.append(f"M{start} {y}h{x - start}v1h-{x - start}z")
            else:
                x += 1
    safe_title = (title.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"))
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {size} {size}" '
            f'role="img" aria-labelledby="qr-title" shape-rendering="crispEdges" '
            f'class="qr"><title id="qr-title">{safe_title}</title>'
            f'<rect width="{size}" height="{size}" fill="#fff"/>'
            f'<path fill="#000" d="{"".join(runs)}"/></svg>')
