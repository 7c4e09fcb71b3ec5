// Digital Bazaar VC oracle for didmpc's interop tests (no didmpc code here).
//
// Reads one JSON array of requests on stdin, writes one JSON array of answers on stdout.
//   {"op": "issue", "subject": DID, "types": [...], "issuanceDate": ISO, "expirationDate": ISO?}
//     -> {"issuer": "did:key:...", "credential": {...}}   (a fresh Ed25519 did:key issuer,
//        @digitalbazaar/vc + Ed25519Signature2020, then self-verified)
// Offline: the document loader serves the bundled credentials/ed25519-2020 contexts and the
// issuer's own did:key document; anything else is an error.
import * as vc from '@digitalbazaar/vc';
import {Ed25519VerificationKey2020} from '@digitalbazaar/ed25519-verification-key-2020';
import {Ed25519Signature2020} from '@digitalbazaar/ed25519-signature-2020';
import * as credentialsContext from '@digitalbazaar/credentials-context';
import ed25519Context from 'ed25519-signature-2020-context';

const contexts = new Map([...credentialsContext.contexts, ...ed25519Context.contexts]);
// Types not defined by the W3C context resolve through this vocabulary (JSON-LD safe mode).
const VOCAB = {'@vocab': 'https://didmpc.dev/credentials#'};

async function issue(req) {
  const key = await Ed25519VerificationKey2020.generate();
  const did = `did:key:${key.fingerprint()}`;
  key.id = `${did}#${key.fingerprint()}`;
  key.controller = did;
  const method = await key.export({publicKey: true, includeContext: true});
  const controller = {
    '@context': ['https://www.w3.org/ns/did/v1', 'https://w3id.org/security/suites/ed25519-2020/v1'],
    id: did,
    verificationMethod: [{...method, '@context': undefined}],
    assertionMethod: [key.id],
  };
  const documentLoader = async url => {
    if (contexts.has(url)) return {contextUrl: null, documentUrl: url, document: contexts.get(url)};
    if (url === key.id) return {contextUrl: null, documentUrl: url, document: method};
    if (url === did) return {contextUrl: null, documentUrl: url, document: controller};
    throw new Error(`offline: no document for ${url}`);
  };
  const credential = {
    '@context': ['https://www.w3.org/2018/credentials/v1', 'https://w3id.org/security/suites/ed25519-2020/v1', VOCAB],
    type: ['VerifiableCredential', ...req.types],
    issuer: did,
    issuanceDate: req.issuanceDate,
    credentialSubject: {id: req.subject, employeeOf: 'ACME'},
  };
  if (req.expirationDate) credential.expirationDate = req.expirationDate;
  const signed = await vc.issue({credential, suite: new Ed25519Signature2020({key}), documentLoader});
  const check = await vc.verifyCredential({credential: signed, suite: new Ed25519Signature2020(), documentLoader});
  if (!check.verified) throw new Error(`self-verification failed: ${JSON.stringify(check.error)}`);
  return {issuer: did, credential: signed};
}

const chunks = [];
for await (const c of process.stdin) chunks.push(c);
const out = [];
for (const req of JSON.parse(Buffer.concat(chunks).toString('utf8'))) {
  try {
    if (req.op !== 'issue') throw new Error(`unknown op ${req.op}`);
    out.push(await issue(req));
  } catch (e) {
    out.push({error: String(e && e.stack || e)});
  }
}
process.stdout.write(JSON.stringify(out));
