"""Reference vendor drivers: the proposed migration interface, from the driver's side."""
