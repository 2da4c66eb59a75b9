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

/// zstd level 1: about twice as fast as the default level 3 on small texts, for a few percent less compression;
/// ingest speed matters more here (`docs/BENCHMARKS.md`).
const LEVEL: i32 = 1;

thread_local! {
    /// One compression context per thread: creating a context costs as much as compressing a small document.
    static COMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> = const { std::cell::RefCell::new(None) };
    /// Likewise for decompression: a backup decodes every document.
    static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { std::cell::RefCell::new(None) };
}

/// Compresses `raw` when that makes it smaller; returns the codec and the bytes to store.
pub(crate) fn encode(raw: &[u8]) -> (i64, Vec<u8>) {
    if raw.len() >= MIN_COMPRESS {
        let compressed = COMPRESSOR.with(|c| {
            let mut c = c.borrow_mut();
            if c.is_none() {
                *c = zstd::bulk::Compressor::new(LEVEL).ok();
            }
            c.as_mut().and_then(|c| c.compress(raw).ok())
        });
        if let Some(z) = compressed
            && z.len() < raw.len()
        {
            return (CODEC_ZSTD, z);
        }
    }
    (CODEC_RAW, raw.to_vec())
}

/// `f` of every item, in order, on up to four threads when there are enough items to pay for them.
pub(crate) fn par_map<T: Send, U: Send>(items: Vec<T>, f: impl Fn(T) -> U + Sync) -> Vec<U> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(4);
    if items.len() < 64 || threads < 2 {
        return items.into_iter().map(f).collect();
    }
    let per = items.len().div_ceil(threads);
    let mut chunks: Vec<Vec<T>> = Vec::new();
    let mut it = items.into_iter().peekable();
    while it.peek().is_some() {
        chunks.push(it.by_ref().take(per).collect());
    }
    let f = &f;
    std::thread::scope(|s| {
        let handles: Vec<_> = chunks.into_iter().map(|c| s.spawn(move || c.into_iter().map(f).collect::<Vec<_>>())).collect();
        // A panic in a worker is raised here, never turned into missing items (results stay aligned with `items`).
        handles.into_iter().flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))).collect()
    })
}

/// Encodes many small contents whose hashes are known.
pub(crate) fn encode_all(items: Vec<(colstore_domain::ContentHash, Bytes)>) -> Vec<crate::repo::Encoded> {
    par_map(items, |(hash, raw)| {
        let (codec, stored) = encode(&raw);
        crate::repo::Encoded { hash, size: raw.len() as u64, codec, stored }
    })
}

/// Decodes stored bytes; `capacity` bounds the decoded size.
pub(crate) fn decode(codec: i64, stored: Vec<u8>, capacity: usize) -> Result<Bytes, String> {
    match codec {
        CODEC_RAW => Ok(Bytes::from(stored)),
        CODEC_ZSTD => DECOMPRESSOR
            .with(|d| {
                let mut d = d.borrow_mut();
                if d.is_none() {
                    *d = Some(zstd::bulk::Decompressor::new()?);
                }
                d.as_mut().map_or_else(|| zstd::bulk::decompress(&stored, capacity.max(1)), |d| d.decompress(&stored, capacity.max(1)))
            })
            .map(Bytes::from)
            .map_err(|e| format!("zstd decoding failed: {e}")),
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
