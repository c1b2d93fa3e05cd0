"""Passerelle: Wi-Fi for a network of shared telework sites."""

__version__ = "0.1.0"
