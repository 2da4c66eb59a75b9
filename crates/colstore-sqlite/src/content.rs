//! Encoding content at rest: zstd when it saves space, raw otherwise; fixed-size parts for large content.

use bytes::Bytes;

/// Raw bytes.
pub(crate) const CODEC_RAW: i64 = 0;
/// zstd frame.
pub(crate) const CODEC_ZSTD: i64 = 1;

/// Content up to this size is stored inline in one row; larger content is split into parts of this size.
pub(crate) const PART_SIZE: usize = 1024 * 1024;

/// Below this size compression cannot pay for the zstd frame header.
const MIN_COMPRESS: usize = 64;

/// zstd level: 3 is zstd's default, a good speed/ratio balance for text.
const LEVEL: i32 = 3;

/// Compresses `raw` when that makes it smaller; returns the codec and the bytes to store.
pub(crate) fn encode(raw: &[u8]) -> (i64, Vec<u8>) {
    if raw.len() >= MIN_COMPRESS
        && let Ok(z) = zstd::bulk::compress(raw, LEVEL)
        && z.len() < raw.len()
    {
        return (CODEC_ZSTD, z);
    }
    (CODEC_RAW, raw.to_vec())
}

/// Decodes stored bytes; `capacity` bounds the decoded size.
pub(crate) fn decode(codec: i64, stored: Vec<u8>, capacity: usize) -> Result<Bytes, String> {
    match codec {
        CODEC_RAW => Ok(Bytes::from(stored)),
        CODEC_ZSTD => zstd::bulk::decompress(&stored, capacity.max(1)).map(Bytes::from).map_err(|e| format!("zstd decoding failed: {e}")),
        other => Err(format!("unknown codec {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_compressed_and_noise_is_not() {
        let text = "the quick brown fox jumps over the lazy dog. ".repeat(100);
        let (codec, stored) = encode(text.as_bytes());
        assert_eq!(codec, CODEC_ZSTD);
        assert!(stored.len() < text.len() / 4);
        assert_eq!(decode(codec, stored, text.len()).unwrap(), text.as_bytes());

        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let noise: Vec<u8> = (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect();
        let (codec, stored) = encode(&noise);
        assert_eq!(codec, CODEC_RAW);
        assert_eq!(stored, noise);

        let (codec, _) = encode(b"tiny");
        assert_eq!(codec, CODEC_RAW);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(decode(CODEC_ZSTD, vec![1, 2, 3], 10).is_err());
        assert!(decode(9, vec![], 0).is_err());
    }
}
