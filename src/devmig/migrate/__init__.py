"""Moving device state: the VFIO migration protocol (this package grows with the migration issue)."""
