//! Byte-level pieces of the wire format: CRC-32, COBS, LEB128 varints, a writer and a reader
//! that names the offset of whatever it cannot read.

use std::fmt;

/// CRC-32/ISO-HDLC (zlib's `crc32`): reflected polynomial 0xEDB88320, init and xor-out all ones.
pub fn crc32(data: &[u8]) -> u32 {
    crc32_update(0, data)
}

/// Slicing-by-16 tables: `TABLES[0]` is the classic byte table, `TABLES[k][i]` the CRC of byte
/// `i` followed by `k` zero bytes. 16 KiB, built at compile time.
const TABLES: [[u32; 256]; 16] = {
    let mut t = [[0u32; 256]; 16];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
            k += 1;
        }
        t[0][i] = c;
        i += 1;
    }
    let mut k = 1;
    while k < 16 {
        let mut i = 0;
        while i < 256 {
            let prev = t[k - 1][i];
            t[k][i] = (prev >> 8) ^ t[0][(prev & 0xFF) as usize];
            i += 1;
        }
        k += 1;
    }
    t
};

/// Continues a CRC-32 over more data (`crc32_update(crc32(a), b) == crc32(a ++ b)`).
///
/// Slicing-by-16: sixteen table lookups per 16 bytes, no data-dependent chain between them,
/// several bytes per cycle on any 64-bit host; the protocol crate stays free of dependencies.
pub fn crc32_update(crc: u32, data: &[u8]) -> u32 {
    let t = &TABLES;
    let mut c = !crc;
    let mut blocks = data.chunks_exact(16);
    for b in &mut blocks {
        let a = c ^ u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        c = t[15][(a & 0xFF) as usize]
            ^ t[14][((a >> 8) & 0xFF) as usize]
            ^ t[13][((a >> 16) & 0xFF) as usize]
            ^ t[12][(a >> 24) as usize]
            ^ t[11][b[4] as usize]
            ^ t[10][b[5] as usize]
            ^ t[9][b[6] as usize]
            ^ t[8][b[7] as usize]
            ^ t[7][b[8] as usize]
            ^ t[6][b[9] as usize]
            ^ t[5][b[10] as usize]
            ^ t[4][b[11] as usize]
            ^ t[3][b[12] as usize]
            ^ t[2][b[13] as usize]
            ^ t[1][b[14] as usize]
            ^ t[0][b[15] as usize];
    }
    for &b in blocks.remainder() {
        c = t[0][((c ^ u32::from(b)) & 0xFF) as usize] ^ (c >> 8);
    }
    !c
}

/// COBS-encodes `data` (no zero bytes in the output; no trailing delimiter added).
pub fn cobs_encode(data: &[u8], out: &mut Vec<u8>) {
    out.reserve(data.len() + data.len() / 254 + 2);
    let mut code_at = out.len();
    out.push(0);
    let mut code = 1u8;
    for &b in data {
        if b != 0 {
            out.push(b);
            code += 1;
        }
        if b == 0 || code == 0xFF {
            out[code_at] = code;
            code = 1;
            code_at = out.len();
            out.push(0);
        }
    }
    out[code_at] = code;
}

/// Reverses [`cobs_encode`]. Fails on a zero byte or a code that points past the end.
pub fn cobs_decode(data: &[u8], out: &mut Vec<u8>) -> Result<(), DecodeError> {
    out.clear();
    let mut i = 0;
    while i < data.len() {
        let code = data[i];
        if code == 0 {
            return Err(DecodeError::new(i, "zero byte inside a COBS frame"));
        }
        let end = i + code as usize;
        if end > data.len() {
            return Err(DecodeError::new(i, format!("COBS code {code} runs past the frame's end")));
        }
        let chunk = &data[i + 1..end];
        if let Some(z) = chunk.iter().position(|&b| b == 0) {
            return Err(DecodeError::new(i + 1 + z, "zero byte inside a COBS frame"));
        }
        out.extend_from_slice(chunk);
        i = end;
        if code != 0xFF && i < data.len() {
            out.push(0);
        }
    }
    Ok(())
}

/// Something in a frame that could not be read, and where: the byte offset inside the frame
/// body (after COBS decoding) or, for COBS errors, inside the encoded frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError {
    pub offset: usize,
    pub message: String,
}

impl DecodeError {
    pub fn new(offset: usize, message: impl Into<String>) -> DecodeError {
        DecodeError { offset, message: message.into() }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at byte {}: {}", self.offset, self.message)
    }
}

impl std::error::Error for DecodeError {}

/// Appends little-endian integers, varints and strings to a buffer.
#[derive(Default)]
pub struct Writer {
    pub buf: Vec<u8>,
}

impl Writer {
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    pub fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// Unsigned LEB128.
    pub fn varint(&mut self, mut v: u64) {
        loop {
            let byte = (v & 0x7F) as u8;
            v >>= 7;
            if v == 0 {
                self.buf.push(byte);
                return;
            }
            self.buf.push(byte | 0x80);
        }
    }

    /// Length as a varint, then the UTF-8 bytes.
    pub fn str(&mut self, s: &str) {
        self.varint(s.len() as u64);
        self.buf.extend_from_slice(s.as_bytes());
    }

    pub fn bytes(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }
}

/// Reads what [`Writer`] writes; every error names the offset where reading failed.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Added to offsets in errors, so nested readers report offsets in the whole body.
    base: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0, base: 0 }
    }

    pub fn with_base(buf: &'a [u8], base: usize) -> Reader<'a> {
        Reader { buf, pos: 0, base }
    }

    pub fn offset(&self) -> usize {
        self.base + self.pos
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// The bytes not read yet.
    pub fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    pub fn error(&self, message: impl Into<String>) -> DecodeError {
        DecodeError::new(self.offset(), message)
    }

    #[inline]
    pub fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < n {
            return Err(self.error(format!("{what}: need {n} bytes, {} left", self.remaining())));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    #[inline]
    pub fn u8(&mut self, what: &str) -> Result<u8, DecodeError> {
        match self.buf.get(self.pos) {
            Some(&b) => {
                self.pos += 1;
                Ok(b)
            }
            None => Err(self.error(format!("{what}: need 1 bytes, 0 left"))),
        }
    }

    pub fn u16(&mut self, what: &str) -> Result<u16, DecodeError> {
        let b = self.take(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    pub fn u32(&mut self, what: &str) -> Result<u32, DecodeError> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    #[inline]
    pub fn varint(&mut self, what: &str) -> Result<u64, DecodeError> {
        // Most varints on the wire are one byte.
        if let Some(&b) = self.buf.get(self.pos) {
            if b < 0x80 {
                self.pos += 1;
                return Ok(u64::from(b));
            }
        }
        self.varint_long(what)
    }

    fn varint_long(&mut self, what: &str) -> Result<u64, DecodeError> {
        let start = self.offset();
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.u8(what)?;
            let bits = u64::from(byte & 0x7F);
            if shift == 63 && bits > 1 {
                break;
            }
            v |= bits << shift;
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(DecodeError::new(start, format!("{what}: varint longer than 64 bits")))
    }

    /// A varint that must fit `usize` and be at most `max`.
    pub fn count(&mut self, what: &str, max: u64) -> Result<usize, DecodeError> {
        let start = self.offset();
        let v = self.varint(what)?;
        if v > max {
            return Err(DecodeError::new(start, format!("{what} {v} is more than {max}")));
        }
        Ok(v as usize)
    }

    pub fn str(&mut self, what: &str) -> Result<String, DecodeError> {
        let len = self.count(what, self.remaining() as u64)?;
        let start = self.offset();
        let bytes = self.take(len, what)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError::new(start, format!("{what} is not UTF-8")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32_update(crc32(b"1234"), b"56789"), 0xCBF4_3926);
        // Every length and alignment of the 16-byte loop against the bitwise definition.
        let data: Vec<u8> = (0..300u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        let bitwise = |d: &[u8]| {
            let mut c = !0u32;
            for &b in d {
                c ^= u32::from(b);
                for _ in 0..8 {
                    c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
                }
            }
            !c
        };
        for start in 0..17 {
            for len in [0, 1, 15, 16, 17, 31, 32, 33, 100, 283 - start] {
                let d = &data[start..start + len];
                assert_eq!(crc32(d), bitwise(d), "start {start} len {len}");
            }
        }
    }

    #[test]
    fn cobs_known_vectors() {
        // From the COBS paper / Wikipedia.
        let cases: &[(&[u8], &[u8])] = &[
            (&[], &[0x01]),
            (&[0x00], &[0x01, 0x01]),
            (&[0x00, 0x00], &[0x01, 0x01, 0x01]),
            (&[0x11, 0x22, 0x00, 0x33], &[0x03, 0x11, 0x22, 0x02, 0x33]),
            (&[0x11, 0x00, 0x00, 0x00], &[0x02, 0x11, 0x01, 0x01, 0x01]),
        ];
        for (raw, enc) in cases {
            let mut out = Vec::new();
            cobs_encode(raw, &mut out);
            assert_eq!(&out, enc, "encode {raw:02x?}");
            let mut back = Vec::new();
            cobs_decode(enc, &mut back).unwrap();
            assert_eq!(&back, raw, "decode {enc:02x?}");
        }
    }

    #[test]
    fn cobs_long_runs() {
        for n in [253usize, 254, 255, 508, 509, 1000] {
            let raw: Vec<u8> = (0..n).map(|i| (i % 255 + 1) as u8).collect();
            let mut enc = Vec::new();
            cobs_encode(&raw, &mut enc);
            assert!(!enc.contains(&0));
            let mut back = Vec::new();
            cobs_decode(&enc, &mut back).unwrap();
            assert_eq!(back, raw, "n = {n}");
        }
    }

    #[test]
    fn varints_round_trip_and_reject_overflow() {
        for v in [0u64, 1, 127, 128, 300, u32::MAX as u64, u64::MAX] {
            let mut w = Writer::default();
            w.varint(v);
            assert_eq!(Reader::new(&w.buf).varint("v").unwrap(), v);
        }
        let mut w = Writer::default();
        w.varint(300);
        assert_eq!(w.buf, [0xAC, 0x02]);
        let too_long = [0xFF; 11];
        assert!(Reader::new(&too_long).varint("v").is_err());
        assert_eq!(Reader::new(&[0x80]).varint("v").unwrap_err().offset, 1);
    }
}
