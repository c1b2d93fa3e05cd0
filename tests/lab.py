"""The lab lives in its own package (the demo builds a site with it too)."""

from passerelle.lab.netns import PREFIX, Lab, LabUnavailable, lab, missing, remove_stale

__all__ = ["PREFIX", "Lab", "LabUnavailable", "lab", "missing", "remove_stale"]
