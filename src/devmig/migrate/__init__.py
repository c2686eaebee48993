"""Moving device state: the VFIO migration protocol, from the uAPI up to a session between two hosts.

uapi (the kernel's numbers and structures) <- fsm (the state machine's table) <- device (the seam) <- vfio (the real
ioctls) and the simulator's devices; stream (framing) <- session (the two roles) <- transport (where the bytes go).
"""
