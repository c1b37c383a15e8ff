"""C2PA Content Credentials (c2pa-python), along c2pa's own nouns.

- :mod:`~labelers.provenance.builder`: the manifest definitions (the record as
  the ``cn.tc260.aigc`` assertion, the AI-origin action, a platform's update);
- :mod:`~labelers.provenance.signer`: signing material and :class:`C2paSigner`;
- :mod:`~labelers.provenance.reader`: :func:`read_manifest` and its report;
- :mod:`~labelers.provenance.support`: what this c2pa build reads and writes.

The names below are the package's interface; the development credentials a
service uses without configured keys are the app's (``app.dev_credentials``).
"""

from labelers.provenance.builder import (
    CLAIM_GENERATOR,
    GB_ASSERTION_LABEL,
    TRAINED_ALGORITHMIC_MEDIA,
    build_manifest,
    build_update_manifest,
)
from labelers.provenance.reader import (
    UNREADABLE_CODE,
    ProvenanceReport,
    read_manifest,
    validation_word,
)
from labelers.provenance.signer import DOCUMENT_SIGNING_EKU, C2paSigner, certificate_problems
from labelers.provenance.support import supported_media_types

__all__ = [
    "CLAIM_GENERATOR",
    "DOCUMENT_SIGNING_EKU",
    "GB_ASSERTION_LABEL",
    "TRAINED_ALGORITHMIC_MEDIA",
    "UNREADABLE_CODE",
    "C2paSigner",
    "ProvenanceReport",
    "build_manifest",
    "build_update_manifest",
    "certificate_problems",
    "read_manifest",
    "supported_media_types",
    "validation_word",
]
