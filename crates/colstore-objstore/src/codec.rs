//! Objects at rest: one zstd frame (level 2) with the content size and zstd's own checksum, decoded with a hard size cap.

use std::io::Read;

/// The zstd level objects are written with: on text packs it compresses as well as level 3 (within 1 %) and about a
/// third faster, and decompresses faster too (`docs/BENCHMARKS.md`). Any level reads back.
pub const LEVEL: i32 = 2;

/// The largest object `get_object` accepts (1 GiB, uncompressed): anything bigger is `Corrupt` rather than allocated.
pub const MAX_OBJECT_SIZE: u64 = 1 << 30;

/// Compresses `data` into one zstd frame that records its size and a checksum.
///
/// The whole input is compressed in one call (not streamed through a window buffer), which is the fastest way zstd
/// has for data already in memory.
///
/// # Errors
/// Only on an internal zstd failure.
pub fn compress(data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut c = zstd::bulk::Compressor::new(LEVEL)?;
    c.set_parameter(zstd::zstd_safe::CParameter::ChecksumFlag(true))?;
    c.set_parameter(zstd::zstd_safe::CParameter::ContentSizeFlag(true))?;
    c.compress(data)
}

/// Decompresses what [`compress`] wrote, refusing to produce more than `max` bytes.
///
/// # Errors
/// A message saying what failed: not zstd, truncated, garbled (checksum), trailing garbage, or too large.
pub fn decompress(stored: &[u8], max: u64) -> Result<Vec<u8>, String> {
    // The size the frame records (we always write it) sizes the output exactly, instead of a buffer that doubles as
    // it fills (up to twice the memory). The decoder still refuses to write past it, and checks the checksum.
    if let Ok(Some(size)) = zstd::zstd_safe::get_frame_content_size(stored)
        && size > max
    {
        // Refused before anything is decompressed (a few KB of zstd can claim gigabytes).
        return Err(format!("it decompresses to {size} bytes, more than the limit of {max} bytes"));
    }
    if let Ok(Some(size)) = zstd::zstd_safe::get_frame_content_size(stored)
        && size <= max
        && let Ok(capacity) = usize::try_from(size)
    {
        let out = zstd::bulk::Decompressor::new()
            .and_then(|mut d| d.decompress(stored, capacity))
            .map_err(|e| format!("decompression failed: {e}"))?;
        if out.len() != capacity {
            return Err(format!("decompression failed: {} bytes instead of the {size} the frame records", out.len()));
        }
        return Ok(out);
    }
    let dec = zstd::stream::read::Decoder::with_buffer(stored).map_err(|e| format!("decompression failed: {e}"))?;
    let mut out = Vec::new();
    // Never trust a size recorded in the data: read at most one byte more than allowed, then check.
    dec.take(max.saturating_add(1)).read_to_end(&mut out).map_err(|e| format!("decompression failed: {e}"))?;
    if out.len() as u64 > max {
        return Err(format!("it decompresses to more than the limit of {max} bytes"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_damage() {
        for data in [&b""[..], b"x", &b"hello world ".repeat(10_000)] {
            let z = compress(data).unwrap();
            assert!(!z.is_empty());
            assert_eq!(decompress(&z, MAX_OBJECT_SIZE).unwrap(), data);
        }
        let data = b"some text that compresses, some text that compresses, some text".repeat(100);
        let z = compress(&data).unwrap();
        let e = decompress(&z[..z.len() / 2], MAX_OBJECT_SIZE).unwrap_err();
        assert!(e.starts_with("decompression failed"), "{e}");
        let mut flipped = z.clone();
        let mid = flipped.len() / 2;
        flipped[mid] ^= 0x40;
        assert!(!matches!(decompress(&flipped, MAX_OBJECT_SIZE), Ok(d) if d == data), "a bit flip never yields the original");
        let mut trailing = z.clone();
        trailing.extend_from_slice(b"garbage");
        assert!(decompress(&trailing, MAX_OBJECT_SIZE).is_err(), "trailing garbage");
        assert!(decompress(b"not zstd at all", MAX_OBJECT_SIZE).is_err());
        let e = decompress(&z, 100).unwrap_err();
        assert_eq!(e, format!("it decompresses to {} bytes, more than the limit of 100 bytes", data.len()));
    }
}
