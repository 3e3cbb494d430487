//! One TLV at a time, for the structures this crate walks itself (PKCS#12 bags and their
//! attributes, the PKCS#7 sniffing of detection, certificate pieces the X.509 parser does not
//! expose). Headers and lengths are decoded and encoded by the `der` crate (single-byte tags,
//! definite minimal lengths, as DER requires); typed structures (PKCS#8, PKCS#1, SEC1, the JKS
//! key info) are decoded by their own crates instead.

use der::{Decode as _, Encode as _, Header, Length, Reader as _, SliceReader};

pub const INTEGER: u8 = 0x02;
pub const OCTET_STRING: u8 = 0x04;
pub const OID: u8 = 0x06;
pub const SEQUENCE: u8 = 0x30;
pub const SET: u8 = 0x31;
pub const BMP_STRING: u8 = 0x1e;

/// One TLV: its tag, its contents and its whole encoding.
#[derive(Debug, Clone, Copy)]
pub struct Tlv<'a> {
    pub tag: u8,
    pub value: &'a [u8],
    pub raw: &'a [u8],
}

/// The header of a TLV: tag, header length and declared content length (which may exceed the
/// data, for a truncated input).
pub fn header(input: &[u8]) -> Option<(u8, usize, usize)> {
    let tag = *input.first()?;
    if tag & 0x1f == 0x1f {
        return None; // multi-byte tags: not needed here
    }
    let mut reader = SliceReader::new(input).ok()?;
    let header = Header::decode(&mut reader).ok()?;
    let header_len = usize::try_from(reader.position()).ok()?;
    let len = usize::try_from(header.length()).ok()?;
    Some((tag, header_len, len))
}

/// Read one TLV; `None` when the input is too short or malformed.
pub fn read(input: &[u8]) -> Option<(Tlv<'_>, &[u8])> {
    let (tag, hlen, len) = header(input)?;
    let end = hlen.checked_add(len)?;
    let raw = input.get(..end)?;
    let value = raw.get(hlen..)?;
    Some((Tlv { tag, value, raw }, input.get(end..)?))
}

/// Read all TLVs of `input`; `None` if anything is malformed.
pub fn read_all(mut input: &[u8]) -> Option<Vec<Tlv<'_>>> {
    let mut out = Vec::new();
    while !input.is_empty() {
        let (tlv, rest) = read(input)?;
        out.push(tlv);
        input = rest;
    }
    Some(out)
}

/// Append a TLV; `None` if `value` is too long for a DER length.
pub fn write(tag: u8, value: &[u8], out: &mut Vec<u8>) -> Option<()> {
    out.push(tag);
    Length::try_from(value.len())
        .ok()?
        .encode_to_vec(out)
        .ok()?;
    out.extend_from_slice(value);
    Some(())
}

/// Dotted form of an OID's contents (for messages and comparisons).
pub fn oid_to_string(value: &[u8]) -> String {
    der::asn1::ObjectIdentifier::from_bytes(value)
        .map(|oid| oid.to_string())
        .unwrap_or_else(|_| "(invalid OID)".into())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn oid_strings() {
        assert_eq!(
            oid_to_string(&[0x2b, 0x06, 0x01, 0x04, 0x01, 0x2a, 0x02, 0x11, 0x01, 0x01]),
            "1.3.6.1.4.1.42.2.17.1.1"
        );
        assert_eq!(
            oid_to_string(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d]),
            "1.2.840.113549"
        );
        assert_eq!(oid_to_string(&[0x2a, 0x86]), "(invalid OID)");
    }

    #[test]
    fn headers_lengths_and_round_trips() {
        let mut out = Vec::new();
        let long = vec![7u8; 300];
        write(OCTET_STRING, &long, &mut out).unwrap();
        assert_eq!(&out[..4], &[0x04, 0x82, 0x01, 0x2c]);
        let (tlv, rest) = read(&out).unwrap();
        assert_eq!(
            (tlv.tag, tlv.value, rest.len()),
            (OCTET_STRING, &long[..], 0)
        );
        // A truncated input: the header still says what was declared.
        assert_eq!(header(&out[..10]), Some((OCTET_STRING, 4, 300)));
        assert!(read(&out[..10]).is_none());
        // Indefinite (BER) and non-minimal lengths are not DER.
        assert!(header(&[0x30, 0x80, 0, 0]).is_none());
        assert!(header(&[0x04, 0x81, 0x05, 1, 2, 3, 4, 5]).is_none());
        assert!(header(&[0x1f, 0x81, 0x00]).is_none());
    }
}
