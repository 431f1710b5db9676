"""cccd: the protocol core shared by every side of cccd-edge.

QR parsing, pseudonyms, CBOR, AES-CCM, the COSE_Encrypt0 envelope, key derivation and the message
schema. Runs under CPython and MicroPython alike: it imports nothing of the project's and only what
MicroPython also has (with the platform's AES as the one optional import).
"""
