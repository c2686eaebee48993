"""devmig: predictable live migration of VMs with assigned devices."""

__version__ = "0.1.0"
