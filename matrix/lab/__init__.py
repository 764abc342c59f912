"""The offline lab: real registries in the roles of Docker Hub and GHCR, and real Docker engines.

Parts run as background processes owned by the lab; what runs where is written to a state file
in the lab directory, so `lab status` and `lab down` work from another process.
"""
