"""The lab lives in the package (the demo builds a site with it too)."""

from passerelle.gateway.lab import PREFIX, Lab, LabUnavailable, lab, missing, remove_stale

__all__ = ["PREFIX", "Lab", "LabUnavailable", "lab", "missing", "remove_stale"]
