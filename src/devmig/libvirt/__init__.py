"""devmig and libvirt: the descriptor travels with the VM.

`domain` reads a domain's XML as untrusted input (its hostdevs) and makes devmig's changes to it; `metadata` is
devmig's element in the domain's `<metadata>` (a descriptor per hostdev); `annotate` describes a running domain's
devices and sets that element through the binding; `connection` imports the binding (an optional extra) lazily.
"""
