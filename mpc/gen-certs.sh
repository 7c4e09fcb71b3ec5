#!/usr/bin/env bash
# gen-certs.sh DIR N -- make the TLS files that `mpyc --ssl` (0.11) needs for
# parties 0..N-1, for tests only (throw-away CA, no passphrases).
#
# mpyc opens them relative to the party's *working directory*:
#   DIR/.config/mpyc_ca.crt      CA certificate, trusted by every party
#   DIR/.config/party_<i>.crt    party i's certificate, signed by that CA
#   DIR/.config/party_<i>.key    party i's private key (unencrypted)
# so run the parties with cwd DIR (run-plain.py --cwd DIR).
#
# A dialling party checks the listener's certificate against the host name
# "MPyC party <j>" (j = listener's pid), and listeners require a client
# certificate from the same CA (no name check on that side).  The name has
# spaces, so it goes in the subject CN and the certificates carry NO
# subjectAltName: Python falls back to the CN only when there is no SAN.
# Keys are ECDSA P-256; extensions are set so that strict X.509 checking
# (default in newer Python versions) accepts the chain too.
#
# Uses the openssl CLI; without it, falls back to Python with the
# `cryptography` package ($GEN_CERTS_PYTHON, else python3).  The CA key is
# not kept.  Existing files for these names are replaced.
set -euo pipefail

die() { printf 'gen-certs: %s\n' "$*" >&2; exit 1; }
[ $# -eq 2 ] || die "usage: $0 DIR N"
DIR="$1"
N="$2"
case "$N" in '' | *[!0-9]*) die "N must be a positive integer" ;; esac
[ "$N" -ge 1 ] || die "N must be >= 1"
DAYS=3650

mkdir -p "$DIR/.config"
CONF_DIR="$(cd "$DIR/.config" && pwd)"
TMP="$(mktemp -d "$CONF_DIR/.gen-certs.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT
umask 077

if command -v openssl >/dev/null 2>&1; then
  cat >"$TMP/openssl.cnf" <<'EOF'
[ req ]
distinguished_name = dn
prompt             = no
[ dn ]
CN = placeholder
[ v3_ca ]
basicConstraints       = critical, CA:TRUE
keyUsage               = critical, keyCertSign, cRLSign
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid:always
[ v3_party ]
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature
extendedKeyUsage       = serverAuth, clientAuth
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid, issuer
EOF
  ossl() { openssl "$@" 2>"$TMP/openssl.err" || { cat "$TMP/openssl.err" >&2; die "openssl $1 failed"; }; }
  ossl req -x509 -new -config "$TMP/openssl.cnf" -extensions v3_ca \
    -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -subj "/CN=didmpc MPyC test CA" -days "$DAYS" \
    -keyout "$TMP/ca.key" -out "$TMP/mpyc_ca.crt"
  for ((i = 0; i < N; i++)); do
    ossl req -new -config "$TMP/openssl.cnf" \
      -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
      -subj "/CN=MPyC party $i" -keyout "$TMP/party_$i.key" -out "$TMP/party_$i.csr"
    ossl x509 -req -in "$TMP/party_$i.csr" -CA "$TMP/mpyc_ca.crt" -CAkey "$TMP/ca.key" \
      -set_serial "$((1000 + i))" -days "$DAYS" \
      -extfile "$TMP/openssl.cnf" -extensions v3_party -out "$TMP/party_$i.crt"
  done
else
  PY="${GEN_CERTS_PYTHON:-python3}"
  "$PY" -c 'import cryptography' 2>/dev/null ||
    die "need the openssl CLI (apt-get install openssl) or a python with 'cryptography' in \$GEN_CERTS_PYTHON"
  "$PY" - "$TMP" "$N" "$DAYS" <<'EOF'
import datetime, sys
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

out, n, days = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
now = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=5)

def name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

def usage(ca):
    return x509.KeyUsage(digital_signature=not ca, content_commitment=False,
                         key_encipherment=False, data_encipherment=False, key_agreement=False,
                         key_cert_sign=ca, crl_sign=ca, encipher_only=False, decipher_only=False)

def write(path, data):
    with open(path, 'wb') as f:
        f.write(data)

ca_key = ec.generate_private_key(ec.SECP256R1())
ca_name = name('didmpc MPyC test CA')
ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
      .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
      .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=days))
      .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
      .add_extension(usage(True), critical=True)
      .add_extension(ca_ski, critical=False)
      .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
                     critical=False)
      .sign(ca_key, hashes.SHA256()))
write(f'{out}/mpyc_ca.crt', ca.public_bytes(serialization.Encoding.PEM))
for i in range(n):
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(name(f'MPyC party {i}')).issuer_name(ca_name)
            .public_key(key.public_key()).serial_number(1000 + i)
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(usage(False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                  ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    write(f'{out}/party_{i}.crt', cert.public_bytes(serialization.Encoding.PEM))
    write(f'{out}/party_{i}.key', key.private_bytes(serialization.Encoding.PEM,
                                                   serialization.PrivateFormat.PKCS8,
                                                   serialization.NoEncryption()))
EOF
fi

chmod 644 "$TMP/mpyc_ca.crt" "$TMP"/party_*.crt
chmod 600 "$TMP"/party_*.key
mv -f "$TMP/mpyc_ca.crt" "$CONF_DIR/mpyc_ca.crt"
for ((i = 0; i < N; i++)); do
  mv -f "$TMP/party_$i.crt" "$CONF_DIR/party_$i.crt"
  mv -f "$TMP/party_$i.key" "$CONF_DIR/party_$i.key"
done
printf 'gen-certs: wrote CA + %d party certificates to %s\n' "$N" "$CONF_DIR" >&2
