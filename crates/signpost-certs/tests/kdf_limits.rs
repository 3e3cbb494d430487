//! The key-derivation work an upload may demand is capped (issue 11 §2): PBKDF2 iterations per
//! derivation and per file, scrypt memory and work. Files made by openssl; a file over a limit is
//! refused with an error naming the limit, before any derivation runs; files at common settings
//! still open.
#![allow(clippy::unwrap_used)]

mod support;

use signpost_certs::parse::{
    parse, ParseError, MAX_KDF_ITERATIONS_TOTAL, MAX_PBKDF2_ITERATIONS, MAX_SCRYPT_MEMORY,
};
use support::Tools;

const PW: &str = "kdf-pw-1";

fn leaf(t: &Tools) {
    t.root("leaf", "ec", "/CN=kdf-leaf");
}

fn p12(t: &Tools, name: &str, extra: &[&str]) -> Vec<u8> {
    let out = format!("{name}.p12");
    let pass = format!("pass:{PW}");
    let mut args = vec![
        "pkcs12", "-export", "-in", "leaf.pem", "-inkey", "leaf.key", "-out", &out, "-passout",
        &pass,
    ];
    args.extend(extra);
    t.openssl(&args);
    t.read(&out)
}

fn encrypted_pem(t: &Tools, name: &str, extra: &[&str]) -> Vec<u8> {
    let out = format!("{name}.key.pem");
    let pass = format!("pass:{PW}");
    let mut args = vec![
        "pkcs8", "-topk8", "-in", "leaf.key", "-out", &out, "-passout", &pass,
    ];
    args.extend(extra);
    t.openssl(&args);
    let mut pem = t.read("leaf.pem");
    pem.extend(t.read(&out));
    pem
}

fn too_much(result: Result<impl std::fmt::Debug, ParseError>) -> String {
    match result {
        Err(e @ ParseError::TooMuchKeyDerivation(_)) => e.to_string(),
        other => panic!("expected TooMuchKeyDerivation, got {other:?}"),
    }
}

#[test]
fn pkcs12_over_the_iteration_limits_is_refused() {
    let t = Tools::new();
    leaf(&t);
    // Common settings open.
    let ok = p12(&t, "ok", &["-iter", "10000"]);
    assert!(!parse(&ok, Some(PW)).unwrap().locked);
    // One derivation over the limit.
    let over = (MAX_PBKDF2_ITERATIONS + 1).to_string();
    let one = p12(&t, "one", &["-iter", &over, "-nomac"]);
    let e = too_much(parse(&one, Some(PW)));
    assert!(e.contains(&MAX_PBKDF2_ITERATIONS.to_string()), "{e}");
    // Each derivation within the limit, together over it (keys, certificates and MAC).
    let each = (MAX_KDF_ITERATIONS_TOTAL / 2).to_string();
    let all = p12(&t, "all", &["-iter", &each]);
    let e = too_much(parse(&all, Some(PW)));
    assert!(e.contains(&MAX_KDF_ITERATIONS_TOTAL.to_string()), "{e}");
    // Without a password nothing is derived, but the file is refused the same.
    too_much(parse(&all, None));
}

#[test]
fn encrypted_pem_keys_over_the_limits_are_refused() {
    let t = Tools::new();
    leaf(&t);
    let ok = encrypted_pem(&t, "ok", &["-v2", "aes-256-cbc", "-iter", "2048"]);
    assert!(parse(&ok, Some(PW)).is_ok());
    let over = (MAX_PBKDF2_ITERATIONS + 1).to_string();
    let pbkdf2 = encrypted_pem(&t, "pbkdf2", &["-v2", "aes-256-cbc", "-iter", &over]);
    let e = too_much(parse(&pbkdf2, Some(PW)));
    assert!(e.contains(&MAX_PBKDF2_ITERATIONS.to_string()), "{e}");
    let ok = encrypted_pem(&t, "scrypt-ok", &["-scrypt"]);
    assert!(
        parse(&ok, Some(PW)).is_ok(),
        "openssl's default scrypt opens"
    );
    // openssl refuses to make more than 32 MiB itself: raise r from 8 to 64 in its DER
    // (N = 2^14: 128 MiB), which no derivation may run with.
    let big = with_scrypt_r(&ok, 64);
    let e = too_much(parse(&big, Some(PW)));
    assert!(
        e.contains(&format!("limit is {} MiB", MAX_SCRYPT_MEMORY >> 20)),
        "{e}"
    );
}

/// The PEM chain + key of `pem` with the scrypt block size of its encrypted key set to `r`.
fn with_scrypt_r(pem: &[u8], r: u8) -> Vec<u8> {
    use base64::Engine as _;
    let text = String::from_utf8(pem.to_vec()).unwrap();
    let begin = "-----BEGIN ENCRYPTED PRIVATE KEY-----";
    let end = "-----END ENCRYPTED PRIVATE KEY-----";
    let (head, rest) = text.split_at(text.find(begin).unwrap());
    let body: String = rest[begin.len()..rest.find(end).unwrap()]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let mut der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap();
    // ScryptParams: ... costParameter INTEGER 16384, blockSize INTEGER 8, parallelization 1.
    let at = der
        .windows(10)
        .position(|w| w == [0x02, 0x02, 0x40, 0x00, 0x02, 0x01, 0x08, 0x02, 0x01, 0x01])
        .expect("openssl's default scrypt parameters");
    der[at + 6] = r;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    format!("{head}{begin}\n{b64}\n{end}\n").into_bytes()
}
