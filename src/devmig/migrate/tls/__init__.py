"""The migration channel's authentication: mutual TLS 1.3 with certificates, or with a pre-shared key.

- channel.py: one side's credentials (`TlsConfig`, from libvirt's file layout, PEM files or a pre-shared key), the
  handshakes and the receiver's admission line, and what a failed handshake means (`HandshakeError`).
- psk.py: the pre-shared key: reading the key file, the CA both sides derive from it, each side's ephemeral
  certificate.
- settings.py: how the channel is chosen: the command line's options over a config file's keys (`Settings`).
"""
