"""iproute2's `vdpa` command language, over devmig's vdpa backend: its command line read exactly as iproute2 reads
it, run against a `VdpaBackend`, answered as iproute2 answers (the same texts on the same streams, the same exit
codes, 1 for every failure; text and JSON byte for byte).

What iproute2 does is described as data: its options (`options`: GNU getopt_long, which permutes, so
`vdpa dev show -j` is `vdpa -j dev show`), its command tree and keyword arguments (`grammar`: which keywords it
accepts as prefixes, which it needs exactly; read by `parser` as `vdpa_argv_parse` reads them), the value parsers of
iproute2's utils (`values`: strtoul's leniency, ll_addr_a2n's MAC addresses), what each command asks the backend
(`commands`) and how the answers print (`output`: json_print over json_writer; `render`: vdpa.c's printers). `run`
puts them together as one call from argv to (stdout, stderr, exit code); the click command is devmig.cli.vdpa.

Where devmig does better, it adds and never changes: `--help`, `help` and every parse error work without a kernel
(iproute2 opens its netlink socket first); a missing family is diagnosed (the modules or kernel options needed)
instead of "Failed to connect to vdpa Netlink"; a kernel error's hint (e.g. what a missing CAP_NET_ADMIN means)
follows iproute2's two lines as "devmig: hint: ..."; a number iproute2 refuses silently gets one "devmig: " line.
The facts: the project's reference notes on iproute2's vdpa (shared/reference/vdpa-netlink.md §3) and the kernel
tier's comparison with /usr/sbin/vdpa.
"""
