"""devmig in mdevctl's hands: the callout mdevctl runs around its operations (`callout`), and its drop-in in
mdevctl's callout directory (`install`). mdevctl's own JSON formats are devmig.host.mdevctl's."""
