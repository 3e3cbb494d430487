#!/usr/bin/env bash
# Seed corpora for the fuzz targets, made by openssl and keytool (password "changeit").
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p corpus/parse corpus/jks
w=$(mktemp -d); trap 'rm -rf "$w"' EXIT
cd "$w"
openssl req -x509 -noenc -newkey ec -pkeyopt ec_paramgen_curve:P-256 -keyout root.key -out root.pem \
  -subj "/CN=Fuzz Root" -days 30 -addext basicConstraints=critical,CA:TRUE 2>/dev/null
openssl req -noenc -newkey rsa:2048 -keyout leaf.key -out leaf.csr -subj "/CN=fuzz leaf" 2>/dev/null
printf 'subjectAltName=DNS:fuzz.example,IP:10.1.2.3\n' > leaf.ext
openssl x509 -req -in leaf.csr -CA root.pem -CAkey root.key -CAcreateserial -out leaf.pem -days 10 -extfile leaf.ext 2>/dev/null
cat leaf.key leaf.pem root.pem > key-chain.pem
openssl x509 -in leaf.pem -outform DER -out leaf.der
openssl rsa -in leaf.key -traditional -out leaf.pkcs1.pem
openssl ec -in root.key -out root.sec1.pem 2>/dev/null
openssl pkcs8 -topk8 -in leaf.key -passout pass:changeit -out leaf.enc.pem
cat leaf.enc.pem leaf.pem root.pem > enc-chain.pem
openssl pkcs12 -export -in leaf.pem -inkey leaf.key -certfile root.pem -name fuzz -passout pass:changeit -out modern.p12
openssl pkcs12 -export -legacy -in leaf.pem -inkey leaf.key -certfile root.pem -passout pass:changeit -out legacy.p12
keytool -importkeystore -srckeystore modern.p12 -srcstoretype PKCS12 -srcstorepass changeit \
  -destkeystore chain.jks -deststoretype JKS -deststorepass changeit -noprompt 2>/dev/null
keytool -importcert -noprompt -alias root -file root.pem -storetype JKS -keystore trust.jks -storepass changeit 2>/dev/null
keytool -genkeypair -alias k -keyalg EC -dname CN=k -storetype JKS -keystore ec.jks -storepass changeit -keypass changeit 2>/dev/null
cp key-chain.pem leaf.der leaf.pkcs1.pem root.sec1.pem enc-chain.pem modern.p12 legacy.p12 chain.jks trust.jks "$OLDPWD/corpus/parse/"
cp chain.jks trust.jks ec.jks "$OLDPWD/corpus/jks/"
echo "seeded $(ls "$OLDPWD/corpus/parse" | wc -l) parse and $(ls "$OLDPWD/corpus/jks" | wc -l) jks inputs"
