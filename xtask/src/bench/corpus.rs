//! The benchmark's input: a deterministic folder of text files, half of them byte-identical copies of the other half,
//! so ingest speed, deduplication and compression are measured on the same data on every machine; and a second one of
//! distinct files of about four chunks each, for the sync throughput.

use std::io;
use std::path::Path;

use colstore_domain::{ChunkingSettings, chunk_text};

/// SplitMix64 (Steele, Lea & Flood 2014): tiny, fast, and good enough for test data. Implemented here so the corpus
/// never changes with a `rand` release.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `0..n` (`n > 0`). The modulo bias is below 2^-40 for the small `n` used here.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// Common English words plus the product's own vocabulary. Picking them with a skewed distribution gives text that
/// compresses roughly like prose, not like random bytes (incompressible) or a repeated word (trivially compressible).
#[rustfmt::skip]
const WORDS: &[&str] = &[
    "the", "of", "and", "to", "a", "in", "is", "you", "that", "it", "he", "was", "for", "on", "are", "as", "with", "his", "they", "at",
    "be", "this", "have", "from", "or", "one", "had", "by", "word", "but", "not", "what", "all", "were", "we", "when", "your", "can",
    "said", "there", "use", "an", "each", "which", "she", "do", "how", "their", "if", "will", "up", "other", "about", "out", "many",
    "then", "them", "these", "so", "some", "her", "would", "make", "like", "him", "into", "time", "has", "look", "two", "more", "write",
    "go", "see", "number", "no", "way", "could", "people", "my", "than", "first", "water", "been", "call", "who", "oil", "its", "now",
    "find", "long", "down", "day", "did", "get", "come", "made", "may", "part", "collection", "document", "store", "vector", "index",
    "backup", "restore", "query", "search", "chunk", "embedding", "ledger", "queue", "server", "metadata", "version", "snapshot",
    "cluster", "payload", "filter", "record", "schema", "notes", "crawler", "image",
];

/// Smallest and largest file size, in bytes (1–4 KiB).
pub(crate) const MIN_SIZE: usize = 1024;
pub(crate) const MAX_SIZE: usize = 4096;

/// Seed of the published figures; changing it changes the data, so figures from different seeds do not compare.
pub(crate) const SEED: u64 = 0x00C0_15E0_0BE7_C400;

/// `docs` files named `doc-0000000.txt`, …: files `0..distinct()` have their own content and every later file `i` is
/// a byte-identical copy of file `i - distinct()`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Corpus {
    pub(crate) docs: usize,
    pub(crate) seed: u64,
}

impl Corpus {
    pub(crate) fn new(docs: usize) -> Self {
        Self { docs, seed: SEED }
    }

    /// Files with their own content: the larger half, so for even `docs` exactly half are duplicates.
    pub(crate) fn distinct(&self) -> usize {
        self.docs - self.docs / 2
    }

    pub(crate) fn file_name(i: usize) -> String {
        format!("doc-{i:07}.txt")
    }

    /// The content of file `i`. Each distinct file has its own generator, so any file can be produced alone and the
    /// corpus does not depend on the order files are written in.
    pub(crate) fn content(&self, i: usize) -> Vec<u8> {
        assert!(i < self.docs, "file {i} of a {}-file corpus", self.docs);
        let source = if i < self.distinct() { i } else { i - self.distinct() };
        text(self.seed ^ (source as u64).wrapping_mul(0xD1B5_4A32_D192_ED03))
    }

    /// Writes every file into `dir` (which must exist) and returns the logical size: the sum of all file sizes,
    /// duplicates included, i.e. what a user asked the store to keep.
    pub(crate) fn write_to(&self, dir: &Path) -> io::Result<u64> {
        let mut logical = 0;
        for i in 0..self.docs {
            let content = self.content(i);
            logical += content.len() as u64;
            std::fs::write(dir.join(Self::file_name(i)), content)?;
        }
        Ok(logical)
    }
}

/// Sizes of the sync corpus's files, in bytes: with the default chunking (1200 characters, 200 overlap) such a file
/// is 4 chunks, so a 100 000-chunk corpus is about 25 000 files.
pub(crate) const SYNC_MIN_SIZE: usize = 3300;
pub(crate) const SYNC_MAX_SIZE: usize = 3500;

/// Seed of the sync corpus: its own, so no chunk of it equals a chunk of the ingest corpus.
pub(crate) const SYNC_SEED: u64 = 0x5EED_0F5E_C0DE_C4A5;

/// The sync benchmark's input: distinct files (no duplicates, so every chunk is embedded) named `sync-0000000.txt`,
/// …, as many as it takes to reach `chunks` chunks with the default chunking, counted with the product's own chunker.
#[derive(Debug, Clone)]
pub(crate) struct SyncCorpus {
    pub(crate) seed: u64,
    /// Chunks per file, in file order.
    pub(crate) chunks_per_file: Vec<usize>,
}

impl SyncCorpus {
    pub(crate) fn new(chunks: usize) -> Self {
        Self::with_seed(chunks, SYNC_SEED)
    }

    pub(crate) fn with_seed(chunks: usize, seed: u64) -> Self {
        let settings = ChunkingSettings::default();
        let mut chunks_per_file = Vec::new();
        let mut total = 0;
        while total < chunks {
            let content = Self::content_of(seed, chunks_per_file.len());
            let n = chunk_text(std::str::from_utf8(&content).expect("the generator writes ASCII"), &settings).len();
            chunks_per_file.push(n);
            total += n;
        }
        Self { seed, chunks_per_file }
    }

    pub(crate) fn files(&self) -> usize {
        self.chunks_per_file.len()
    }

    /// Chunks of the whole corpus, as `col sync` should count them.
    pub(crate) fn chunks(&self) -> usize {
        self.chunks_per_file.iter().sum()
    }

    pub(crate) fn file_name(i: usize) -> String {
        format!("sync-{i:07}.txt")
    }

    fn content_of(seed: u64, i: usize) -> Vec<u8> {
        text_sized(seed ^ (i as u64).wrapping_mul(0xD1B5_4A32_D192_ED03), SYNC_MIN_SIZE, SYNC_MAX_SIZE)
    }

    pub(crate) fn content(&self, i: usize) -> Vec<u8> {
        assert!(i < self.files(), "file {i} of a {}-file sync corpus", self.files());
        Self::content_of(self.seed, i)
    }

    /// Writes every file into `dir` (which must exist) and returns the logical size.
    pub(crate) fn write_to(&self, dir: &Path) -> io::Result<u64> {
        let mut logical = 0;
        for i in 0..self.files() {
            let content = self.content(i);
            logical += content.len() as u64;
            std::fs::write(dir.join(Self::file_name(i)), content)?;
        }
        Ok(logical)
    }
}

/// One file of 1–4 KiB (see [`text_sized`]).
fn text(seed: u64) -> Vec<u8> {
    text_sized(seed, MIN_SIZE, MAX_SIZE)
}

/// One file of `min..=max` bytes: sentences of 4–18 words, paragraphs of 2–6 sentences, an occasional number, ending
/// in a newline.
pub(crate) fn text_sized(seed: u64, min: usize, max: usize) -> Vec<u8> {
    let mut rng = SplitMix64::new(seed);
    let size = min + rng.below((max - min + 1) as u64) as usize;
    let mut out = String::with_capacity(size + 64);
    while out.len() < size {
        for sentence in 0..2 + rng.below(5) {
            if sentence > 0 {
                out.push(' ');
            }
            for word in 0..4 + rng.below(15) {
                if word > 0 {
                    out.push(' ');
                }
                if rng.below(16) == 0 {
                    out.push_str(&rng.below(100_000).to_string());
                    continue;
                }
                // The product of two uniform draws favours low indexes: a cheap Zipf-like skew.
                let n = WORDS.len() as u64;
                let w = WORDS[(rng.below(n) * rng.below(n) / n) as usize];
                if word == 0 {
                    let mut chars = w.chars();
                    out.extend(chars.next().map(|c| c.to_ascii_uppercase()));
                    out.push_str(chars.as_str());
                } else {
                    out.push_str(w);
                }
            }
            out.push('.');
        }
        out.push_str("\n\n");
    }
    let mut bytes = out.into_bytes();
    // All ASCII, so cutting anywhere stays valid UTF-8.
    bytes.truncate(size);
    bytes[size - 1] = b'\n';
    bytes
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn splitmix64_matches_the_reference_sequence() {
        // First outputs for seed 0 from the reference implementation (Vigna, prng.di.unimi.it/splitmix64.c).
        let mut rng = SplitMix64::new(0);
        assert_eq!(rng.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(rng.next_u64(), 0x6E78_9E6A_A1B9_65F4);
        assert_eq!(rng.next_u64(), 0x06C4_5D18_8009_454F);
    }

    #[test]
    fn sizes_are_between_one_and_four_kib_and_text_is_ascii() {
        let corpus = Corpus::new(2000);
        let sizes: Vec<usize> = (0..corpus.docs).map(|i| corpus.content(i).len()).collect();
        assert!(sizes.iter().all(|&s| (MIN_SIZE..=MAX_SIZE).contains(&s)), "{sizes:?}");
        // The whole range is used, not a constant size.
        assert!(sizes.iter().any(|&s| s < 1500) && sizes.iter().any(|&s| s > 3600));
        for i in [0, 1, 999] {
            let content = corpus.content(i);
            assert!(content.iter().all(|b| b.is_ascii_graphic() || *b == b' ' || *b == b'\n'), "file {i}");
            assert_eq!(content.last(), Some(&b'\n'));
            assert!(std::str::from_utf8(&content).unwrap().split_whitespace().count() > 100);
        }
    }

    #[test]
    fn the_second_half_duplicates_the_first_byte_for_byte() {
        let corpus = Corpus::new(1000);
        assert_eq!(corpus.distinct(), 500);
        for i in 0..500 {
            assert_eq!(corpus.content(i + 500), corpus.content(i), "file {}", i + 500);
        }
        let distinct: HashSet<Vec<u8>> = (0..500).map(|i| corpus.content(i)).collect();
        assert_eq!(distinct.len(), 500, "the first half has no accidental duplicates");
    }

    #[test]
    fn odd_sizes_have_one_more_distinct_file() {
        let corpus = Corpus::new(5);
        assert_eq!(corpus.distinct(), 3);
        assert_eq!(corpus.content(3), corpus.content(0));
        assert_eq!(corpus.content(4), corpus.content(1));
        assert_eq!(Corpus::new(1).distinct(), 1);
    }

    #[test]
    fn content_is_deterministic() {
        let a = Corpus::new(10);
        let b = Corpus::new(10);
        assert_eq!(a.content(7), b.content(7));
        assert_ne!(a.content(1), a.content(2));
        // Pins the data behind the published figures: if this changes, old and new figures stop being comparable.
        let first = String::from_utf8(a.content(0)).unwrap();
        assert_eq!((first.len(), &first[..40]), (2770, "It for was your the to when if. Of the a"));
        assert_eq!(Corpus { docs: 10, seed: 1 }.content(0), Corpus { docs: 10, seed: 1 }.content(0));
        assert_ne!(Corpus { docs: 10, seed: 1 }.content(0), a.content(0));
    }

    #[test]
    fn text_compresses_like_prose() {
        // Distinct words per file stay well below the word count (prose-like repetition) but above a handful.
        let content = String::from_utf8(Corpus::new(1).content(0)).unwrap();
        let words: Vec<&str> = content.split_whitespace().collect();
        let distinct: HashSet<&str> = words.iter().copied().collect();
        assert!(distinct.len() * 3 < words.len() * 2, "{} distinct of {}", distinct.len(), words.len());
        assert!(distinct.len() > 30, "{} distinct", distinct.len());
    }

    #[test]
    fn the_sync_corpus_reaches_its_chunk_count_with_about_four_chunks_per_file() {
        let corpus = SyncCorpus::new(2000);
        assert!((2000..2010).contains(&corpus.chunks()), "{} chunks", corpus.chunks());
        // Within 10 % of 4 chunks per file on average, so 100 000 chunks are about 25 000 files.
        assert!((455..=555).contains(&corpus.files()), "{} files", corpus.files());
        assert!(corpus.chunks_per_file.iter().all(|&n| (3..=5).contains(&n)), "{:?}", corpus.chunks_per_file);
        for i in [0, 1, corpus.files() - 1] {
            let content = corpus.content(i);
            assert!((SYNC_MIN_SIZE..=SYNC_MAX_SIZE).contains(&content.len()), "file {i}: {} bytes", content.len());
            let chunks = chunk_text(std::str::from_utf8(&content).unwrap(), &ChunkingSettings::default());
            assert_eq!(chunks.len(), corpus.chunks_per_file[i], "file {i}");
        }
        let ingest = Corpus::new(10);
        assert_ne!(corpus.content(0)[..100], ingest.content(0)[..100], "its own seed");
        assert_eq!(SyncCorpus::new(2000).chunks_per_file, corpus.chunks_per_file, "deterministic");
    }

    #[test]
    fn the_sync_corpus_writes_its_files() {
        let dir = tempfile::tempdir().unwrap();
        let corpus = SyncCorpus::new(10);
        let logical = corpus.write_to(dir.path()).unwrap();
        let names: HashSet<String> =
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        assert_eq!(names.len(), corpus.files());
        assert!(names.contains("sync-0000000.txt"));
        let on_disk: u64 = (0..corpus.files()).map(|i| std::fs::metadata(dir.path().join(SyncCorpus::file_name(i))).unwrap().len()).sum();
        assert_eq!(logical, on_disk);
    }

    #[test]
    fn write_to_writes_every_file_and_returns_the_logical_size() {
        let dir = tempfile::tempdir().unwrap();
        let corpus = Corpus::new(11);
        let logical = corpus.write_to(dir.path()).unwrap();
        let mut names: Vec<String> =
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        assert_eq!(names.len(), 11);
        assert_eq!(names[0], "doc-0000000.txt");
        assert_eq!(names[10], "doc-0000010.txt");
        let on_disk: u64 = names.iter().map(|n| std::fs::metadata(dir.path().join(n)).unwrap().len()).sum();
        assert_eq!(logical, on_disk);
        let read = |i: usize| std::fs::read(dir.path().join(Corpus::file_name(i))).unwrap();
        assert_eq!(read(6), read(0));
        assert_eq!(read(10), read(4));
        assert_eq!(read(5), corpus.content(5));
    }
}
