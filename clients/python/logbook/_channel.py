"""Where and how a client connects: the address, TLS and the call metadata
(bearer token, tenant) every call carries."""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

import grpc


def _read(path: Optional[str]) -> Optional[bytes]:
    if not path:
        return None
    with open(path, "rb") as f:
        return f.read()


@dataclass(frozen=True)
class ConnectOptions:
    address: str = "127.0.0.1:50051"
    token: Optional[str] = None   # Sent as "authorization: Bearer <token>".
    tenant: Optional[str] = None  # For a cross-tenant principal ("logbook-tenant").
    tls_ca: Optional[str] = None  # PEM file of CAs to trust: speak TLS.
    tls_cert: Optional[str] = None  # PEM client certificate (mTLS), with tls_key.
    tls_key: Optional[str] = None
    timeout: float = 30.0         # Seconds before a unary call gives up.

    @property
    def tls(self) -> bool:
        return bool(self.tls_ca or self.tls_cert)

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(root_certificates=_read(self.tls_ca),
                                            private_key=_read(self.tls_key),
                                            certificate_chain=_read(self.tls_cert))

    def metadata(self) -> List[Tuple[str, str]]:
        out = []
        if self.token:
            out.append(("authorization", f"Bearer {self.token}"))
        if self.tenant:
            out.append(("logbook-tenant", self.tenant))
        return out


# gRPC status codes after which a call is worth making again: the server or
# the network went away, or the server is shutting down.
RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
