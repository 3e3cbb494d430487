//! PEM (RFC 7468), read and written in one place, with the `pem` crate: blocks are written with
//! 64-character lines and LF line ends; reading tolerates surrounding text, other line lengths and
//! CRLF, and refuses what it cannot read whole.

/// `der` as one PEM block labelled `label`.
pub fn encode(label: &str, der: &[u8]) -> String {
    pem::encode_config(
        &pem::Pem::new(label, der.to_vec()),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

/// Every PEM block of `input`, refusing the whole when one is not base64 or a `BEGIN` line has
/// no matching `END` line (the `pem` crate skips those silently). The error never quotes the
/// input.
pub fn blocks(input: &[u8]) -> Result<Vec<pem::Pem>, String> {
    let blocks = pem::parse_many(input).map_err(|e| format!("not valid PEM ({e})"))?;
    let begins = input.windows(11).filter(|w| *w == b"-----BEGIN ").count();
    if blocks.len() < begins {
        return Err(format!(
            "{} of its {begins} PEM blocks have no matching END line",
            begins - blocks.len()
        ));
    }
    Ok(blocks)
}

/// The label and contents of the first block labelled one of `labels`. A block without its END
/// line, one that is not base64, and one with RFC 1421 headers (OpenSSL's legacy encryption) are
/// refused. The error is a reason that never quotes the input.
pub fn read_block(input: &[u8], labels: &[&str]) -> Result<(String, Vec<u8>), String> {
    let blocks = blocks(input)?;
    if blocks.is_empty() {
        return Err("no PEM block found".to_owned());
    }
    let block = blocks
        .into_iter()
        .find(|b| labels.contains(&b.tag()))
        .ok_or_else(|| format!("no PEM block labelled {}", labels.join(" or ")))?;
    if block.headers().iter().next().is_some() {
        return Err("encrypted or annotated PEM blocks are not supported".to_owned());
    }
    Ok((block.tag().to_owned(), block.into_contents()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn written_blocks_read_back_and_layout_does_not_matter() {
        let der: Vec<u8> = (0..=255u8).cycle().take(100).collect();
        let text = encode("CERTIFICATE", &der);
        assert!(text.starts_with("-----BEGIN CERTIFICATE-----\n"));
        assert!(text.ends_with("-----END CERTIFICATE-----\n"));
        assert!(text
            .lines()
            .all(|l| l.len() <= 64 || l.starts_with("-----")));
        assert_eq!(
            read_block(text.as_bytes(), &["CERTIFICATE"]).unwrap(),
            ("CERTIFICATE".to_owned(), der.clone())
        );
        let messy = format!("junk before\r\n{}\r\nafter", text.replace('\n', "\r\n"));
        let (_, read) = read_block(messy.as_bytes(), &["X", "CERTIFICATE"]).unwrap();
        assert_eq!(read, der);
        assert_eq!(
            encode("EMPTY", &[]),
            "-----BEGIN EMPTY-----\n-----END EMPTY-----\n"
        );
    }

    #[test]
    fn what_cannot_be_read_whole_is_refused() {
        for (input, reason) in [
            ("nothing here", "no PEM block"),
            ("-----BEGIN CERTIFICATE-----\nAAAA", "no matching END line"),
            ("-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n", "not valid PEM"),
            (
                "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nAAAA\n-----END RSA PRIVATE KEY-----\n",
                "encrypted",
            ),
            ("-----BEGIN KEY-----\nAAAA\n-----END KEY-----\n", "no PEM block labelled"),
        ] {
            let e = read_block(input.as_bytes(), &["CERTIFICATE", "RSA PRIVATE KEY"]).unwrap_err();
            assert!(e.contains(reason), "{input:?}: {e}");
            assert!(!e.contains("AAAA"), "the input is not quoted");
        }
    }
}
