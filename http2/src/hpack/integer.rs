//! Integers with an N-bit prefix (RFC 7541 section 5.1): a value below 2^N - 1 fits in the
//! prefix, a larger one continues in bytes of 7 bits each, least significant first.
//!
//! The decoder bounds them: a value above `u32::MAX`, or more than five continuation bytes (which
//! already carry 35 bits), is [`DecodeError::IntegerOverflow`]. No index, string length or table
//! size in HTTP/2 comes near 2^32, and the bound keeps a hostile peer from making the decoder
//! read on through bytes of `0x80`.

use bytes::{BufMut, BytesMut};

use super::DecodeError;

/// The most continuation bytes an integer may have.
const MAX_CONTINUATION: u32 = 5;

/// Reads the integer whose first byte is at `*pos`, with a prefix of `prefix_bits` bits (the
/// caller has looked at the bits above them), and moves `*pos` past it.
pub(super) fn decode(buf: &[u8], pos: &mut usize, prefix_bits: u8) -> Result<usize, DecodeError> {
    let mask = (1u64 << prefix_bits) - 1;
    let first = *buf.get(*pos).ok_or(DecodeError::Truncated)?;
    *pos += 1;
    let mut value = u64::from(first) & mask;
    if value < mask {
        return usize::try_from(value).map_err(|_| DecodeError::IntegerOverflow);
    }
    for shift in 0..MAX_CONTINUATION {
        let byte = *buf.get(*pos).ok_or(DecodeError::Truncated)?;
        *pos += 1;
        value += u64::from(byte & 0x7f) << (7 * shift);
        if byte & 0x80 == 0 {
            if value > u64::from(u32::MAX) {
                return Err(DecodeError::IntegerOverflow);
            }
            return usize::try_from(value).map_err(|_| DecodeError::IntegerOverflow);
        }
    }
    Err(DecodeError::IntegerOverflow)
}

/// Appends `value` with a prefix of `prefix_bits` bits; `flags` holds the bits above the prefix
/// (the representation's pattern, such as `0x80` for an indexed field).
pub(super) fn encode(dst: &mut BytesMut, flags: u8, prefix_bits: u8, value: usize) {
    let mask = (1usize << prefix_bits) - 1;
    if value < mask {
        dst.put_u8(flags | value as u8);
        return;
    }
    dst.put_u8(flags | mask as u8);
    let mut rest = value - mask;
    while rest >= 0x80 {
        dst.put_u8(0x80 | (rest & 0x7f) as u8);
        rest >>= 7;
    }
    dst.put_u8(rest as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(bytes: &[u8], prefix_bits: u8) -> Result<(usize, usize), DecodeError> {
        let mut pos = 0;
        decode(bytes, &mut pos, prefix_bits).map(|v| (v, pos))
    }

    #[test]
    fn rfc_examples() {
        // C.1.1: 10 with a 5-bit prefix; C.1.2: 1337 with a 5-bit prefix; C.1.3: 42 at 8 bits.
        assert_eq!(read(&[0x0a], 5), Ok((10, 1)));
        assert_eq!(read(&[0x1f, 0x9a, 0x0a], 5), Ok((1337, 3)));
        assert_eq!(read(&[0x2a], 8), Ok((42, 1)));
        let mut out = BytesMut::new();
        encode(&mut out, 0, 5, 1337);
        assert_eq!(&out[..], [0x1f, 0x9a, 0x0a]);
    }

    #[test]
    fn round_trip_at_every_prefix() {
        for prefix in 1..=8 {
            for value in [
                0,
                1,
                30,
                31,
                126,
                127,
                128,
                255,
                16_383,
                1 << 20,
                u32::MAX as usize,
            ] {
                let mut out = BytesMut::new();
                encode(&mut out, 0, prefix, value);
                assert_eq!(
                    read(&out, prefix),
                    Ok((value, out.len())),
                    "{value} at {prefix}"
                );
            }
        }
    }

    #[test]
    fn bounds() {
        // 2^32 exactly: one more than the largest accepted.
        let mut out = BytesMut::new();
        encode(&mut out, 0, 5, 1 << 32);
        assert_eq!(read(&out, 5), Err(DecodeError::IntegerOverflow));
        // Six continuation bytes, even of a small value.
        assert_eq!(
            read(&[0x1f, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00], 5),
            Err(DecodeError::IntegerOverflow)
        );
        // Five are accepted when the value fits.
        assert_eq!(read(&[0x1f, 0x80, 0x80, 0x80, 0x80, 0x00], 5), Ok((31, 6)));
        assert_eq!(read(&[0x1f, 0x80], 5), Err(DecodeError::Truncated));
    }
}
