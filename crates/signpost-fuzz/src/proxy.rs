//! The proxy's outside input: a workload's request head (the route by `Host` or the target's
//! authority, the headers of PROXY.md §3.2 that steer a dynamic route) and its configuration
//! file (SAP's Helm values tree plus the routes file).

use std::sync::OnceLock;

use base64::Engine as _;
use http::{HeaderMap, HeaderName, HeaderValue};
use signpost_proxy::config::{self, CredentialSource, ProxyConfig};
use signpost_proxy::metrics::Metrics;
use signpost_proxy::routing::{self, RouteTable};

/// Most header fields the proxy reads in a head (the lean path's limit).
const MAX_HEADERS: usize = 96;
/// Longest destination or fragment name a header may carry (routing's limit).
const MAX_NAME: usize = 200;
/// The proxy's own namespace in [`table`].
const NAMESPACE: &str = "default";

/// A service key that `config::parse` accepts, as `secretData`.
fn secret_data() -> String {
    base64::engine::general_purpose::STANDARD.encode(
        br#"{"clientid":"fuzz","clientsecret":"fuzz-secret","url":"http://token.invalid","uri":"http://destinations.invalid"}"#,
    )
}

/// Values with one instance and three routes: a static one with a fragment and a chain, a
/// dynamic one (`"*"`) in another namespace, and a second static one of the same name there.
fn routes_values() -> String {
    format!(
        "config:
  integration:
    destinationService:
      instances:
        - name: dest
          serviceCredentials: {{ secretData: {} }}
destinations:
  - name: orders
    spec:
      destinationRef: {{ name: orders-backend, level: subaccount }}
      fragmentRef: {{ name: eu, optional: true }}
      chainRef: {{ name: chain, variables: [{{ name: Region, value: eu10 }}] }}
  - name: any
    namespace: apps
    spec:
      destinationRef: {{ name: '*' }}
  - name: orders
    namespace: apps
    spec:
      destinationRef: {{ name: apps-orders }}
",
        secret_data()
    )
}

fn table() -> &'static (ProxyConfig, RouteTable) {
    static TABLE: OnceLock<(ProxyConfig, RouteTable)> = OnceLock::new();
    TABLE.get_or_init(|| {
        let cfg = config::parse(
            &routes_values(),
            "values.yaml",
            None,
            &CredentialSource::None,
        )
        .unwrap_or_else(|e| panic!("the fuzz target's own values: {e}"));
        let table = RouteTable::new(&cfg, NAMESPACE, &Metrics::default());
        (cfg, table)
    })
}

/// A request head as a workload sends it (`GET / HTTP/1.1`, header lines, an empty line): parsed
/// with `httparse` and the `http` types as the proxy's two paths do, routed by its host, and
/// looked up on every route. A lookup names what its route or headers name, valid names only;
/// without a steering header it is the route's own; refusals are 400s.
pub fn proxy_headers(data: &[u8]) {
    let (_, table) = table();
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut fields);
    // A partial head still has its complete fields: they are routed as well.
    let _ = req.parse(data);
    let mut headers = HeaderMap::new();
    for field in req.headers.iter() {
        if field.name.is_empty() {
            continue;
        }
        let _ = routing::steers(field.name);
        // What the `http` types refuse, hyper refuses (400) before routing.
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(field.name.as_bytes()),
            HeaderValue::from_bytes(field.value),
        ) {
            headers.append(n, v);
        }
    }
    // The host: the target's authority (absolute form), else `Host` (as `forward` reads it).
    let authority = req
        .path
        .and_then(|p| p.parse::<http::Uri>().ok())
        .and_then(|u| u.authority().map(|a| a.as_str().to_owned()));
    let host = authority.or_else(|| {
        headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_owned)
    });
    if let Some(host) = host {
        for h in [host.as_str(), host.trim()] {
            if let Some(i) = table.position(h) {
                let entry = &table.routes()[i];
                assert!(
                    h.to_ascii_lowercase().contains(&entry.route.name),
                    "host {h:?} routed to {}",
                    entry.id
                );
                assert_eq!(table.lookup(h).map(|e| &e.id), Some(&entry.id));
            }
        }
    }
    let steered = routing::steered(&headers);
    for entry in table.routes() {
        let route = &entry.route;
        match routing::lookup_for(route, &headers) {
            Ok(lookup) => {
                if route.is_dynamic() {
                    valid_name(&lookup.name);
                    let header = routing::single(&headers, "x-destination-name")
                        .ok()
                        .flatten();
                    assert_eq!(Some(lookup.name.as_str()), header);
                    if let Some(f) = &lookup.fragment {
                        valid_name(&f.name);
                    }
                } else {
                    assert_eq!(lookup.name, route.spec.destination_ref.name);
                }
                if !steered {
                    let plain = routing::lookup_for(route, &HeaderMap::new());
                    assert_eq!(plain.ok().as_ref(), Some(&lookup));
                }
            }
            Err(e) => assert_eq!(e.status, 400, "{}", e.message),
        }
    }
    // Every route is found by its own names, with a port and as a Service's DNS name.
    for (i, entry) in table.routes().iter().enumerate() {
        for host in [
            entry.id.clone(),
            format!("{}:8080", entry.id),
            format!("{}.svc.cluster.local.", entry.id.to_ascii_uppercase()),
        ] {
            assert_eq!(table.position(&host), Some(i), "{host}");
        }
    }
}

fn valid_name(name: &str) {
    assert!(!name.is_empty() && name.len() <= MAX_NAME, "{name:?}");
    assert!(
        name.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')),
        "{name:?}"
    );
}

/// The values file, and after a NUL byte the routes file: what parses parses again equal with
/// the same fingerprint, and its route table serves each route by its name and namespace, each
/// with the instance it uses or the reason it has none.
pub fn proxy_config(data: &[u8]) {
    let (values, routes) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], Some(&data[i + 1..])),
        None => (data, None),
    };
    let Ok(values) = std::str::from_utf8(values) else {
        return;
    };
    let routes = match routes.map(std::str::from_utf8) {
        Some(Ok(r)) => Some(("routes.yaml", r)),
        Some(Err(_)) => return,
        None => None,
    };
    let parse = || config::parse(values, "values.yaml", routes, &CredentialSource::None);
    let cfg = match parse() {
        Ok(cfg) => cfg,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    let again = parse().expect("the same text parses twice");
    assert!(again == cfg, "a second parse differs");
    assert_eq!(again.fingerprint(), cfg.fingerprint());
    assert!(!cfg.instances.is_empty());
    if let Some(name) = cfg.instance_for(None) {
        assert!(cfg.instances.iter().any(|x| x.name == name));
    }
    let table = RouteTable::new(&cfg, NAMESPACE, &Metrics::default());
    assert_eq!(
        table.routes().len(),
        cfg.routes.len(),
        "a route without an instance"
    );
    for (i, entry) in table.routes().iter().enumerate() {
        assert_eq!(table.position(&entry.id), Some(i), "{}", entry.id);
        // Every route has an instance it uses, or says why it has none (its requests are 502s).
        let known = cfg.instances.iter().any(|x| x.name == entry.instance);
        assert_eq!(
            known,
            entry.unresolved.is_none(),
            "{}: {:?}",
            entry.id,
            entry.unresolved
        );
        assert_eq!(
            entry.unresolved,
            cfg.instance_problem(&entry.route),
            "{}",
            entry.id
        );
    }
    assert_eq!(
        cfg.route_problems().len(),
        table
            .routes()
            .iter()
            .filter(|e| e.unresolved.is_some())
            .count()
    );
}

/// A target's answer as the lean path reads it (its head, then the body's first bytes), after one
/// byte of settings: bit 0 says the request was a `HEAD`, the other bits how the bytes arrive (in
/// pieces of 1 to 128 bytes). Whatever it is: the same reading however the bytes arrive; the head
/// for the workload is one whole HTTP/1.1 head with the target's status, without hop-by-hop
/// fields but the framing's own (`transfer-encoding` for relayed chunks, `connection: close` when
/// the body ends with the connection), never both a length and chunks, and reading it again gives
/// it back unchanged with the same framing.
pub fn proxy_answer(data: &[u8]) {
    use signpost_proxy::{read_answer, ChunkedEnd, Framing};
    let Some((&settings, raw)) = data.split_first() else {
        return;
    };
    let head_request = settings & 1 == 1;
    let piece = usize::from(settings >> 1) + 1;
    let cuts: Vec<usize> = (1..)
        .map(|i| i * piece)
        .take_while(|c| *c < raw.len())
        .collect();
    let whole = read_answer(raw, head_request, &[]);
    let pieces = read_answer(raw, head_request, &cuts);
    assert_eq!(whole, pieces, "the reading depends on how the bytes arrive");
    let Ok(Some(seen)) = whole else {
        return;
    };
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS + 1];
    let mut res = httparse::Response::new(&mut fields);
    assert_eq!(
        res.parse(&seen.head),
        Ok(httparse::Status::Complete(seen.head.len())),
        "the workload's head is not one whole head"
    );
    assert_eq!(res.version, Some(1));
    assert_eq!(res.code, Some(seen.status));
    let mut length = false;
    let mut chunks = false;
    for field in res.headers.iter() {
        let name = field.name.to_ascii_lowercase();
        match name.as_str() {
            "transfer-encoding" => {
                assert_eq!(seen.framing, Framing::Chunked, "transfer-encoding kept");
                chunks = true;
            }
            "connection" => {
                assert_eq!(field.value, b"close");
                assert_eq!(seen.framing, Framing::Close, "connection: close added");
            }
            "content-length" => length = true,
            _ => assert!(
                !signpost_proxy::forward::HOP_BY_HOP.contains(&name.as_str()),
                "hop-by-hop field {name} forwarded"
            ),
        }
    }
    assert!(!(length && chunks), "both a length and chunks");
    if seen.framing == Framing::Close {
        assert!(!seen.keep_alive);
    }
    if let Some(ChunkedEnd::Found(n)) = seen.chunked {
        assert!(n <= raw.len());
    }
    if res.headers.len() <= MAX_HEADERS {
        let again = read_answer(&seen.head, head_request, &[])
            .expect("the workload's head reads again")
            .expect("the workload's head is whole");
        assert_eq!(again.head, seen.head, "a second rewrite changes the head");
        assert_eq!(again.framing, seen.framing);
    }
}
