"""The CPython agent for Raspberry Pi reader nodes: QR scanners and NFC chip readers (issue 7)."""
