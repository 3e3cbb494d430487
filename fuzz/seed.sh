#!/usr/bin/env bash
# Seed corpora for every fuzz target (fuzz/corpus/<target>/): certificates and keystores made by
# openssl and keytool (password "changeit", signpost_fuzz::SEED_PASSWORD), and small hand-written
# valid inputs for the JSON, YAML, query, header and JWT targets. Existing files are kept, so it
# may run over a committed corpus; `cargo +nightly fuzz cmin <target>` shrinks one afterwards.
set -euo pipefail
cd "$(dirname "$0")"
here=$PWD
targets=(certs_parse jks entity_body instance_config list_options properties_import proxy_headers proxy_config proxy_answer bearer_jwt)
for t in "${targets[@]}"; do mkdir -p "corpus/$t"; done
w=$(mktemp -d); trap 'rm -rf "$w"' EXIT
cd "$w"

# Certificates and keystores.
openssl req -x509 -noenc -newkey ec -pkeyopt ec_paramgen_curve:P-256 -keyout root.key -out root.pem \
  -subj "/CN=Fuzz Root" -days 30 -addext basicConstraints=critical,CA:TRUE 2>/dev/null
openssl req -noenc -newkey rsa:2048 -keyout leaf.key -out leaf.csr -subj "/CN=fuzz leaf" 2>/dev/null
printf 'subjectAltName=DNS:fuzz.example,IP:10.1.2.3\n' > leaf.ext
openssl x509 -req -in leaf.csr -CA root.pem -CAkey root.key -CAcreateserial -out leaf.pem -days 10 -extfile leaf.ext 2>/dev/null
cat leaf.key leaf.pem root.pem > key-chain.pem
openssl x509 -in leaf.pem -outform DER -out leaf.der
openssl rsa -in leaf.key -traditional -out leaf.pkcs1.pem 2>/dev/null
openssl ec -in root.key -out root.sec1.pem 2>/dev/null
openssl pkcs8 -topk8 -in leaf.key -passout pass:changeit -out leaf.enc.pem
cat leaf.enc.pem leaf.pem root.pem > enc-chain.pem
openssl pkcs12 -export -in leaf.pem -inkey leaf.key -certfile root.pem -name fuzz -passout pass:changeit -out modern.p12
openssl pkcs12 -export -legacy -in leaf.pem -inkey leaf.key -certfile root.pem -passout pass:changeit -out legacy.p12
keytool -importkeystore -srckeystore modern.p12 -srcstoretype PKCS12 -srcstorepass changeit \
  -destkeystore chain.jks -deststoretype JKS -deststorepass changeit -noprompt 2>/dev/null
keytool -importcert -noprompt -alias root -file root.pem -storetype JKS -keystore trust.jks -storepass changeit 2>/dev/null
keytool -genkeypair -alias k -keyalg EC -dname CN=k -storetype JKS -keystore ec.jks -storepass changeit -keypass changeit 2>/dev/null
cp key-chain.pem leaf.der leaf.pkcs1.pem root.sec1.pem enc-chain.pem modern.p12 legacy.p12 chain.jks trust.jks "$here/corpus/certs_parse/"
cp chain.jks trust.jks ec.jks "$here/corpus/jks/"

b64() { base64 -w0 "$1"; }
b64url() { base64 -w0 | tr '+/' '-_' | tr -d '='; }
c=$here/corpus

# Entity bodies: a destination, a fragment, certificates (PEM and PKCS#12), an array of them.
printf '%s' '{"Name":"orders","Type":"HTTP","URL":"https://orders.example/api","Authentication":"BasicAuthentication","ProxyType":"Internet","User":"me","Password":"secret-password","Description":"a destination"}' > "$c/entity_body/destination.json"
printf '%s' '{"Name":"oauth","Type":"HTTP","URL":"https://api.example","Authentication":"OAuth2ClientCredentials","tokenServiceURL":"https://auth.example/oauth/token","clientId":"c","clientSecret":"s","URL.headers.x-a":"1"}' > "$c/entity_body/oauth.json"
printf '%s' '{"FragmentName":"eu","URL":"https://eu.example","tokenServiceURL":"https://auth.eu.example/oauth/token"}' > "$c/entity_body/fragment.json"
printf '{"Name":"leaf.pem","Type":"CERTIFICATE","Content":"%s"}' "$(b64 key-chain.pem)" > "$c/entity_body/certificate-pem.json"
printf '{"Name":"client.p12","Type":"KEYSTORE","Content":"%s","Password":"changeit"}' "$(b64 modern.p12)" > "$c/entity_body/certificate-p12.json"
printf '%s' '[{"Name":"a","Type":"HTTP","URL":"http://a","Authentication":"NoAuthentication","ProxyType":"Internet"},{"Name":"b","Type":"TCP","Address":"b:1","ProxyType":"OnPremise"},{"Name":"c.pem","Type":null,"Content":"aGk="}]' > "$c/entity_body/array.json"

# The instance configuration JSON: the parameters alone, and in provision and update bodies.
printf '{"HTML5Runtime_enabled":true,"init_data":{"subaccount":{"existing_destinations_policy":"update","destinations":[{"Name":"a","Type":"HTTP","URL":"http://a","Authentication":"NoAuthentication","ProxyType":"Internet"}]},"instance":{"existing_certificates_policy":"ignore","certificates":[{"Name":"root.pem","Content":"%s"}]}},"subscriber_access":{"destination":{"read_scopes":["read"],"write_scopes":["write"]},"certificate":{"read_scopes":[]}}}' "$(b64 root.pem)" > "$c/instance_config/parameters.json"
printf '%s' '{"service_id":"s","plan_id":"p","organization_guid":"o","space_guid":"g","context":{"platform":"cloudfoundry","subaccount_id":"sub","subdomain":"d"},"parameters":{"init_data":{"instance":{"existing_destinations_policy":"fail","destinations":[{"Name":"x","Type":"HTTP","URL":"http://x","Authentication":"NoAuthentication","ProxyType":"Internet"}]}}}}' > "$c/instance_config/provision.json"
printf '%s' '{"service_id":"s","plan_id":"p","parameters":{"HTML5Runtime_enabled":false,"init_data":{"subaccount":{"destinations":[],"certificates":null}}}}' > "$c/instance_config/update.json"

# List query strings.
q=$c/list_options
printf '%s' "%24filter=Name%20in%20('a'%2C%20'b%2527c'%2C%20'd''e')" > "$q/filter-in"
printf '%s' "\$filter=startswith(Name,%20'ord')&\$includeMetadata=modification_time;etag" > "$q/startswith-metadata"
printf '%s' "\$filter=endswith(Name, 'x')" > "$q/endswith"
printf '%s' "\$filter=modifiedwithin('15',+'minutes')" > "$q/modifiedwithin"
printf '%s' '$select=Name' > "$q/select"
printf '%s' '$page=2&$pageSize=50&$pageCount=true&$entityCount=FALSE' > "$q/page"
printf '%s' '$page=1&$select=Name&other=1' > "$q/mixed"

# Properties files as SAP cockpit exports them.
printf '#\n#Mon Mar 04 10:00:00 UTC 2024\nDescription=A \\u00e9 test\nType=HTTP\nURL=https\\://example.org\\:443/a\\=b\nName=my-dest\nProxyType=Internet\nUser = me\nPassword=p\\\\w\nlong=a\\\n    b\n! comment\nAuthentication:BasicAuthentication\nkey\\ with\\ space value\\twith\\ttabs\n' > "$c/properties_import/cockpit.properties"
printf 'Name=oauth\r\nType=HTTP\r\nURL=https\\://api.example\r\nAuthentication=OAuth2ClientCredentials\r\ntokenServiceURL=https\\://auth.example/oauth/token\r\nclientId=c\r\nclientSecret=s\r\n' > "$c/properties_import/crlf.properties"

# Request heads as workloads send them to the proxy.
h=$c/proxy_headers
printf 'GET /orders?id=1 HTTP/1.1\r\nHost: orders\r\nAccept: */*\r\n\r\n' > "$h/static"
printf 'GET / HTTP/1.1\r\nHost: any.apps.svc.cluster.local:80\r\nX-Destination-Name: backend\r\nX-Fragment-Name: eu\r\nX-Fragment-Level: subaccount\r\nX-Fragment-Optional: true\r\nX-Destination-Level: provider_instance\r\nX-Chain-Var-Region: us10\r\n\r\n' > "$h/dynamic"
printf 'POST http://orders.apps/x HTTP/1.1\r\nHost: other\r\nX-Chain-Name: chain\r\nAuthorization: Bearer t\r\nContent-Length: 0\r\n\r\n' > "$h/absolute"
printf 'GET / HTTP/1.1\r\nHost: any.apps\r\nX-Destination-Name: a\r\nX-Destination-Name: b\r\n\r\n' > "$h/twice"

# The proxy's values file, and values + NUL + a routes file.
key=$(printf '%s' '{"clientid":"c","clientsecret":"s","url":"http://token.example","uri":"http://destinations.example"}' | base64 -w0)
values="config:
  tenantMode: dedicated
  http: { retry: { maxRetries: 2, statusCodes: [502, 503] } }
  integration:
    destinationService:
      defaultInstanceName: one
      connectionTimeoutSeconds: 5
      readTimeoutSeconds: 10
      cacheSeconds: 60
      instances:
        - name: one
          serviceCredentials: { secretData: $key }
        - name: two
          serviceCredentials:
            secretData: $key
    connectivityProxy:
      serviceName: connectivity-proxy.system
      http: { port: 20003 }
      tcp: { port: 20004 }
additionalCAs: { pem: '' }
destinations:
  - name: orders
    namespace: default
    spec:
      destinationRef: { name: orders-backend, level: subaccount }
      fragmentRef: { name: eu, optional: true }
      chainRef: { name: chain, variables: [ { name: Region, value: eu10 } ] }
  - name: any
    spec: { destinationRef: { name: '*' }, destinationServiceInstanceName: two }
"
printf '%s' "$values" > "$c/proxy_config/values.yaml"
routes='apiVersion: destination.connectivity.api.sap/v1
kind: Destination
metadata: { name: extra, namespace: apps }
spec: { destinationRef: { name: extra-backend } }
---
kind: List
items:
  - metadata: { name: more }
    spec: { destinationRef: { name: more-backend }, fragmentRef: { name: f } }
'
{ printf '%s' "$values"; printf '\0'; printf '%s' "$routes"; } > "$c/proxy_config/values-and-routes"

# Targets' answers (after the settings byte: bit 0 a HEAD request, the rest the piece size).
a=$c/proxy_answer
printf '\x0eHTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello' > "$a/length"
printf '\x02HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: x-sum\r\n\r\n5;ext=1\r\nhello\r\n0\r\nx-sum: 1\r\n\r\nHTTP/1.1 200 OK' > "$a/chunked-trailer"
printf '\x00HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nConnection: keep-alive, x-hop\r\nx-hop: 1\r\nKeep-Alive: timeout=5\r\nContent-Length: 0\r\n\r\n' > "$a/interim-and-hop-by-hop"
printf '\x04HTTP/1.0 200 OK\r\nServer: old\r\n\r\nuntil the end' > "$a/http10-close"
printf '\x01HTTP/1.1 304 Not Modified\r\nETag: "x"\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 7\r\n\r\n' > "$a/head-304-both"
printf '\x06HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: 3\r\n\r\nabc' > "$a/coding-not-chunked"

# Bearer tokens: JWT-shaped ones, and the JSON that the target splices into a real token.
jh='{"alg":"RS256","typ":"JWT","kid":"key-1"}'
jc='{"jti":"j","iss":"http://127.0.0.1:1/oauth/token","sub":"s","zid":"fuzz-subaccount","cid":"c","client_id":"c","ext_attr":{"enhancer":"XSUAA","zdn":"fuzz","serviceinstanceid":"fuzz-instance"},"scope":["uaa.resource"],"exp":4102444800,"iat":1700000000}'
printf 'Bearer %s.%s.%s' "$(printf '%s' "$jh" | b64url)" "$(printf '%s' "$jc" | b64url)" "$(head -c 256 /dev/urandom | b64url)" > "$c/bearer_jwt/bearer"
printf '%s' "$jh" > "$c/bearer_jwt/header.json"
printf '%s' "$jc" > "$c/bearer_jwt/claims.json"
printf '%s.%s.' "$(printf '%s' '{"alg":"none"}' | b64url)" "$(printf '%s' "$jc" | b64url)" > "$c/bearer_jwt/alg-none"

for t in "${targets[@]}"; do printf '%s: %s inputs\n' "$t" "$(ls "$here/corpus/$t" | wc -l)"; done
