"""The outside world, simulated: what cccd-edge is tested against.

- ``sim.citizens``: synthetic citizens (never a real person's data, deterministic from a seed), their
  CCCD / Căn cước / VNeID / BHYT QR codes and the ways scanners damage them;
- simulated reader nodes, the fake BHXH gateway, the fake HIS and the virtual CCCD chip.

``sim`` may import ``cccd`` (it speaks the protocol like any node or gateway would), but never
``collector`` or ``agent``: it tests them from the outside, through the wire contract only.
"""
