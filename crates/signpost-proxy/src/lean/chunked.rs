//! Where a chunked body (RFC 9112 §7.1) ends, found in the bytes as they come: the lean path
//! relays the chunks as they are and only needs to know when the answer is over.

/// Finds the end of a chunked body (RFC 9112 §7.1) in the bytes as they come, without decoding
/// it: the chunks are relayed as they are.
#[derive(Debug, Default)]
pub(super) struct ChunkScanner {
    state: Chunk,
    size: u64,
    digits: u8,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    #[default]
    Size,
    /// A chunk extension, up to the line's end.
    Extension,
    SizeLf,
    Data(u64),
    DataCr,
    DataLf,
    /// After the last chunk: a trailer field or the final blank line.
    TrailerStart,
    Trailer,
    TrailerLf,
    EndLf,
    Done,
}

impl ChunkScanner {
    pub(super) fn done(&self) -> bool {
        self.state == Chunk::Done
    }

    /// Reads `bytes`; how many of them belong to the body (all, until its end).
    pub(super) fn feed(&mut self, bytes: &[u8]) -> Result<usize, ()> {
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            self.state = match self.state {
                Chunk::Done => return Ok(i),
                Chunk::Data(left) => {
                    let take = left.min((bytes.len() - i) as u64);
                    i += take as usize;
                    if take == left {
                        self.state = Chunk::DataCr;
                    } else {
                        self.state = Chunk::Data(left - take);
                    }
                    continue;
                }
                Chunk::Size => match b {
                    b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                        let digit = (b as char).to_digit(16).ok_or(())?;
                        self.digits += 1;
                        if self.digits > 15 {
                            return Err(());
                        }
                        self.size = self.size * 16 + u64::from(digit);
                        Chunk::Size
                    }
                    b';' | b' ' | b'\t' if self.digits > 0 => Chunk::Extension,
                    b'\r' if self.digits > 0 => Chunk::SizeLf,
                    _ => return Err(()),
                },
                Chunk::Extension => match b {
                    b'\r' => Chunk::SizeLf,
                    b'\n' => return Err(()),
                    _ => Chunk::Extension,
                },
                Chunk::SizeLf => {
                    if b != b'\n' {
                        return Err(());
                    }
                    let size = std::mem::take(&mut self.size);
                    self.digits = 0;
                    if size == 0 {
                        Chunk::TrailerStart
                    } else {
                        Chunk::Data(size)
                    }
                }
                Chunk::DataCr if b == b'\r' => Chunk::DataLf,
                Chunk::DataLf if b == b'\n' => Chunk::Size,
                Chunk::DataCr | Chunk::DataLf => return Err(()),
                Chunk::TrailerStart if b == b'\r' => Chunk::EndLf,
                Chunk::TrailerStart | Chunk::Trailer if b != b'\r' => Chunk::Trailer,
                Chunk::Trailer => Chunk::TrailerLf,
                Chunk::TrailerLf if b == b'\n' => Chunk::TrailerStart,
                Chunk::EndLf if b == b'\n' => Chunk::Done,
                Chunk::TrailerStart | Chunk::TrailerLf | Chunk::EndLf => return Err(()),
            };
            i += 1;
        }
        Ok(i)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn scan(parts: &[&[u8]]) -> Result<(usize, bool), ()> {
        let mut s = ChunkScanner::default();
        let mut used = 0;
        for p in parts {
            used += s.feed(p)?;
        }
        Ok((used, s.done()))
    }

    #[test]
    fn the_end_of_a_chunked_body_is_found_however_it_is_split() {
        let body: &[u8] =
            b"5;ext=1\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nx-trailer: 1\r\n\r\n";
        for split in 0..=body.len() {
            let (a, b) = body.split_at(split);
            assert_eq!(scan(&[a, b]), Ok((body.len(), true)), "split at {split}");
        }
        // Byte by byte, and with the next answer behind it.
        let bytes: Vec<&[u8]> = body.chunks(1).collect();
        assert_eq!(scan(&bytes), Ok((body.len(), true)));
        let mut more = body.to_vec();
        more.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
        assert_eq!(scan(&[&more]), Ok((body.len(), true)));
        assert_eq!(scan(&[b"0\r\n\r\n"]), Ok((5, true)));
        assert_eq!(scan(&[b"3\r\nabc\r\n"]), Ok((8, false)));
    }

    #[test]
    fn a_broken_chunked_body_is_refused() {
        for bad in [
            &b"x\r\n"[..],
            b"\r\n",
            b"3\r\nabcX",
            b"3\nabc",
            b"ffffffffffffffff\r\n",
            b"0\r\n\rX",
        ] {
            assert_eq!(scan(&[bad]), Err(()), "{}", String::from_utf8_lossy(bad));
        }
    }
}
