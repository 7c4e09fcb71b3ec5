#!/usr/bin/env python3
"""DIDComm v2 interop oracle backed by the reference Python library.

Drives PyPI ``didcomm`` 0.3.2 (SICPA didcomm-python) over a line protocol:
one JSON request per line on stdin, one JSON response per line on stdout,
until EOF.  Every request is answered; a bad request yields
``{"ok": false, "error": "<ExceptionClass>: <message>", ...}`` and the oracle
keeps going.  See README.md next to this file for the full protocol.

Only the library's own pack/unpack functions produce and consume messages.
What this file adds is glue the library does not ship:

* DID documents given as W3C JSON (DID Core / DIDComm v2.1 service shape, or
  the older flat service shape) are normalised into the library's ``DIDDoc``
  (a pydid ``DIDDocument``): every verification method becomes
  ``JsonWebKey2020`` with a public JWK (same id), embedded methods are moved to
  ``verificationMethod`` and referenced by absolute id, relative ids are made
  absolute, and services are rewritten into the flat shape the library reads
  (``serviceEndpoint`` string + ``routingKeys`` + ``accept``).
* DIDs not given in ``dids`` are resolved locally when possible:
  ``did:key`` (Ed25519 with derived X25519, X25519, P-256, secp256k1),
  ``did:peer:0`` (same as did:key) and ``did:peer:2`` (current spec: key ids
  ``#key-N``, service ids ``#service``, ``#service-1``, ...).
* Secrets are private JWKs with an absolute ``kid``.  For an Ed25519 secret
  whose kid is ``did:key:z6Mk..#z6Mk..`` the matching X25519 secret
  ``did:key:z6Mk..#z6LS..`` is derived automatically if not given.

Importable: ``import didcomm_oracle`` gives other scripts in this directory
(e.g. ``mediator_client.py``) the same glue (``OracleDIDResolver``,
``normalize_doc``, ``build_secrets``, ``multikey_encode``, ...) with no side
effect on their stdout; the line protocol only runs under ``__main__``.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import dataclasses
import enum
import hashlib
import io
import json
import sys
import traceback
import warnings

warnings.simplefilter("ignore")

# Keep the protocol channel clean: anything a library prints goes to stderr.
# Only when run as the oracle: importing this file as a module (for its glue:
# resolver, DID-doc normalisation, secrets) leaves the importer's stdout alone.
_PROTO_OUT = sys.stdout
if __name__ == "__main__":
    sys.stdout = sys.stderr

try:  # Authlib forces its deprecation warnings to "always"; undo that.
    import authlib.deprecate as _authlib_deprecate  # noqa: E402

    warnings.simplefilter("ignore", _authlib_deprecate.AuthlibDeprecationWarning)
except Exception:  # pragma: no cover
    pass

import base58  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, x25519  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402

import didcomm  # noqa: E402
from didcomm import (  # noqa: E402
    AnonCryptAlg,
    AuthCryptAlg,
    DIDCommService,
    DIDDoc,
    DIDResolver,
    PackEncryptedConfig,
    PackEncryptedParameters,
    PackPlaintextParameters,
    PackSignedParameters,
    ResolversConfig,
    SecretsResolverInMemory,
    UnpackConfig,
    Message,
    pack_encrypted,
    pack_plaintext,
    pack_signed,
    unpack,
    unpack_forward,
    wrap_in_forward,
)
from didcomm.secrets.secrets_util import jwk_to_secret  # noqa: E402

try:  # the package's __version__ says 0.3.1 even in 0.3.2; ask the metadata
    from importlib.metadata import version as _dist_version

    DIDCOMM_VERSION = _dist_version("didcomm")
    AUTHLIB_VERSION = _dist_version("Authlib")
    PYDID_VERSION = _dist_version("pydid")
except Exception:  # pragma: no cover
    DIDCOMM_VERSION = getattr(didcomm, "__version__", "?")
    AUTHLIB_VERSION = PYDID_VERSION = "?"


class OracleError(ValueError):
    """Bad request or unsupported input detected by the oracle itself."""


# Non-fatal notes about the current request (e.g. skipped key material);
# returned as "warnings" in the response when non-empty.
WARNINGS: list = []


# ---------------------------------------------------------------------------
# encoding helpers


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64u_dec(s: str) -> bytes:
    s = s.strip()
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def varint_decode(data: bytes):
    value = 0
    shift = 0
    for i, b in enumerate(data):
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, data[i + 1 :]
        shift += 7
        if i > 8:
            break
    raise OracleError("invalid multicodec varint")


def varint_encode(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def multibase_decode(s: str) -> bytes:
    if not s:
        raise OracleError("empty multibase value")
    prefix, rest = s[0], s[1:]
    if prefix == "z":
        return base58.b58decode(rest)
    if prefix == "u":
        return b64u_dec(rest)
    if prefix == "f":
        return bytes.fromhex(rest)
    raise OracleError(f"unsupported multibase prefix {prefix!r} in {s!r}")


MC_ED25519_PUB = 0xED
MC_X25519_PUB = 0xEC
MC_P256_PUB = 0x1200
MC_P384_PUB = 0x1201
MC_P521_PUB = 0x1202
MC_SECP256K1_PUB = 0xE7
MC_ED25519_PRIV = 0x1300
MC_X25519_PRIV = 0x1302
MC_P256_PRIV = 0x1306
MC_SECP256K1_PRIV = 0x1301


def multikey_encode(codec: int, raw: bytes) -> str:
    return "z" + base58.b58encode(varint_encode(codec) + raw).decode("ascii")


# ---------------------------------------------------------------------------
# key conversions

_P = 2**255 - 19


def ed25519_pub_to_x25519(pub: bytes) -> bytes:
    """Birational map Edwards25519 -> Curve25519, u = (1 + y) / (1 - y)."""
    if len(pub) != 32:
        raise OracleError("Ed25519 public key must be 32 bytes")
    y = int.from_bytes(pub, "little") & ((1 << 255) - 1)
    u = ((1 + y) * pow((1 - y) % _P, _P - 2, _P)) % _P
    return u.to_bytes(32, "little")


def ed25519_seed_to_x25519(seed: bytes) -> bytes:
    h = bytearray(hashlib.sha512(seed).digest()[:32])
    h[0] &= 248
    h[31] &= 127
    h[31] |= 64
    return bytes(h)


def _ec_curve(name: str):
    return {
        "P-256": ec.SECP256R1(),
        "P-384": ec.SECP384R1(),
        "P-521": ec.SECP521R1(),
        "secp256k1": ec.SECP256K1(),
    }[name]


def ec_point_to_jwk(crv: str, point: bytes) -> dict:
    pub = ec.EllipticCurvePublicKey.from_encoded_point(_ec_curve(crv), point)
    nums = pub.public_numbers()
    size = (pub.curve.key_size + 7) // 8
    return {
        "kty": "EC",
        "crv": crv,
        "x": b64u(nums.x.to_bytes(size, "big")),
        "y": b64u(nums.y.to_bytes(size, "big")),
    }


def multicodec_pub_to_jwk(data: bytes) -> dict:
    codec, raw = varint_decode(data)
    if codec == MC_ED25519_PUB:
        return {"kty": "OKP", "crv": "Ed25519", "x": b64u(raw)}
    if codec == MC_X25519_PUB:
        return {"kty": "OKP", "crv": "X25519", "x": b64u(raw)}
    if codec == MC_P256_PUB:
        return ec_point_to_jwk("P-256", raw)
    if codec == MC_P384_PUB:
        return ec_point_to_jwk("P-384", raw)
    if codec == MC_P521_PUB:
        return ec_point_to_jwk("P-521", raw)
    if codec == MC_SECP256K1_PUB:
        return ec_point_to_jwk("secp256k1", raw)
    raise OracleError(f"unsupported multicodec 0x{codec:x} for a public key")


def raw_or_multicodec_to_jwk(data: bytes, vm_type: str) -> dict:
    """Values of the *2018/*2019/*2020 suites: raw 32 bytes or multicodec."""
    if len(data) == 32:
        crv = "X25519" if vm_type.startswith("X25519") else "Ed25519"
        return {"kty": "OKP", "crv": crv, "x": b64u(data)}
    return multicodec_pub_to_jwk(data)


_PUBLIC_JWK_FIELDS = ("kty", "crv", "x", "y", "n", "e")


def vm_to_public_jwk(vm: dict) -> dict:
    vm_type = vm.get("type")
    if isinstance(vm_type, list):
        vm_type = vm_type[0]
    vm_type = vm_type or ""
    if isinstance(vm.get("publicKeyJwk"), dict):
        jwk = {k: v for k, v in vm["publicKeyJwk"].items() if k in _PUBLIC_JWK_FIELDS}
        return jwk
    if isinstance(vm.get("publicKeyMultibase"), str):
        data = multibase_decode(vm["publicKeyMultibase"])
        if vm_type in ("Multikey", "JsonWebKey2020", "JsonWebKey"):
            return multicodec_pub_to_jwk(data)
        return raw_or_multicodec_to_jwk(data, vm_type)
    if isinstance(vm.get("publicKeyBase58"), str):
        data = base58.b58decode(vm["publicKeyBase58"])
        return raw_or_multicodec_to_jwk(data, vm_type)
    if isinstance(vm.get("publicKeyHex"), str) and "Secp256k1" in vm_type:
        return ec_point_to_jwk("secp256k1", bytes.fromhex(vm["publicKeyHex"]))
    raise OracleError(
        f"verification method {vm.get('id')!r} of type {vm_type!r} has no supported key material"
    )


# ---------------------------------------------------------------------------
# DID document normalisation

_RELATIONSHIPS = (
    "authentication",
    "keyAgreement",
    "assertionMethod",
    "capabilityInvocation",
    "capabilityDelegation",
)


def absolutize(did: str, ref: str) -> str:
    if not isinstance(ref, str):
        raise OracleError(f"expected a DID URL string, got {ref!r}")
    if ref.startswith("#") or ref.startswith("?") or ref.startswith("/"):
        return did + ref
    return ref


def _service_types(svc: dict):
    t = svc.get("type")
    return t if isinstance(t, list) else [t]


def _flat_service(did, sid, uri, routing_keys, accept):
    if not isinstance(uri, str) or not uri:
        raise OracleError(f"service {sid!r}: cannot find a uri in serviceEndpoint")
    return {
        "id": sid,
        "type": "DIDCommMessaging",
        "serviceEndpoint": uri,
        "routingKeys": [absolutize(did, k) for k in (routing_keys or [])],
        # The library does `"didcomm/v2" in service.accept` with no None check;
        # a missing accept list means "sender's choice", so default it.
        "accept": list(accept) if accept else ["didcomm/v2"],
    }


def normalize_services(did: str, services) -> list:
    out = []
    for idx, svc in enumerate(services or []):
        if not isinstance(svc, dict):
            continue
        if "DIDCommMessaging" not in _service_types(svc):
            continue  # the library would choke on other service kinds
        sid = absolutize(did, svc.get("id") or ("#service" if idx == 0 else f"#service-{idx}"))
        se = svc.get("serviceEndpoint")
        entries = se if isinstance(se, list) else [se]
        for n, entry in enumerate(entries):
            this_id = sid if n == 0 else f"{sid}-{n}"
            if isinstance(entry, dict):
                out.append(
                    _flat_service(
                        did,
                        this_id,
                        entry.get("uri"),
                        entry.get("routingKeys", svc.get("routingKeys")),
                        entry.get("accept", svc.get("accept")),
                    )
                )
            else:
                out.append(
                    _flat_service(
                        did, this_id, entry, svc.get("routingKeys"), svc.get("accept")
                    )
                )
    return out


def normalize_doc(doc: dict) -> dict:
    """W3C DID doc JSON -> the JSON shape that didcomm 0.3.2's DIDDoc can use."""
    if not isinstance(doc, dict) or not isinstance(doc.get("id"), str):
        raise OracleError("a DID document must be a JSON object with a string 'id'")
    did = doc["id"]
    vms = {}
    order = []

    def add_vm(vm: dict) -> str:
        if not isinstance(vm, dict) or "id" not in vm:
            raise OracleError(f"verification method without id in {did}")
        vid = absolutize(did, vm["id"])
        controller = vm.get("controller", did)
        if isinstance(controller, list):
            controller = controller[0]
        if vid not in vms:
            try:
                jwk = vm_to_public_jwk(vm)
            except Exception as exc:  # skip it, but say so in the response
                WARNINGS.append(f"skipped verification method {vid}: {exc}")
                return vid
            vms[vid] = {
                "id": vid,
                "type": "JsonWebKey2020",
                "controller": controller,
                "publicKeyJwk": jwk,
            }
            order.append(vid)
        return vid

    for vm in doc.get("verificationMethod") or doc.get("publicKey") or []:
        add_vm(vm)

    out = {"id": did, "verificationMethod": None}
    for rel in _RELATIONSHIPS:
        refs = []
        for item in doc.get(rel) or []:
            ref = add_vm(item) if isinstance(item, dict) else absolutize(did, item)
            if ref in vms:
                refs.append(ref)
            elif not any(ref in w for w in WARNINGS):
                # the library only looks verification methods up in the same doc
                WARNINGS.append(f"dropped {rel} reference {ref}: not a usable method of {did}")
        out[rel] = refs
    out["verificationMethod"] = [vms[v] for v in order]
    out["service"] = normalize_services(did, doc.get("service"))
    if doc.get("alsoKnownAs"):
        out["alsoKnownAs"] = doc["alsoKnownAs"]
    return out


def did_doc_from_normalized(norm: dict) -> DIDDoc:
    norm = copy.deepcopy(norm)
    services = norm.pop("service", [])
    dd = DIDDoc.deserialize(norm)
    # Services are built without pydantic validation: pydid's DIDCommService
    # (what the library reads: .accept/.service_endpoint/.routing_keys) rejects
    # routing keys that are bare DIDs and silently degrades to UnknownService.
    dd.__dict__["service"] = [
        DIDCommService.construct(
            id=s["id"],
            type=s["type"],
            service_endpoint=s["serviceEndpoint"],
            routing_keys=list(s["routingKeys"]),
            accept=list(s["accept"]),
            recipient_keys=[],
            priority=0,
        )
        for s in services
    ]
    return dd


# ---------------------------------------------------------------------------
# local resolution of did:key / did:peer:0 / did:peer:2


def did_key_doc(did: str, mb: str) -> dict:
    """did:key (and did:peer:0) document per the did:key spec."""
    data = multibase_decode(mb)
    codec, raw = varint_decode(data)
    vm_id = f"{did}#{mb}"
    if codec == MC_ED25519_PUB:
        x_mb = multikey_encode(MC_X25519_PUB, ed25519_pub_to_x25519(raw))
        x_id = f"{did}#{x_mb}"
        return {
            "id": did,
            "verificationMethod": [
                {"id": vm_id, "type": "Multikey", "controller": did, "publicKeyMultibase": mb},
                {"id": x_id, "type": "Multikey", "controller": did, "publicKeyMultibase": x_mb},
            ],
            "authentication": [vm_id],
            "assertionMethod": [vm_id],
            "capabilityInvocation": [vm_id],
            "capabilityDelegation": [vm_id],
            "keyAgreement": [x_id],
        }
    if codec == MC_X25519_PUB:
        return {
            "id": did,
            "verificationMethod": [
                {"id": vm_id, "type": "Multikey", "controller": did, "publicKeyMultibase": mb}
            ],
            "keyAgreement": [vm_id],
        }
    if codec in (MC_P256_PUB, MC_P384_PUB, MC_P521_PUB, MC_SECP256K1_PUB):
        return {
            "id": did,
            "verificationMethod": [
                {"id": vm_id, "type": "Multikey", "controller": did, "publicKeyMultibase": mb}
            ],
            "authentication": [vm_id],
            "assertionMethod": [vm_id],
            "capabilityInvocation": [vm_id],
            "capabilityDelegation": [vm_id],
            "keyAgreement": [vm_id],
        }
    raise OracleError(f"unsupported did:key multicodec 0x{codec:x}")


_PEER2_ABBR_KEYS = {"t": "type", "s": "serviceEndpoint", "r": "routingKeys", "a": "accept"}
_PEER2_ABBR_VALUES = {"dm": "DIDCommMessaging"}


def _peer2_expand(value):
    if isinstance(value, dict):
        return {_PEER2_ABBR_KEYS.get(k, k): _peer2_expand(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_peer2_expand(v) for v in value]
    if isinstance(value, str):
        return _PEER2_ABBR_VALUES.get(value, value)
    return value


_PEER2_PURPOSES = {
    "A": "assertionMethod",
    "E": "keyAgreement",
    "V": "authentication",
    "I": "capabilityInvocation",
    "D": "capabilityDelegation",
}


def did_peer2_doc(did: str) -> dict:
    """did:peer:2 per the current did:peer spec (ids #key-N, #service[-N])."""
    elements = did[len("did:peer:2") :].split(".")
    if elements[0] != "":
        raise OracleError(f"malformed did:peer:2 {did}")
    doc = {"id": did, "verificationMethod": [], "service": []}
    key_n = 0
    services = []
    for el in elements[1:]:
        if not el:
            continue
        purpose, value = el[0], el[1:]
        if purpose == "S":
            svc = json.loads(b64u_dec(value))
            services.extend(svc if isinstance(svc, list) else [svc])
        elif purpose in _PEER2_PURPOSES:
            key_n += 1
            vid = f"#key-{key_n}"
            doc["verificationMethod"].append(
                {"id": vid, "type": "Multikey", "controller": did, "publicKeyMultibase": value}
            )
            doc.setdefault(_PEER2_PURPOSES[purpose], []).append(vid)
        else:
            raise OracleError(f"unknown did:peer:2 purpose code {purpose!r}")
    svc_n = 0
    for svc in services:
        svc = _peer2_expand(svc)
        if "id" not in svc:
            svc["id"] = "#service" if svc_n == 0 else f"#service-{svc_n}"
            svc_n += 1
        doc["service"].append(svc)
    return doc


def local_did_doc(did: str):
    if did.startswith("did:key:"):
        return did_key_doc(did, did[len("did:key:") :])
    if did.startswith("did:peer:0"):
        return did_key_doc(did, did[len("did:peer:0") :])
    if did.startswith("did:peer:2"):
        return did_peer2_doc(did)
    return None


class OracleDIDResolver(DIDResolver):
    """Docs given in the request first, then local did:key/did:peer:0/2."""

    def __init__(self, docs):
        self._norm = {}
        for d in docs or []:
            if isinstance(d, str):
                d = json.loads(d)
            n = normalize_doc(d)
            self._norm[n["id"]] = n
        self._docs = {}

    def normalized(self, did):
        did = str(did)
        if did not in self._norm:
            raw = local_did_doc(did)
            self._norm[did] = normalize_doc(raw) if raw is not None else None
        return self._norm[did]

    async def resolve(self, did):
        did = str(did)
        if did not in self._docs:
            n = self.normalized(did)
            self._docs[did] = did_doc_from_normalized(n) if n is not None else None
        return self._docs[did]


# ---------------------------------------------------------------------------
# secrets


def _complete_private_jwk(jwk: dict) -> dict:
    jwk = dict(jwk)
    if "kid" not in jwk or not isinstance(jwk["kid"], str):
        raise OracleError("every secret must be a private JWK with a string 'kid'")
    if "d" not in jwk:
        raise OracleError(f"secret {jwk['kid']} has no private part 'd'")
    if jwk.get("kty") == "OKP" and "x" not in jwk:
        d = b64u_dec(jwk["d"])
        if jwk.get("crv") == "Ed25519":
            pub = ed25519.Ed25519PrivateKey.from_private_bytes(d).public_key()
        elif jwk.get("crv") == "X25519":
            pub = x25519.X25519PrivateKey.from_private_bytes(d).public_key()
        else:
            raise OracleError(f"unsupported OKP curve {jwk.get('crv')}")
        jwk["x"] = b64u(
            pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        )
    if jwk.get("kty") == "EC" and ("x" not in jwk or "y" not in jwk):
        priv = ec.derive_private_key(int.from_bytes(b64u_dec(jwk["d"]), "big"), _ec_curve(jwk["crv"]))
        nums = priv.public_key().public_numbers()
        size = (priv.curve.key_size + 7) // 8
        jwk["x"] = b64u(nums.x.to_bytes(size, "big"))
        jwk["y"] = b64u(nums.y.to_bytes(size, "big"))
    return jwk


def _secret_from_multibase(s: dict) -> dict:
    data = multibase_decode(s["privateKeyMultibase"])
    codec, raw = varint_decode(data)
    if codec == MC_ED25519_PRIV:
        return {"kty": "OKP", "crv": "Ed25519", "d": b64u(raw[:32]), "kid": s["kid"] if "kid" in s else s["id"]}
    if codec == MC_X25519_PRIV:
        return {"kty": "OKP", "crv": "X25519", "d": b64u(raw[:32]), "kid": s["kid"] if "kid" in s else s["id"]}
    if codec == MC_P256_PRIV:
        return {"kty": "EC", "crv": "P-256", "d": b64u(raw), "kid": s["kid"] if "kid" in s else s["id"]}
    if codec == MC_SECP256K1_PRIV:
        return {"kty": "EC", "crv": "secp256k1", "d": b64u(raw), "kid": s["kid"] if "kid" in s else s["id"]}
    raise OracleError(f"unsupported private multicodec 0x{codec:x}")


def build_secrets(raw_secrets):
    jwks = []
    for s in raw_secrets or []:
        if isinstance(s, str):
            s = json.loads(s)
        if not isinstance(s, dict):
            raise OracleError("a secret must be a JSON object (private JWK with kid)")
        if "privateKeyMultibase" in s:
            s = _secret_from_multibase(s)
        elif "privateKeyJwk" in s:  # {"id"/"kid": ..., "privateKeyJwk": {...}}
            s = dict(s["privateKeyJwk"], kid=s.get("kid") or s.get("id"))
        jwks.append(_complete_private_jwk(s))
    kids = {j["kid"] for j in jwks}
    derived = []
    for j in jwks:
        # did:key Ed25519 identity: derive the X25519 key agreement secret.
        kid = j["kid"]
        if (
            j.get("kty") == "OKP"
            and j.get("crv") == "Ed25519"
            and kid.startswith("did:key:z6Mk")
            and "#" in kid
        ):
            did = kid.split("#", 1)[0]
            ed_pub = b64u_dec(j["x"])
            x_mb = multikey_encode(MC_X25519_PUB, ed25519_pub_to_x25519(ed_pub))
            x_kid = f"{did}#{x_mb}"
            if x_kid not in kids:
                x_d = ed25519_seed_to_x25519(b64u_dec(j["d"]))
                derived.append(_complete_private_jwk(
                    {"kty": "OKP", "crv": "X25519", "d": b64u(x_d), "kid": x_kid}
                ))
                kids.add(x_kid)
    return SecretsResolverInMemory([jwk_to_secret(j) for j in jwks + derived])


def resolvers_for(req: dict) -> ResolversConfig:
    return ResolversConfig(
        secrets_resolver=build_secrets(req.get("secrets")),
        did_resolver=OracleDIDResolver(req.get("dids")),
    )


# ---------------------------------------------------------------------------
# JSON conversion of results


def to_json(value):
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        return str(value)  # DIDUrl / DID / AnyUrl are str subclasses
    if isinstance(value, (bytes, bytearray)):
        return value.decode("utf-8", "replace")
    if isinstance(value, (AnonCryptAlg, AuthCryptAlg)):
        return {"alg": value.value.alg, "enc": value.value.enc}
    if isinstance(value, enum.Enum):
        return to_json(value.value)
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if dataclasses.is_dataclass(value):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if hasattr(value, "as_dict"):
        return to_json(value.as_dict())
    return str(value)


def _json_arg(value, what):
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise OracleError(f"'{what}' is not valid JSON") from exc
    if not isinstance(value, dict):
        raise OracleError(f"'{what}' must be a JSON object")
    return copy.deepcopy(value)


_ANON_ALGS = {
    "A256CBC-HS512": AnonCryptAlg.A256CBC_HS512_ECDH_ES_A256KW,
    "XC20P": AnonCryptAlg.XC20P_ECDH_ES_A256KW,
    "A256GCM": AnonCryptAlg.A256GCM_ECDH_ES_A256KW,
}
_AUTH_ALGS = {"A256CBC-HS512": AuthCryptAlg.A256CBC_HS512_ECDH_1PU_A256KW}


def _anon_alg(name):
    if name is None:
        return None
    if name in _ANON_ALGS:
        return _ANON_ALGS[name]
    if name.startswith("ECDH-ES+A256KW/") and name.split("/", 1)[1] in _ANON_ALGS:
        return _ANON_ALGS[name.split("/", 1)[1]]
    raise OracleError(f"unsupported enc_alg_anon {name!r}; use one of {sorted(_ANON_ALGS)}")


def _auth_alg(name):
    if name is None:
        return None
    if name in _AUTH_ALGS:
        return _AUTH_ALGS[name]
    raise OracleError(f"unsupported enc_alg_auth {name!r}; only A256CBC-HS512")


def _plain_deserializer(d: dict):
    # Validate with the library's own plaintext model, return the JSON as is.
    Message.from_dict(copy.deepcopy(d))
    return d


# ---------------------------------------------------------------------------
# operations


async def op_pack_plaintext(req):
    res = await pack_plaintext(
        resolvers_for(req),
        _json_arg(req.get("message"), "message"),
        PackPlaintextParameters(from_prior_issuer_kid=req.get("from_prior_issuer_kid")),
    )
    return {
        "packed": res.packed_msg,
        "metadata": {"from_prior_issuer_kid": to_json(res.from_prior_issuer_kid)},
    }


async def op_pack_signed(req):
    if not req.get("sign_by"):
        raise OracleError("pack_signed needs 'sign_by'")
    res = await pack_signed(
        resolvers_for(req),
        _json_arg(req.get("message"), "message"),
        req["sign_by"],
        PackSignedParameters(from_prior_issuer_kid=req.get("from_prior_issuer_kid")),
    )
    return {
        "packed": res.packed_msg,
        "metadata": {
            "sign_from_kid": to_json(res.sign_from_kid),
            "from_prior_issuer_kid": to_json(res.from_prior_issuer_kid),
        },
    }


async def op_pack_encrypted(req):
    if not req.get("to"):
        raise OracleError("pack_encrypted needs 'to'")
    config = PackEncryptedConfig(
        protect_sender_id=bool(req.get("protect_sender", False)),
        forward=bool(req.get("forward", True)),
    )
    if req.get("enc_alg_anon") is not None:
        config.enc_alg_anon = _anon_alg(req["enc_alg_anon"])
    if req.get("enc_alg_auth") is not None:
        config.enc_alg_auth = _auth_alg(req["enc_alg_auth"])
    params = PackEncryptedParameters(
        forward_headers=req.get("forward_headers"),
        forward_service_id=req.get("forward_service_id"),
        from_prior_issuer_kid=req.get("from_prior_issuer_kid"),
    )
    res = await pack_encrypted(
        resolvers_for(req),
        _json_arg(req.get("message"), "message"),
        to=req["to"],
        frm=req.get("from"),
        sign_frm=req.get("sign_by"),
        pack_config=config,
        pack_params=params,
    )
    sm = res.service_metadata
    return {
        "packed": res.packed_msg,
        "metadata": {
            "to_kids": to_json(res.to_kids),
            "from_kid": to_json(res.from_kid),
            "sign_from_kid": to_json(res.sign_from_kid),
            "from_prior_issuer_kid": to_json(res.from_prior_issuer_kid),
            "service_metadata": None
            if sm is None
            else {"id": to_json(sm.id), "service_endpoint": to_json(sm.service_endpoint)},
        },
    }


def _packed_arg(req):
    packed = req.get("packed")
    if isinstance(packed, (dict, str)):
        return packed
    raise OracleError("'packed' must be a JSON string or object")


async def op_unpack(req):
    config = UnpackConfig(
        expect_decrypt_by_all_keys=bool(req.get("expect_decrypt_by_all_keys", False)),
        unwrap_re_wrapping_forward=bool(req.get("unwrap_re_wrapping_forward", True)),
    )
    res = await unpack(
        resolvers_for(req), _packed_arg(req), config, deserializer=_plain_deserializer
    )
    return {"message": to_json(res.message), "metadata": to_json(res.metadata)}


async def op_unpack_forward(req):
    res = await unpack_forward(
        resolvers_for(req),
        _packed_arg(req),
        bool(req.get("expect_decrypt_by_all_keys", False)),
    )
    fwd = res.forward_msg
    return {
        "next": to_json(fwd.body.next),
        "forwarded": to_json(res.forwarded_msg),
        "forwarded_packed": json.dumps(res.forwarded_msg),
        "forward_message": to_json(fwd.as_dict()),
        "metadata": {"encrypted_to": to_json(res.forwarded_msg_encrypted_to)},
    }


async def op_wrap_in_forward(req):
    if not req.get("to"):
        raise OracleError("wrap_in_forward needs 'to'")
    routing_keys = req.get("routing_keys") or []
    res = await wrap_in_forward(
        resolvers_config=resolvers_for(req),
        packed_msg=_json_arg(req.get("packed"), "packed"),
        to=req["to"],
        routing_keys=routing_keys,
        enc_alg_anon=_anon_alg(req.get("enc_alg_anon") or "XC20P"),
        headers=req.get("headers"),
    )
    if res is None:
        return {"packed": None, "metadata": {"to_kids": []}}
    return {
        "packed": json.dumps(res.msg_encrypted.msg),
        "metadata": {
            "to_kids": to_json(res.msg_encrypted.to_kids),
            "forward_message": to_json(res.msg.as_dict()),
        },
    }


async def op_resolve(req):
    if not req.get("did"):
        raise OracleError("resolve needs 'did'")
    # The normalised form is exactly what the library is given.
    return {"doc": OracleDIDResolver(req.get("dids")).normalized(req["did"])}


async def op_version(req):
    return {
        "didcomm": DIDCOMM_VERSION,
        "authlib": AUTHLIB_VERSION,
        "pydid": PYDID_VERSION,
        "python": sys.version.split()[0],
    }


OPS = {
    "pack_plaintext": op_pack_plaintext,
    "pack_signed": op_pack_signed,
    "pack_encrypted": op_pack_encrypted,
    "unpack": op_unpack,
    "unpack_forward": op_unpack_forward,
    "wrap_in_forward": op_wrap_in_forward,
    "resolve": op_resolve,
    "version": op_version,
}


def _exc_text(exc: BaseException) -> str:
    msg = getattr(exc, "message", None)  # didcomm errors keep it here
    if not msg:
        msg = str(exc)
    code = getattr(exc, "code", None)
    if isinstance(code, enum.Enum):
        msg = f"{code.name}: {msg}"
    return f"{type(exc).__name__}: {msg}"


async def handle(line: str) -> dict:
    req_id = None
    WARNINGS.clear()
    try:
        req = json.loads(line)
        if not isinstance(req, dict):
            raise OracleError("request must be a JSON object")
        req_id = req.get("id")
        op = req.get("op")
        if op not in OPS:
            raise OracleError(f"unknown op {op!r}; known: {sorted(OPS)}")
        result = await OPS[op](req)
        resp = {"ok": True}
        resp.update(result)
    except Exception as exc:  # never die on a bad request
        causes = []
        c = exc.__cause__ or exc.__context__
        while c is not None and len(causes) < 4:
            causes.append(_exc_text(c))
            c = c.__cause__ or c.__context__
        resp = {"ok": False, "error": _exc_text(exc), "causes": causes}
        if "--debug" in sys.argv:
            traceback.print_exc(file=sys.stderr)
    if WARNINGS:
        resp["warnings"] = list(WARNINGS)
    if req_id is not None:
        resp["id"] = req_id
    return resp


def main() -> int:
    stdin = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", newline=None)
    loop = asyncio.new_event_loop()
    try:
        while True:
            line = stdin.readline()
            if not line:
                break
            if not line.strip():
                continue
            resp = loop.run_until_complete(handle(line))
            try:
                out = json.dumps(resp, ensure_ascii=False)
            except Exception as exc:  # pragma: no cover - defensive
                out = json.dumps({"ok": False, "error": _exc_text(exc), "id": resp.get("id")})
            _PROTO_OUT.write(out + "\n")
            _PROTO_OUT.flush()
    finally:
        loop.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
