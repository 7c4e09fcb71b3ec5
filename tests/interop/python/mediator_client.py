#!/usr/bin/env python3
"""A DIDComm v2 client nobody here wrote, driving the didmpc mediator.

    mediator_client.py http://127.0.0.1:7080

Every DIDComm message is packed and unpacked by PyPI ``didcomm`` 0.3.2 (SICPA
didcomm-python): ``pack_encrypted`` (authcrypt, anoncrypt(authcrypt), signed,
and Routing 2.0 forward wrapping done by the library from the recipient's DID
document) and ``unpack`` (which also validates every plaintext the mediator
sends against the library's message model).  Transport is ``httpx`` (POST
/didcomm) and ``websockets`` (/ws, one message per text frame).  The glue the
library lacks (did:key / did:peer:2 resolution, secrets from JWKs) is imported
from ``didcomm_oracle.py`` next to this file.

Parties, all created fresh here from Ed25519/X25519 keys made by
``cryptography``:

* alice: a did:key client that gets mediation; she registers ``alice_peer``, a
  did:peer:2 whose DIDComm service is the mediator's HTTP endpoint with
  ``routingKeys`` = [the mediator's keyAgreement key], so a sender's library
  wraps what it packs for alice_peer in a Forward to the mediator;
  ``alice_second`` is a second did:peer:2 registered through CM 3.0;
* bob: a did:key sender;
* charlie (never registered) and mallory (never granted) for negative checks.

Output: one JSON line per step on stdout,
``{"step": "...", "ok": true|false, "detail": ...}``.  The run stops at the
first failed step and exits 1; it exits 0 when every step passed.  Library
noise goes to stderr.
"""

from __future__ import annotations

import sys

# One JSON line per step on the real stdout; anything a library prints goes to stderr.
_OUT = sys.stdout
sys.stdout = sys.stderr

import asyncio  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
import uuid  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import didcomm_oracle as glue  # noqa: E402  (resolver, secrets, multikey helpers)
import httpx  # noqa: E402
import websockets  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ed25519, x25519  # noqa: E402
from cryptography.hazmat.primitives.serialization import (  # noqa: E402
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from didcomm import (  # noqa: E402
    Message,
    PackEncryptedConfig,
    ResolversConfig,
    pack_encrypted,
    unpack,
)

ROUTING = "https://didcomm.org/routing/2.0"
COORD2 = "https://didcomm.org/coordinate-mediation/2.0"
COORD3 = "https://didcomm.org/coordinate-mediation/3.0"
PICKUP = "https://didcomm.org/messagepickup/3.0"
PING = "https://didcomm.org/trust-ping/2.0"
DISCOVER = "https://didcomm.org/discover-features/2.0"
PROBLEM = "https://didcomm.org/report-problem/2.0/problem-report"
OOB = "https://didcomm.org/out-of-band/2.0/invitation"
NOTE = "https://didmpc.dev/protocols/interop-note/1.0/note"

TIMEOUT = 15.0
ENCRYPTED = "application/didcomm-encrypted+json"


class StepFailed(Exception):
    pass


def emit(step: str, ok: bool, detail) -> None:
    _OUT.write(json.dumps({"step": step, "ok": ok, "detail": detail}) + "\n")
    _OUT.flush()


def expect(cond, what: str) -> None:
    if not cond:
        raise AssertionError(what)


async def step(name: str, fn):
    """Runs one step; prints its line; stops the run on failure."""
    try:
        detail = await fn()
    except Exception as exc:  # report, then abort the scenario
        traceback.print_exc(file=sys.stderr)
        emit(name, False, f"{type(exc).__name__}: {exc}")
        raise StepFailed(name) from exc
    emit(name, True, detail)
    return detail


# ---------------------------------------------------------------------------
# identities


def _raw_pub(key) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def _raw_priv(key) -> bytes:
    return key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())


def new_did_key():
    """A fresh Ed25519 did:key; its X25519 secret is derived by glue.build_secrets."""
    sk = ed25519.Ed25519PrivateKey.generate()
    pub = _raw_pub(sk)
    mb = glue.multikey_encode(glue.MC_ED25519_PUB, pub)
    did = f"did:key:{mb}"
    jwk = {"kty": "OKP", "crv": "Ed25519", "x": glue.b64u(pub), "d": glue.b64u(_raw_priv(sk)), "kid": f"{did}#{mb}"}
    return did, [jwk]


def new_did_peer2(service: dict):
    """A fresh did:peer:2 (E = X25519 #key-1, V = Ed25519 #key-2, one service)."""
    xk = x25519.X25519PrivateKey.generate()
    ek = ed25519.Ed25519PrivateKey.generate()
    e = glue.multikey_encode(glue.MC_X25519_PUB, _raw_pub(xk))
    v = glue.multikey_encode(glue.MC_ED25519_PUB, _raw_pub(ek))
    s = glue.b64u(json.dumps(service, separators=(",", ":")).encode())
    did = f"did:peer:2.E{e}.V{v}.S{s}"
    jwks = [
        {"kty": "OKP", "crv": "X25519", "x": glue.b64u(_raw_pub(xk)), "d": glue.b64u(_raw_priv(xk)), "kid": f"{did}#key-1"},
        {"kty": "OKP", "crv": "Ed25519", "x": glue.b64u(_raw_pub(ek)), "d": glue.b64u(_raw_priv(ek)), "kid": f"{did}#key-2"},
    ]
    return did, jwks


class Party:
    """A DID (plus any extra DIDs it owns) and the library's resolvers for it."""

    def __init__(self, label: str, did: str, jwks: list, resolver):
        self.label = label
        self.did = did
        self.jwks = list(jwks)
        self.resolver = resolver
        self._rebuild()

    def own(self, jwks: list) -> None:
        self.jwks.extend(jwks)
        self._rebuild()

    def _rebuild(self) -> None:
        self.resolvers = ResolversConfig(
            secrets_resolver=glue.build_secrets(self.jwks), did_resolver=self.resolver
        )


# ---------------------------------------------------------------------------
# the mediator, over HTTP and WebSocket


def msg(party: Party, type_: str, body: dict, to: str, return_route: bool = True) -> Message:
    headers = {"return_route": "all"} if return_route else None
    return Message(
        id=str(uuid.uuid4()),
        type=type_,
        body=body,
        frm=party.did,
        to=[to],
        created_time=int(time.time()),
        custom_headers=headers,
    )


class Mediator:
    def __init__(self, base: str):
        self.base = base.rstrip("/")
        self.http = httpx.AsyncClient(timeout=TIMEOUT)
        self.did = None
        self.ka_kid = None
        self.http_endpoint = None
        self.ws_endpoint = None

    async def pack(self, party: Party, m: Message, protect=False, signed=False) -> str:
        res = await pack_encrypted(
            party.resolvers,
            m,
            to=self.did,
            frm=None if signed else party.did,
            sign_frm=party.did if signed else None,
            pack_config=PackEncryptedConfig(protect_sender_id=protect, forward=False),
        )
        expect(res.service_metadata is None or res.service_metadata.service_endpoint == self.http_endpoint,
               f"the library picked endpoint {res.service_metadata} for the mediator")
        return res.packed_msg

    async def post(self, packed: str, url: str | None = None):
        return await self.http.post(url or self.http_endpoint, content=packed.encode(), headers={"content-type": ENCRYPTED})

    def check_reply(self, party: Party, req: Message, res) -> Message:
        """The answer came from the mediator, to `party`, authenticated, in `req`'s thread."""
        m, meta = res.message, res.metadata
        expect(meta.encrypted and meta.authenticated, f"answer is not authcrypted: {meta}")
        expect(str(meta.encrypted_from).split("#")[0] == self.did, f"answer encrypted from {meta.encrypted_from}")
        expect(m.frm == self.did, f"answer `from` is {m.frm}")
        expect(m.to == [party.did], f"answer `to` is {m.to}")
        if m.type == PROBLEM:  # Problem Report 2.0: pthid REQUIRED, ack SHOULD name the trigger
            expect(m.pthid == req.id, f"problem report pthid {m.pthid} != request id {req.id}")
            expect(m.ack == [req.id], f"problem report ack {m.ack} != [{req.id}]")
        else:
            expect(m.thid == req.id, f"answer thid {m.thid} != request id {req.id}")
        return m

    async def request_http(self, party: Party, m: Message, **pack_kw) -> Message:
        r = await self.post(await self.pack(party, m, **pack_kw))
        expect(r.status_code == 200, f"HTTP {r.status_code}: {r.text[:300]}")
        expect(r.headers.get("content-type", "").startswith(ENCRYPTED), f"content-type {r.headers.get('content-type')}")
        return self.check_reply(party, m, await unpack(party.resolvers, r.text))


class Socket:
    """One WebSocket to the mediator; answers are matched to requests by thread."""

    def __init__(self, med: Mediator, party: Party, ws):
        self.med = med
        self.party = party
        self.ws = ws
        self.unsolicited: list = []

    async def _next(self, timeout: float):
        frame = await asyncio.wait_for(self.ws.recv(), timeout)
        expect(isinstance(frame, str), "the mediator sent a binary frame")
        return await unpack(self.party.resolvers, frame)

    async def request(self, m: Message, **pack_kw) -> Message:
        await self.ws.send(await self.med.pack(self.party, m, **pack_kw))
        deadline = time.monotonic() + TIMEOUT
        while True:
            res = await self._next(max(0.1, deadline - time.monotonic()))
            if res.message.thid == m.id or res.message.pthid == m.id:
                return self.med.check_reply(self.party, m, res)
            self.unsolicited.append(res)

    async def live(self, timeout: float = TIMEOUT):
        """The next message the mediator pushed without being asked."""
        if self.unsolicited:
            return self.unsolicited.pop(0)
        return await self._next(timeout)


# ---------------------------------------------------------------------------
# checks on answers


def body_of(m: Message, type_: str) -> dict:
    expect(m.type == type_, f"expected {type_}, got {m.type} {json.dumps(m.body)[:300]}")
    return m.body


def problem_code(m: Message) -> str:
    body = body_of(m, PROBLEM)
    return body.get("code")


def disclosed(m: Message) -> list:
    body = body_of(m, f"{DISCOVER}/disclose")
    ids = [d.get("id") for d in body.get("disclosures", []) if d.get("feature-type") == "protocol"]
    for want in (ROUTING, COORD2, COORD3, PICKUP, PING, DISCOVER):
        expect(want in ids, f"{want} not disclosed: {ids}")
    roles = {d["id"]: d.get("roles") for d in body["disclosures"]}
    expect(roles[PICKUP] == ["mediator"] and roles[COORD2] == ["mediator"], f"roles: {roles}")
    return ids


def status_of(m: Message, count: int, live: bool | None = None, recipient: str | None = None) -> dict:
    body = body_of(m, f"{PICKUP}/status")
    expect(body.get("message_count") == count, f"message_count {body.get('message_count')} != {count}: {body}")
    if live is not None:
        expect(body.get("live_delivery") is live, f"live_delivery {body.get('live_delivery')} != {live}")
    if recipient is not None:
        expect(body.get("recipient_did") == recipient, f"recipient_did {body.get('recipient_did')} != {recipient}")
    return {k: body[k] for k in ("message_count", "live_delivery", "total_bytes") if k in body}


async def open_attachments(alice: Party, bob: Party, m: Message, sent: list) -> list:
    """Unpacks each delivered attachment with the library; returns (attachment id, note number)."""
    out = []
    for a in m.attachments or []:
        expect(isinstance(a.id, str) and a.id, f"attachment without id: {a}")
        raw = getattr(a.data, "base64", None)
        expect(isinstance(raw, str), f"attachment {a.id} has no data.base64: {a.data}")
        packed = glue.b64u_dec(raw).decode("utf-8")
        res = await unpack(alice.resolvers, packed)
        inner, meta = res.message, res.metadata
        expect(meta.encrypted and meta.authenticated, f"delivered message not authcrypted: {meta}")
        expect(str(meta.encrypted_from).split("#")[0] == bob.did, f"delivered message from {meta.encrypted_from}")
        expect(inner.frm == bob.did and inner.type == NOTE, f"delivered plaintext {inner.as_dict()}")
        n = inner.body.get("n")
        expect(n in sent and sent[n].body == inner.body and sent[n].id == inner.id,
               f"delivered plaintext does not match what bob sent: {inner.body}")
        out.append((a.id, n))
    return out


# ---------------------------------------------------------------------------
# the scenario


async def scenario(base: str) -> None:
    med = Mediator(base)
    resolver = glue.OracleDIDResolver([])
    ctx: dict = {}

    # -- discovery -------------------------------------------------------
    async def health():
        r = await med.http.get(f"{med.base}/health")
        expect(r.status_code == 200 and r.json().get("status") == "ok", f"HTTP {r.status_code} {r.text[:200]}")
        return r.json()

    def ka_x(doc):
        """The public X25519 key (JWK x) of a normalized document's first keyAgreement key."""
        kid = doc["keyAgreement"][0]
        vm = next(v for v in doc["verificationMethod"] if v["id"] == kid)
        return vm["publicKeyJwk"]["x"]

    def routes_to_mediator(rd):
        """A routing DID is acceptable when it resolves to the mediator's own X25519 key."""
        if not isinstance(rd, str):
            return False
        doc = resolver.normalized(rd)
        return doc is not None and ka_x(doc) == med.ka_x

    async def invitation():
        r = await med.http.get(f"{med.base}/invitation")
        expect(r.status_code == 200, f"HTTP {r.status_code}")
        inv = r.json()
        expect(inv.get("type") == OOB, f"type {inv.get('type')}")
        med.did = inv.get("from")
        expect(isinstance(med.did, str) and med.did.startswith("did:peer:2"), f"from {med.did}")
        doc = resolver.normalized(med.did)
        med.ka_kid = doc["keyAgreement"][0]
        med.ka_x = ka_x(doc)
        uris = [s["serviceEndpoint"] for s in doc["service"]]
        ws_base = "ws" + med.base[len("http"):]
        expect(f"{med.base}/didcomm" in uris and f"{ws_base}/ws" in uris, f"mediator endpoints {uris}")
        med.http_endpoint, med.ws_endpoint = f"{med.base}/didcomm", f"{ws_base}/ws"
        return {"mediator": med.did[:40] + "…", "keyAgreement": med.ka_kid.split("#")[1], "endpoints": uris,
                "goal_code": inv.get("body", {}).get("goal_code")}

    await step("health", health)
    await step("invitation", invitation)

    alice_did, alice_jwks = new_did_key()
    alice = Party("alice", alice_did, alice_jwks, resolver)
    bob_did, bob_jwks = new_did_key()
    bob = Party("bob", bob_did, bob_jwks, resolver)
    routed = {"t": "dm", "s": {"uri": med.http_endpoint, "a": ["didcomm/v2"], "r": [med.ka_kid]}}
    alice_peer, jwks = new_did_peer2(routed)
    alice.own(jwks)
    alice_second, jwks = new_did_peer2(routed)
    alice.own(jwks)

    async def identities():
        doc = resolver.normalized(alice_peer)
        svc = doc["service"][0]
        expect(doc["keyAgreement"] == [f"{alice_peer}#key-1"], f"alice_peer keyAgreement {doc['keyAgreement']}")
        expect(svc["serviceEndpoint"] == med.http_endpoint and svc["routingKeys"] == [med.ka_kid], f"service {svc}")
        return {"alice": alice.did[:24] + "…", "alice_peer": alice_peer[:24] + "…", "bob": bob.did[:24] + "…"}

    await step("identities", identities)

    # -- HTTP: discover, ping, coordinate mediation ---------------------
    async def http_discover():
        q = msg(alice, f"{DISCOVER}/queries", {"queries": [{"feature-type": "protocol", "match": "https://didcomm.org/*"}]}, med.did)
        return disclosed(await med.request_http(alice, q))

    async def http_ping():
        p = msg(alice, f"{PING}/ping", {"response_requested": True}, med.did)
        body_of(await med.request_http(alice, p), f"{PING}/ping-response")
        return "ping-response in thread"

    async def http_cm2_grant():
        r = await med.request_http(alice, msg(alice, f"{COORD2}/mediate-request", {}, med.did))
        body = body_of(r, f"{COORD2}/mediate-grant")
        expect(routes_to_mediator(body.get("routing_did")), f"routing_did {body.get('routing_did')}")
        return "mediate-grant, routing_did = a DID with the mediator's key-agreement key (string)"

    async def http_cm2_keylist_update():
        u = msg(alice, f"{COORD2}/keylist-update", {"updates": [{"recipient_did": alice_peer, "action": "add"}]}, med.did)
        body = body_of(await med.request_http(alice, u), f"{COORD2}/keylist-update-response")
        want = [{"recipient_did": alice_peer, "action": "add", "result": "success"}]
        expect(body.get("updated") == want, f"updated {body.get('updated')}")
        return "add alice_peer: success"

    async def http_cm2_keylist_query():
        q = msg(alice, f"{COORD2}/keylist-query", {"paginate": {"limit": 30, "offset": 0}}, med.did)
        body = body_of(await med.request_http(alice, q), f"{COORD2}/keylist")
        keys = [k.get("recipient_did") for k in body.get("keys", [])]
        expect(keys == [alice_peer], f"keys {keys}")
        p = body.get("pagination")
        expect(p is None or (p.get("count") == 1 and p.get("offset") == 0 and p.get("remaining") == 0), f"pagination {p}")
        return {"keys": 1, "pagination": p}

    async def http_cm3_grant():
        r = await med.request_http(alice, msg(alice, f"{COORD3}/mediate-request", {}, med.did))
        body = body_of(r, f"{COORD3}/mediate-grant")
        rd = body.get("routing_did")
        expect(isinstance(rd, list) and len(rd) == 1 and routes_to_mediator(rd[0]), f"routing_did {rd}")
        return "mediate-grant, routing_did = [a DID with the mediator's key-agreement key]"

    async def http_cm3_recipient_update():
        u = msg(alice, f"{COORD3}/recipient-update", {"updates": [{"recipient_did": alice_second, "action": "add"}]}, med.did)
        body = body_of(await med.request_http(alice, u), f"{COORD3}/recipient-update-response")
        want = [{"recipient_did": alice_second, "action": "add", "result": "success"}]
        expect(body.get("updated") == want, f"updated {body.get('updated')}")
        return "add alice_second: success"

    async def http_cm3_recipient_query():
        q = msg(alice, f"{COORD3}/recipient-query", {}, med.did)
        body = body_of(await med.request_http(alice, q), f"{COORD3}/recipient")
        dids = sorted(d.get("recipient_did") for d in body.get("dids", []))
        expect(dids == sorted([alice_peer, alice_second]), f"dids {dids}")
        return {"dids": len(dids), "pagination": body.get("pagination")}

    await step("http.discover-features", http_discover)
    await step("http.trust-ping", http_ping)
    await step("http.cm2.mediate-request", http_cm2_grant)
    await step("http.cm2.keylist-update", http_cm2_keylist_update)
    await step("http.cm2.keylist-query", http_cm2_keylist_query)
    await step("http.cm3.mediate-request", http_cm3_grant)
    await step("http.cm3.recipient-update", http_cm3_recipient_update)
    await step("http.cm3.recipient-query", http_cm3_recipient_query)

    # -- bob sends through the mediator (the library wraps the Forward) --
    sent: dict = {}

    async def bob_send(n: int, to_did: str = alice_peer, to_key: bool = False) -> dict:
        """Bob packs note n for `to_did` (or its first key: `next` is then a DID URL)."""
        note = Message(id=str(uuid.uuid4()), type=NOTE, body={"n": n, "text": f"hello alice #{n}"},
                       frm=bob.did, to=[to_did], created_time=int(time.time()))
        to = f"{to_did}#key-1" if to_key else to_did
        res = await pack_encrypted(bob.resolvers, note, to=to, frm=bob.did,
                                   pack_config=PackEncryptedConfig(forward=True))
        sm = res.service_metadata
        expect(sm is not None and sm.service_endpoint == med.http_endpoint, f"service metadata {sm}")
        jwe = json.loads(res.packed_msg)
        kids = [r["header"]["kid"] for r in jwe["recipients"]]
        expect(kids == [med.ka_kid], f"outer envelope is for {kids}, not the mediator (no Forward?)")
        alg = json.loads(glue.b64u_dec(jwe["protected"]))["alg"]
        expect(alg.startswith("ECDH-ES"), f"outer envelope alg {alg} (a Forward is anoncrypted)")
        r = await med.post(res.packed_msg, sm.service_endpoint)
        expect(r.status_code == 202 and not r.content, f"HTTP {r.status_code} {r.text[:300]}")
        sent[n] = note
        return {"n": n, "http": r.status_code, "next": "DID URL" if to_key else "DID", "alg": alg}

    async def bob_send_3():
        return [await bob_send(1), await bob_send(2), await bob_send(3, to_key=True)]

    await step("bob.send-3-via-forward", bob_send_3)

    # -- HTTP pickup -----------------------------------------------------
    async def http_status():
        s = msg(alice, f"{PICKUP}/status-request", {}, med.did)
        return status_of(await med.request_http(alice, s), 3, live=False)

    async def http_status_recipient():
        s = msg(alice, f"{PICKUP}/status-request", {"recipient_did": alice_peer}, med.did)
        a = status_of(await med.request_http(alice, s), 3, recipient=alice_peer)
        s = msg(alice, f"{PICKUP}/status-request", {"recipient_did": alice_second}, med.did)
        b = status_of(await med.request_http(alice, s), 0, recipient=alice_second)
        return {"alice_peer": a["message_count"], "alice_second": b["message_count"]}

    async def http_delivery():
        d = msg(alice, f"{PICKUP}/delivery-request", {"limit": 2}, med.did)
        r = await med.request_http(alice, d)
        body_of(r, f"{PICKUP}/delivery")
        expect(len(r.attachments or []) == 2, f"{len(r.attachments or [])} attachments")
        got = await open_attachments(alice, bob, r, sent)
        expect([n for _, n in got] == [1, 2], f"delivered notes {got} (oldest first expected)")
        ctx["acks"] = [i for i, _ in got]
        return {"attachments": len(got), "notes": [n for _, n in got]}

    async def http_received():
        a = msg(alice, f"{PICKUP}/messages-received", {"message_id_list": ctx["acks"]}, med.did)
        return status_of(await med.request_http(alice, a), 1)

    async def http_live_refused():
        c = msg(alice, f"{PICKUP}/live-delivery-change", {"live_delivery": True}, med.did)
        code = problem_code(await med.request_http(alice, c))
        expect(code == "e.m.live-mode-not-supported", f"code {code}")
        return code

    await step("http.pickup.status-request", http_status)
    await step("http.pickup.status-request.recipient_did", http_status_recipient)
    await step("http.pickup.delivery-request", http_delivery)
    await step("http.pickup.messages-received", http_received)
    await step("http.pickup.live-delivery-change.refused", http_live_refused)

    # -- routing through the mediator's DID used as an endpoint ----------
    async def did_as_endpoint():
        # uri = the mediator DID (as CM's routing_did invites), routingKeys = [its key]:
        # the library prepends the mediator's keys, so the mediator receives a forward
        # whose `next` is itself, holding the forward to alice_third.
        svc = {"t": "dm", "s": {"uri": med.did, "a": ["didcomm/v2"], "r": [med.ka_kid]}}
        alice_third, jwks = new_did_peer2(svc)
        alice.own(jwks)
        u = msg(alice, f"{COORD2}/keylist-update", {"updates": [{"recipient_did": alice_third, "action": "add"}]}, med.did)
        upd = body_of(await med.request_http(alice, u), f"{COORD2}/keylist-update-response")["updated"]
        expect(upd[0]["result"] == "success", f"updated {upd}")
        sent_info = await bob_send(4, to_did=alice_third)
        s = msg(alice, f"{PICKUP}/status-request", {"recipient_did": alice_third}, med.did)
        status_of(await med.request_http(alice, s), 1, recipient=alice_third)
        d = msg(alice, f"{PICKUP}/delivery-request", {"limit": 5, "recipient_did": alice_third}, med.did)
        r = await med.request_http(alice, d)
        expect(body_of(r, f"{PICKUP}/delivery").get("recipient_did") == alice_third, f"delivery body {r.body}")
        got = await open_attachments(alice, bob, r, sent)
        expect([n for _, n in got] == [4], f"delivered notes {got}")
        a = msg(alice, f"{PICKUP}/messages-received", {"message_id_list": [i for i, _ in got]}, med.did)
        status_of(await med.request_http(alice, a), 1)  # note 3 still waits
        u = msg(alice, f"{COORD2}/keylist-update", {"updates": [{"recipient_did": alice_third, "action": "remove"}]}, med.did)
        upd = body_of(await med.request_http(alice, u), f"{COORD2}/keylist-update-response")["updated"]
        expect(upd[0]["result"] == "success", f"remove: {upd}")
        return {"forward": sent_info, "delivered": [4], "recipient_did": "echoed"}

    await step("routing.did-as-endpoint", did_as_endpoint)

    # -- negative checks -------------------------------------------------
    async def forward_unregistered():
        charlie, _ = new_did_peer2(routed)
        note = Message(id=str(uuid.uuid4()), type=NOTE, body={"text": "nobody home"}, frm=bob.did, to=[charlie])
        res = await pack_encrypted(bob.resolvers, note, to=charlie, frm=bob.did, pack_config=PackEncryptedConfig(forward=True))
        r = await med.post(res.packed_msg, res.service_metadata.service_endpoint)
        expect(r.status_code == 404, f"HTTP {r.status_code} {r.text[:300]}")
        report = await unpack(bob.resolvers, r.text)  # a plaintext problem report
        expect(not report.metadata.encrypted, "expected a plaintext problem report")
        code = problem_code(report.message)
        expect(code == "e.p.xfer.unknown-recipient", f"code {code}")
        pm = report.message
        expect(pm.pthid and pm.ack == [pm.pthid], f"problem report pthid {pm.pthid} ack {pm.ack} (the forward's id)")
        return {"http": 404, "code": code, "content-type": r.headers.get("content-type"), "pthid": "the forward's id"}

    async def keylist_update_not_granted():
        mallory_did, mallory_jwks = new_did_key()
        mallory = Party("mallory", mallory_did, mallory_jwks, resolver)
        u = msg(mallory, f"{COORD2}/keylist-update", {"updates": [{"recipient_did": mallory_did, "action": "add"}]}, med.did)
        code = problem_code(await med.request_http(mallory, u))
        expect(code == "e.p.req.not-granted", f"code {code}")
        u = msg(mallory, f"{COORD3}/recipient-update", {"updates": [{"recipient_did": mallory_did, "action": "add"}]}, med.did)
        code3 = problem_code(await med.request_http(mallory, u))
        expect(code3 == "e.p.req.not-granted", f"CM 3.0 code {code3}")
        return code

    await step("negative.forward-unregistered-did", forward_unregistered)
    await step("negative.keylist-update-before-mediate-request", keylist_update_not_granted)

    # -- WebSocket -------------------------------------------------------
    async with websockets.connect(med.ws_endpoint, open_timeout=TIMEOUT, max_size=2**22) as ws:
        sock = Socket(med, alice, ws)

        async def ws_discover():
            q = msg(alice, f"{DISCOVER}/queries", {"queries": [{"feature-type": "protocol", "match": "https://didcomm.org/*"}]}, med.did)
            return disclosed(await sock.request(q))

        async def ws_ping_protected():
            p = msg(alice, f"{PING}/ping", {"response_requested": True}, med.did)
            body_of(await sock.request(p, protect=True), f"{PING}/ping-response")
            return "anoncrypt(authcrypt) ping answered"

        async def ws_signed():
            s = msg(alice, f"{PICKUP}/status-request", {}, med.did)
            return status_of(await sock.request(s, signed=True), 1, live=False)

        async def ws_cm2():
            r = await sock.request(msg(alice, f"{COORD2}/mediate-request", {}, med.did))
            body = body_of(r, f"{COORD2}/mediate-grant")
            expect(routes_to_mediator(body.get("routing_did")), f"routing_did {body.get('routing_did')}")
            u = msg(alice, f"{COORD2}/keylist-update", {"updates": [{"recipient_did": alice_peer, "action": "add"}]}, med.did)
            upd = body_of(await sock.request(u), f"{COORD2}/keylist-update-response")["updated"]
            expect(upd == [{"recipient_did": alice_peer, "action": "add", "result": "no_change"}], f"updated {upd}")
            q = msg(alice, f"{COORD2}/keylist-query", {}, med.did)
            keys = [k["recipient_did"] for k in body_of(await sock.request(q), f"{COORD2}/keylist")["keys"]]
            expect(sorted(keys) == sorted([alice_peer, alice_second]), f"keys {keys}")
            return "grant again; re-add: no_change; keylist lists both DIDs"

        async def ws_cm3():
            # return_route is set once per WebSocket (CM/Pickup "Requirements"); these omit it.
            r = await sock.request(msg(alice, f"{COORD3}/mediate-request", {}, med.did, return_route=False))
            rd = body_of(r, f"{COORD3}/mediate-grant").get("routing_did")
            expect(isinstance(rd, list) and len(rd) == 1 and routes_to_mediator(rd[0]), "routing_did")
            u = msg(alice, f"{COORD3}/recipient-update", {"updates": [{"recipient_did": alice_second, "action": "remove"}]},
                    med.did, return_route=False)
            upd = body_of(await sock.request(u), f"{COORD3}/recipient-update-response")["updated"]
            expect(upd == [{"recipient_did": alice_second, "action": "remove", "result": "success"}], f"updated {upd}")
            q = msg(alice, f"{COORD3}/recipient-query", {}, med.did, return_route=False)
            dids = [d["recipient_did"] for d in body_of(await sock.request(q), f"{COORD3}/recipient")["dids"]]
            expect(dids == [alice_peer], f"dids {dids}")
            return "grant; remove alice_second: success; recipient lists alice_peer only (no return_route header)"

        async def ws_status():
            return status_of(await sock.request(msg(alice, f"{PICKUP}/status-request", {}, med.did)), 1, live=False)

        async def ws_delivery():
            r = await sock.request(msg(alice, f"{PICKUP}/delivery-request", {"limit": 10}, med.did))
            body_of(r, f"{PICKUP}/delivery")
            got = await open_attachments(alice, bob, r, sent)
            expect([n for _, n in got] == [3], f"delivered notes {got}")
            ctx["acks"] = [i for i, _ in got]
            return {"attachments": 1, "notes": [3]}

        async def ws_received():
            a = msg(alice, f"{PICKUP}/messages-received", {"message_id_list": ctx["acks"]}, med.did)
            return status_of(await sock.request(a), 0)

        async def ws_delivery_empty():
            r = await sock.request(msg(alice, f"{PICKUP}/delivery-request", {"limit": 10}, med.did))
            return status_of(r, 0)

        async def ws_live_on():
            c = msg(alice, f"{PICKUP}/live-delivery-change", {"live_delivery": True}, med.did)
            return status_of(await sock.request(c), 0, live=True)

        async def ws_live_delivery():
            await bob_send(5)
            res = await sock.live()
            m, meta = res.message, res.metadata
            expect(meta.authenticated and str(meta.encrypted_from).split("#")[0] == med.did, f"live delivery metadata {meta}")
            expect(m.frm == med.did and m.to == [alice.did], f"live delivery from {m.frm} to {m.to}")
            body_of(m, f"{PICKUP}/delivery")
            got = await open_attachments(alice, bob, m, sent)
            expect([n for _, n in got] == [5], f"live notes {got}")
            ctx["acks"] = [i for i, _ in got]
            return {"live": True, "notes": [5]}

        async def ws_live_ack():
            a = msg(alice, f"{PICKUP}/messages-received", {"message_id_list": ctx["acks"]}, med.did)
            return status_of(await sock.request(a), 0, live=True)

        async def ws_final_status():
            return status_of(await sock.request(msg(alice, f"{PICKUP}/status-request", {}, med.did)), 0, live=True)

        await step("ws.discover-features", ws_discover)
        await step("ws.trust-ping.protected-sender", ws_ping_protected)
        await step("ws.signed.status-request", ws_signed)
        await step("ws.cm2.mediate-request+keylist", ws_cm2)
        await step("ws.cm3.mediate-request+recipient", ws_cm3)
        await step("ws.pickup.status-request", ws_status)
        await step("ws.pickup.delivery-request", ws_delivery)
        await step("ws.pickup.messages-received", ws_received)
        await step("ws.pickup.delivery-request.empty", ws_delivery_empty)
        await step("ws.pickup.live-delivery-change", ws_live_on)
        await step("ws.pickup.live-delivery", ws_live_delivery)
        await step("ws.pickup.live-messages-received", ws_live_ack)
        await step("ws.pickup.final-status", ws_final_status)

    # Pickup 3.0: "a new inbound connection starts with Live Mode disabled".
    async def ws_reconnect():
        async with websockets.connect(med.ws_endpoint, open_timeout=TIMEOUT) as ws2:
            s2 = Socket(med, alice, ws2)
            return status_of(await s2.request(msg(alice, f"{PICKUP}/status-request", {}, med.did)), 0, live=False)

    await step("ws.reconnect.live-mode-off", ws_reconnect)
    await med.http.aclose()


def main() -> int:
    if len(sys.argv) != 2 or not sys.argv[1].startswith(("http://", "https://")):
        print("usage: mediator_client.py http://HOST:PORT", file=sys.stderr)
        return 2
    try:
        asyncio.run(scenario(sys.argv[1]))
    except StepFailed:
        return 1
    except Exception as exc:  # a failure outside any step
        traceback.print_exc(file=sys.stderr)
        emit("scenario", False, f"{type(exc).__name__}: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
