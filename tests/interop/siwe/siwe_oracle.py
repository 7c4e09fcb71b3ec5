#!/usr/bin/env python3
"""SIWE interop oracle: PyPI `siwe` (EIP-4361) and `eth-account` (EIP-191 signing).

Reads one JSON array of requests on stdin, writes one JSON array of answers on stdout
(same order). Each request is an object with "op":

  {"op": "new_key"}
      -> {"key": "0x...", "address": "0x..."}           (eth_account.Account.create)
  {"op": "sign_text", "key": K, "text": T}
      -> {"signature": "0x..."}                          (personal_sign of T, eth-account)
  {"op": "make", "key": K, "fields": {...SiweMessage fields...}}
      -> {"message": M, "signature": "0x..."}            (siwe builds M, eth-account signs)
  {"op": "verify", "message": M, "signature": S, "domain": D, "nonce": N, "timestamp": unix}
      -> {"ok": true, "address": A, "reprepared_equal": bool}
       | {"ok": false, "error": "ExceptionClassName: text"}

Nothing here is didmpc code: the point is to check ours against these libraries.
"""

import json
import sys
from datetime import datetime, timezone

from eth_account import Account
from eth_account.messages import encode_defunct
from siwe import SiweMessage


def answer(req):
    op = req["op"]
    if op == "new_key":
        acct = Account.create()
        return {"key": "0x" + acct.key.hex().removeprefix("0x"), "address": acct.address}
    if op == "sign_text":
        signed = Account.sign_message(encode_defunct(text=req["text"]), private_key=req["key"])
        return {"signature": "0x" + signed.signature.hex().removeprefix("0x")}
    if op == "make":
        acct = Account.from_key(req["key"])
        fields = dict(req["fields"])
        fields["address"] = acct.address
        text = SiweMessage(**fields).prepare_message()
        signed = Account.sign_message(encode_defunct(text=text), private_key=req["key"])
        return {"message": text, "signature": "0x" + signed.signature.hex().removeprefix("0x")}
    if op == "verify":
        try:
            msg = SiweMessage.from_message(req["message"], abnf=True)
            when = datetime.fromtimestamp(req["timestamp"], tz=timezone.utc)
            msg.verify(req["signature"], domain=req["domain"], nonce=req["nonce"], timestamp=when)
            return {
                "ok": True,
                "address": msg.address,
                "reprepared_equal": msg.prepare_message() == req["message"],
            }
        except Exception as e:  # the class name is the verdict
            return {"ok": False, "error": f"{type(e).__name__}: {e}"}
    raise ValueError(f"unknown op {op!r}")


def main():
    reqs = json.load(sys.stdin)
    json.dump([answer(r) for r in reqs], sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
