//! Standard base64 (RFC 4648, with padding): what MicroPython's `binascii.b2a_base64` writes.

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

pub fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn value(c: u8) -> Option<u32> {
    Some(match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    } as u32)
}

/// Decodes base64, ignoring ASCII whitespace; `Err(offset)` names the first bad character.
pub fn decode(text: &[u8]) -> Result<Vec<u8>, usize> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let mut acc = 0u32;
    let mut have = 0;
    let mut padding = 0;
    for (at, &c) in text.iter().enumerate() {
        if c.is_ascii_whitespace() {
            continue;
        }
        if c == b'=' {
            padding += 1;
            if padding > 2 {
                return Err(at);
            }
            continue;
        }
        if padding > 0 {
            return Err(at);
        }
        acc = acc << 6 | value(c).ok_or(at)?;
        have += 1;
        if have == 4 {
            out.extend_from_slice(&[(acc >> 16) as u8, (acc >> 8) as u8, acc as u8]);
            acc = 0;
            have = 0;
        }
    }
    match have {
        0 => {}
        2 => out.push((acc >> 4) as u8),
        3 => out.extend_from_slice(&[(acc >> 10) as u8, (acc >> 2) as u8]),
        _ => return Err(text.len()),
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_length() {
        for n in 0..40 {
            let bytes: Vec<u8> = (0..n).map(|i| (i * 37 + 11) as u8).collect();
            assert_eq!(decode(encode(&bytes).as_bytes()), Ok(bytes));
        }
        assert_eq!(encode(b"abc"), "YWJj");
        assert_eq!(decode(b"YWJj\n"), Ok(b"abc".to_vec()));
        assert_eq!(decode(b"YQ=="), Ok(b"a".to_vec()));
    }

    #[test]
    fn names_the_bad_character() {
        assert_eq!(decode(b"YW*j"), Err(2));
        assert_eq!(decode(b"Y"), Err(1));
    }
}
