#!/usr/bin/env python3
"""Verifiable Credential interop oracle: PyPI `didkit` (SpruceID's DIDKit).

Reads one JSON array of requests on stdin, writes one JSON array of answers on stdout
(same order). Each request is an object with "op":

  {"op": "new_key"}
      -> {"jwk": {...}, "did": "did:key:...", "vm": "did:key:...#..."}
  {"op": "issue", "jwk": J, "credential": {...}, "format": "jwt" | "ldp"}
      -> {"jwt": "..."}        (issue_credential, proofFormat jwt, assertionMethod)
       | {"credential": {...}} (proofFormat ldp: an Ed25519Signature2018 Data Integrity proof)
  {"op": "present", "jwk": J, "presentation": {...}, "challenge": C, "domain": D}
      -> {"jwt": "..."}        (issue_presentation, proofFormat jwt, authentication)
  {"op": "verify_credential", "jwt": T}
  {"op": "verify_presentation", "jwt": T, "challenge": C, "domain": D}
      -> {"checks": [...], "warnings": [...], "errors": [...]}   (DIDKit's own result)

No network is used: did:key resolves locally, JWT proofs need no JSON-LD contexts and
DIDKit bundles the W3C contexts Data Integrity proofs need.
Nothing here is didmpc code: the point is to check ours against DIDKit.
"""

import asyncio
import json
import os
import sys

import didkit


async def answer(req):
    op = req["op"]
    if op == "new_key":
        jwk = didkit.generate_ed25519_key()
        did = didkit.key_to_did("key", jwk)
        vm = await didkit.key_to_verification_method("key", jwk)
        return {"jwk": json.loads(jwk), "did": did, "vm": vm}
    if op == "issue":
        jwk = json.dumps(req["jwk"])
        vm = await didkit.key_to_verification_method("key", jwk)
        fmt = req.get("format", "jwt")
        opts = {"proofFormat": fmt, "proofPurpose": "assertionMethod", "verificationMethod": vm}
        out = await didkit.issue_credential(json.dumps(req["credential"]), json.dumps(opts), jwk)
        return {"jwt": out} if fmt == "jwt" else {"credential": json.loads(out)}
    if op == "present":
        jwk = json.dumps(req["jwk"])
        vm = await didkit.key_to_verification_method("key", jwk)
        opts = {
            "proofFormat": "jwt",
            "proofPurpose": "authentication",
            "verificationMethod": vm,
            "challenge": req["challenge"],
            "domain": req["domain"],
        }
        jwt = await didkit.issue_presentation(json.dumps(req["presentation"]), json.dumps(opts), jwk)
        return {"jwt": jwt}
    if op == "verify_credential":
        out = await didkit.verify_credential(req["jwt"], json.dumps({"proofFormat": "jwt"}))
        return json.loads(out)
    if op == "verify_presentation":
        opts = {"proofFormat": "jwt", "challenge": req["challenge"], "domain": req["domain"]}
        out = await didkit.verify_presentation(req["jwt"], json.dumps(opts))
        return json.loads(out)
    raise ValueError(f"unknown op {op!r}")


async def main():
    reqs = json.load(sys.stdin)
    out = []
    for r in reqs:
        try:
            out.append(await answer(r))
        except Exception as e:  # the answer says what failed; the test decides
            out.append({"error": f"{type(e).__name__}: {e}"})
    json.dump(out, sys.stdout)
    sys.stdout.flush()


asyncio.run(main())
# didkit 0.3.3's async binding can abort in interpreter finalization (PyGILState_Release
# on a runtime thread) after all work is done; skip finalization once the answers are out.
os._exit(0)
