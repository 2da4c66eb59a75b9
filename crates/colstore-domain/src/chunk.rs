//! Deterministic chunking: the same text and the same settings always give the same chunks (PRODUCT §3).

use serde::{Deserialize, Serialize};

use crate::{ChunkingSettings, ContentHash};

/// A piece of a document's text that gets one vector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chunk {
    /// Position in the document, from 0.
    pub index: u32,
    /// The text.
    pub text: String,
    /// SHA-256 of the text: with the embedder's identity, the key of the embedding cache.
    pub hash: ContentHash,
}

/// Cuts `text` into chunks of at most `max_chars` characters, consecutive chunks sharing about `overlap_chars`.
///
/// A chunk prefers to end at a paragraph break, then a line break, then the end of a sentence, then a space, found in
/// the last third of the window; otherwise it ends at `max_chars`. Whitespace-only text gives no chunks. The result
/// depends only on the text and the settings.
pub fn chunk_text(text: &str, settings: &ChunkingSettings) -> Vec<Chunk> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let n = chars.len();
    let max = settings.max_chars().max(1) as usize;
    let overlap = (settings.overlap_chars() as usize).min(max - 1);
    let byte_at = |i: usize| if i >= n { text.len() } else { chars[i].0 };
    let mut out = Vec::new();
    let mut start = 0usize;
    while start < n {
        // Skip leading whitespace so chunks do not start with it.
        while start < n && chars[start].1.is_whitespace() {
            start += 1;
        }
        if start >= n {
            break;
        }
        let hard_end = start.saturating_add(max).min(n);
        let end = if hard_end == n { n } else { best_break(&chars, start, hard_end, max) };
        let piece = text[byte_at(start)..byte_at(end)].trim_end();
        if !piece.is_empty() {
            out.push(Chunk { index: out.len() as u32, text: piece.to_owned(), hash: ContentHash::of(piece.as_bytes()) });
        }
        if end >= n {
            break;
        }
        // Step back by the overlap, to a word start when there is one, but always move forward.
        let mut next = end.saturating_sub(overlap).max(start + 1);
        let floor = next;
        while next < end && !chars[next - 1].1.is_whitespace() {
            next += 1;
        }
        if next >= end {
            next = floor;
        }
        start = next;
    }
    out
}

/// The best place to end a chunk in `(start, hard_end]`, searching the last third of the window.
fn best_break(chars: &[(usize, char)], start: usize, hard_end: usize, max: usize) -> usize {
    let lo = start.saturating_add(max.saturating_mul(2) / 3).max(start + 1);
    let is = |i: usize, f: &dyn Fn(usize) -> bool| i > start && i < chars.len() && f(i);
    let para = |i: usize| chars[i].1 == '\n' && chars[i - 1].1 == '\n';
    let line = |i: usize| chars[i].1 == '\n';
    let sentence = |i: usize| chars[i].1.is_whitespace() && matches!(chars[i - 1].1, '.' | '!' | '?' | '。');
    let space = |i: usize| chars[i].1.is_whitespace();
    for rule in [&para as &dyn Fn(usize) -> bool, &line, &sentence, &space] {
        if let Some(i) = (lo..=hard_end).rev().find(|&i| is(i, rule)) {
            return i;
        }
    }
    hard_end
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whole-document chunking (collections adopted from a remote engine): one chunk, the trimmed text, however long.
    #[test]
    fn whole_document_is_one_chunk() {
        let text = format!("  {}\n\n{}  \n", "word ".repeat(50_000), "end.");
        let chunks = chunk_text(&text, &ChunkingSettings::WHOLE_DOCUMENT);
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].text, text.trim());
        assert_eq!(chunks[0].hash, ContentHash::of(text.trim().as_bytes()));
        assert!(chunk_text(" \n ", &ChunkingSettings::WHOLE_DOCUMENT).is_empty());
        assert_eq!(ChunkingSettings::WHOLE_DOCUMENT.to_string(), "whole documents (one chunk each)");
        assert_eq!(ChunkingSettings::default().to_string(), "1200 characters, 200 overlap");
    }

    fn settings(max: u32, overlap: u32) -> ChunkingSettings {
        ChunkingSettings::new(max, overlap).unwrap()
    }

    #[test]
    fn short_text_is_one_chunk_and_blank_text_none() {
        let c = chunk_text("  hello world  ", &settings(100, 10));
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].text, "hello world");
        assert_eq!(c[0].hash, ContentHash::of(b"hello world"));
        assert!(chunk_text(" \n\t ", &settings(100, 10)).is_empty());
        assert!(chunk_text("", &settings(100, 10)).is_empty());
    }

    #[test]
    fn chunks_cover_the_text_respect_the_size_and_are_deterministic() {
        let text = "The quick brown fox jumps over the lazy dog. ".repeat(50) + "\n\nA second paragraph follows here.";
        let s = settings(120, 30);
        let a = chunk_text(&text, &s);
        assert_eq!(a, chunk_text(&text, &s));
        assert!(a.len() > 10);
        for (i, c) in a.iter().enumerate() {
            assert_eq!(c.index as usize, i);
            assert!(c.text.chars().count() <= 120, "{}", c.text.len());
            assert!(!c.text.starts_with(' ') && !c.text.ends_with(' '));
        }
        // Every word of the text appears in some chunk.
        for w in text.split_whitespace() {
            assert!(a.iter().any(|c| c.text.contains(w)), "{w}");
        }
        // Breaks prefer sentence ends.
        assert!(a[0].text.ends_with('.'), "{}", a[0].text);
    }

    #[test]
    fn unbroken_and_multibyte_text_still_progresses() {
        let text = "é".repeat(1000);
        let c = chunk_text(&text, &settings(100, 99));
        assert!(c.len() >= 10);
        assert!(c.iter().all(|c| c.text.chars().count() <= 100));
        let cjk = "日本語のテキスト。".repeat(100);
        assert!(!chunk_text(&cjk, &settings(50, 10)).is_empty());
    }

    #[test]
    fn editing_the_end_keeps_earlier_chunks() {
        let base = "Sentence number one is here. ".repeat(40);
        let s = settings(200, 40);
        let a = chunk_text(&base, &s);
        let b = chunk_text(&(base.clone() + " And a new ending."), &s);
        assert_eq!(a[..a.len() - 1], b[..a.len() - 1]);
    }
}
