"""The central RADIUS/SQL backend: data model, policy, accounting, DAE client."""

import logging

log = logging.getLogger("passerelle.radius")
