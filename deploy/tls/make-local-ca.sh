#!/usr/bin/env bash
# A local certificate authority and a server certificate it signs, for leaseq's own TLS
# (server.tls_cert_file / server.tls_key_file) where no public CA is at hand: a test
# setup, a private network. The tests use it too (TLS and the SDK suite over https).
#
#   deploy/tls/make-local-ca.sh DIR [NAME ...]
#
# writes DIR/ca.pem (give it to clients: SSL_CERT_FILE=DIR/ca.pem, curl --cacert),
# DIR/ca.key (keep it, or delete it once the certificate is made), and DIR/cert.pem +
# DIR/key.pem (for leaseq). The certificate names localhost, 127.0.0.1 and ::1, and each
# NAME (a host name or an IP address). Keys are ECDSA P-256; the certificate lasts
# DAYS (env, default 90) days. To renew, run again with the same DIR (the CA is kept)
# and send leaseq SIGHUP.
set -euo pipefail

dir=${1:?usage: make-local-ca.sh DIR [NAME ...]}
shift
days=${DAYS:-90}
mkdir -p "$dir"
cd "$dir"
umask 077

san="DNS:localhost,IP:127.0.0.1,IP:::1"
for name in "$@"; do
  if [[ $name =~ ^[0-9.]+$ || $name == *:* ]]; then san+=",IP:$name"; else san+=",DNS:$name"; fi
done

if [[ ! -s ca.pem || ! -s ca.key ]]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
    -subj "/CN=leaseq local CA" -keyout ca.key -out ca.pem \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
fi

# Written beside, then moved into place: a broker reloading on SIGHUP meanwhile never
# reads half a file.
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=${1:-localhost}" \
  -keyout key.pem.new -out server.csr 2>/dev/null
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days "$days" \
  -out cert.pem.new -extfile <(printf '%s\n' "subjectAltName=$san" "basicConstraints=CA:FALSE" \
    "keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth") 2>/dev/null
rm -f server.csr
chmod 0644 ca.pem cert.pem.new
mv key.pem.new key.pem
mv cert.pem.new cert.pem
echo "make-local-ca: $dir/cert.pem and key.pem for $san, signed by $dir/ca.pem"
