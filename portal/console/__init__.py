"""The ops console: the central desk's web face, on the centre's database.

It never imports the captive portal (``passerelle.portal`` outside this
package), nor the other way round: the portal runs on each site's box, the
console on the centre. Each area is a blueprint (``auth``, ``live``,
``boxes``) whose views only parse the request and render; what they do lives
in the matching ``*_ops`` module; who may reach which endpoint lives once, in
``access``.
"""
