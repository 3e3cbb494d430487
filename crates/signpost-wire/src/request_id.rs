//! Request ids (`x-request-id`), the one rule of the server and the proxy (docs/PROXY.md): the
//! caller's id when it is a sane token (up to 128 letters, digits, `-_.:`), else a new one, a
//! random prefix drawn once per process and a counter (no system call per request).

/// The header's name.
pub const HEADER: &str = "x-request-id";

/// The caller's id (`given`, the header's value) when it is usable, else a new one.
pub fn request_id(given: Option<&str>) -> String {
    static PREFIX: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    if let Some(given) = given.filter(|v| {
        !v.is_empty()
            && v.len() <= 128
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
    }) {
        return given.to_owned();
    }
    let prefix = PREFIX.get_or_init(|| uuid::Uuid::new_v4().simple().to_string()[..12].to_owned());
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{prefix}-{n:x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sane_ids_are_kept_others_replaced() {
        assert_eq!(request_id(Some("req-1.a:b_c")), "req-1.a:b_c");
        for bad in ["", "has space", "semi;colon", &"x".repeat(129)] {
            let made = request_id(Some(bad));
            assert_ne!(made, bad);
            assert_eq!(
                made.len(),
                12 + 1 + made.split('-').nth(1).unwrap_or("").len()
            );
        }
        let (a, b) = (request_id(None), request_id(None));
        assert_ne!(a, b, "a counter makes each new id distinct");
        assert_eq!(a[..12], b[..12], "one prefix per process");
    }
}
