"""The distribution protocol: tag lists, manifests, blobs, authentication and a manifest store."""

from matrix.registry.client import (
    Descriptor,
    RateLimit,
    RegistryClient,
    RetryPolicy,
    TagList,
)
from matrix.registry.credentials import Credentials, CredentialStore
from matrix.registry.manifest import Manifest
from matrix.registry.store import ManifestStore

__all__ = [
    "CredentialStore",
    "Credentials",
    "Descriptor",
    "Manifest",
    "ManifestStore",
    "RateLimit",
    "RegistryClient",
    "RetryPolicy",
    "TagList",
]
