//! Snapshot files mapped into memory, and the arrays of a copy that may live in one.
//!
//! A `col search` is a process of its own: reading a 300 000-point collection's file into memory of its own cost
//! more than the search (every page allocated, zeroed and filled by a copy). Mapped, the vectors and int8 codes are
//! read where the page cache already holds them. [`Rows`] is such an array: borrowed from a mapping, or owned; the
//! first write through a copy makes it owned (a copy of the whole array, once), so a file is never written through.
//!
//! Mapping is sound as long as nobody changes a snapshot file in place while it is mapped. colstore never does: a new
//! file is written under a temporary name and renamed over the old one (the mapping keeps the old file), and a
//! dropped collection's file is unlinked (likewise). A tool that truncated or rewrote such a file in place would make
//! a process holding it see other bytes or die of `SIGBUS`, as with any memory-mapped database; the files under
//! `.colstore/` are never to be edited.

// The mapping and the view of its bytes as `f32`s need `unsafe`; both are checked and justified below.
#![allow(unsafe_code)]

use std::fs::File;
use std::marker::PhantomData;
use std::ops::Deref;
use std::sync::Arc;

/// A read-only mapping of a whole snapshot file.
#[derive(Debug)]
pub(crate) struct Mapping(memmap2::Mmap);

impl Mapping {
    /// Maps `file` (opened for reading) whole.
    ///
    /// # Errors
    /// When the system refuses the mapping (e.g. a file system without `mmap`).
    pub(crate) fn of(file: &File) -> std::io::Result<Arc<Self>> {
        // SAFETY: the mapping is read-only and snapshot files are never modified in place (see the module
        // documentation): a file is replaced by renaming a new one over it, which leaves this mapping's file as it is.
        // `populate` maps every page at once (they are in the page cache after the file was written or read), instead
        // of one fault per few pages as the checksum walks the file.
        let map = unsafe { memmap2::MmapOptions::new().populate().map(file)? };
        Ok(Arc::new(Self(map)))
    }

    /// The file's bytes.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }
}

/// Element types whose every bit pattern is a valid value, so bytes of a file can be viewed as them.
///
/// # Safety
/// Implement only for plain numbers without padding or invalid values.
pub(crate) unsafe trait Plain: Copy + Send + Sync + 'static {}

// SAFETY: every 32-bit pattern is an `f32` (NaNs included), every byte an `i8`.
unsafe impl Plain for f32 {}
// SAFETY: as above.
unsafe impl Plain for i8 {}

/// `len` values of `T` stored in native byte order at byte `start` of a mapping, aligned for `T`.
#[derive(Debug, Clone)]
pub(crate) struct MappedSlice<T> {
    map: Arc<Mapping>,
    start: usize,
    len: usize,
    _values: PhantomData<T>,
}

impl<T: Plain> MappedSlice<T> {
    /// The `len` values at byte `start` of `map`; `None` when they pass its end or are not aligned for `T`.
    pub(crate) fn new(map: &Arc<Mapping>, start: usize, len: usize) -> Option<Self> {
        let end = len.checked_mul(size_of::<T>())?.checked_add(start)?;
        let region = map.bytes().get(start..end)?;
        (region.as_ptr().align_offset(align_of::<T>()) == 0).then(|| Self { map: Arc::clone(map), start, len, _values: PhantomData })
    }

    fn as_slice(&self) -> &[T] {
        let region = &self.map.bytes()[self.start..self.start + self.len * size_of::<T>()];
        // SAFETY: `new` checked that the region lies inside the mapping and is aligned for `T`; `T: Plain` makes every
        // bit pattern a valid `T`; the mapping lives at least as long as `self` (it holds an `Arc`) and is never written.
        unsafe { std::slice::from_raw_parts(region.as_ptr().cast::<T>(), self.len) }
    }
}

/// One array of a collection's in-memory copy: owned, or borrowed from a mapped snapshot file until the first write.
#[derive(Debug, Clone)]
pub(crate) enum Rows<T> {
    /// In the process's own memory.
    Owned(Vec<T>),
    /// Read where a mapped file holds it.
    Mapped(MappedSlice<T>),
}

impl<T> Default for Rows<T> {
    fn default() -> Self {
        Self::Owned(Vec::new())
    }
}

impl<T> From<Vec<T>> for Rows<T> {
    fn from(v: Vec<T>) -> Self {
        Self::Owned(v)
    }
}

impl<T: Plain> Deref for Rows<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        match self {
            Self::Owned(v) => v,
            Self::Mapped(m) => m.as_slice(),
        }
    }
}

impl<T: Plain> Rows<T> {
    /// The array to change, copied out of its mapping first when it is mapped.
    pub(crate) fn to_mut(&mut self) -> &mut Vec<T> {
        if let Self::Mapped(m) = self {
            *self = Self::Owned(m.as_slice().to_vec());
        }
        match self {
            Self::Owned(v) => v,
            Self::Mapped(_) => unreachable!("made owned above"),
        }
    }

    /// Whether the array is read from a mapped file.
    #[cfg(test)]
    pub(crate) fn is_mapped(&self) -> bool {
        matches!(self, Self::Mapped(_))
    }
}

/// UTF-8 text stored in a mapping, checked once when it is made.
#[derive(Debug, Clone)]
pub(crate) struct MappedStr {
    map: Arc<Mapping>,
    start: usize,
    len: usize,
}

impl MappedStr {
    /// The `len` bytes at byte `start` of `map`, when they pass its end or are not UTF-8: the error says which.
    pub(crate) fn new(map: &Arc<Mapping>, start: usize, len: usize) -> Result<Self, String> {
        let end = start.checked_add(len).ok_or("the text passes the end of the file")?;
        let bytes = map.bytes().get(start..end).ok_or("the text passes the end of the file")?;
        std::str::from_utf8(bytes).map_err(|e| format!("the payloads are not UTF-8: {e}"))?;
        Ok(Self { map: Arc::clone(map), start, len })
    }

    fn as_str(&self) -> &str {
        let bytes = &self.map.bytes()[self.start..self.start + self.len];
        // SAFETY: `new` checked these very bytes are UTF-8, and the mapping is never written (module documentation).
        unsafe { std::str::from_utf8_unchecked(bytes) }
    }
}

/// The payload texts of a collection's copy, by position: owned, or slices of one mapped text until the first write.
#[derive(Debug, Clone)]
pub(crate) enum Payloads {
    /// One allocation per payload.
    Owned(Vec<Box<str>>),
    /// Payload `i` is `text[ends[i - 1]..ends[i]]` (from 0 for the first); every end is a character boundary.
    Mapped {
        /// All payloads, concatenated.
        text: MappedStr,
        /// Where each payload ends in `text`.
        ends: Vec<usize>,
    },
}

impl Default for Payloads {
    fn default() -> Self {
        Self::Owned(Vec::new())
    }
}

impl From<Vec<Box<str>>> for Payloads {
    fn from(v: Vec<Box<str>>) -> Self {
        Self::Owned(v)
    }
}

impl Payloads {
    /// Payloads of the given byte `lengths` concatenated in `text`; an error when the lengths do not add up to the
    /// text or split a character.
    pub(crate) fn mapped(text: MappedStr, lengths: impl IntoIterator<Item = usize>) -> Result<Self, String> {
        let whole = text.as_str();
        let mut ends = Vec::new();
        let mut end = 0usize;
        for length in lengths {
            end = end.checked_add(length).filter(|e| *e <= whole.len()).ok_or("the payload lengths pass the payload bytes")?;
            if !whole.is_char_boundary(end) {
                return Err("a payload length splits a character".into());
            }
            ends.push(end);
        }
        if end != whole.len() {
            return Err("the payload lengths do not add up to the payload bytes".into());
        }
        Ok(Self::Mapped { text, ends })
    }

    /// How many payloads.
    pub(crate) fn len(&self) -> usize {
        match self {
            Self::Owned(v) => v.len(),
            Self::Mapped { ends, .. } => ends.len(),
        }
    }

    /// The payload at position `i` (which must be below [`Payloads::len`]).
    pub(crate) fn get(&self, i: usize) -> &str {
        match self {
            Self::Owned(v) => &v[i],
            Self::Mapped { text, ends } => {
                let start = if i == 0 { 0 } else { ends[i - 1] };
                // Both ends were checked to be character boundaries inside the text.
                &text.as_str()[start..ends[i]]
            }
        }
    }

    /// Every payload, by position.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &str> {
        (0..self.len()).map(|i| self.get(i))
    }

    /// The payloads to change, copied out of their mapping first when they are mapped.
    pub(crate) fn to_mut(&mut self) -> &mut Vec<Box<str>> {
        if let Self::Mapped { .. } = self {
            *self = Self::Owned(self.iter().map(Box::from).collect());
        }
        match self {
            Self::Owned(v) => v,
            Self::Mapped { .. } => unreachable!("made owned above"),
        }
    }

    /// Whether the payloads are read from a mapped file.
    #[cfg(test)]
    pub(crate) fn is_mapped(&self) -> bool {
        matches!(self, Self::Mapped { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping_of(bytes: &[u8]) -> (tempfile::TempDir, Arc<Mapping>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, bytes).unwrap();
        let map = Mapping::of(&File::open(&path).unwrap()).unwrap();
        (dir, map)
    }

    /// Payload lengths must split the text at character boundaries and add up to it; text must be UTF-8.
    #[test]
    fn mapped_payloads_are_checked_when_made() {
        let (_dir, map) = mapping_of("xx{\"a\":\"é\"}{}".as_bytes());
        let text = || MappedStr::new(&map, 2, 12).unwrap();
        let payloads = Payloads::mapped(text(), [10, 2]).unwrap();
        assert_eq!(payloads.iter().collect::<Vec<_>>(), ["{\"a\":\"é\"}", "{}"]);
        let e = Payloads::mapped(text(), [7, 5]).unwrap_err();
        assert!(e.contains("splits a character"), "{e}");
        assert!(Payloads::mapped(text(), [10]).unwrap_err().contains("do not add up"));
        assert!(Payloads::mapped(text(), [10, 3]).unwrap_err().contains("pass the payload bytes"));
        assert!(MappedStr::new(&map, 2, 13).unwrap_err().contains("end of the file"));
        let (_dir, bad) = mapping_of(&[b'{', 0xff, b'}']);
        assert!(MappedStr::new(&bad, 0, 3).unwrap_err().contains("not UTF-8"));
    }

    /// A mapped array reads the file's values; the first change copies it out and leaves the file alone.
    #[test]
    fn rows_copy_out_on_the_first_write() {
        let values = [1.5f32, -2.0, 3.25];
        let mut bytes = vec![0u8; 64];
        bytes.extend(values.iter().flat_map(|v| v.to_ne_bytes()));
        let (_dir, map) = mapping_of(&bytes);
        assert!(MappedSlice::<f32>::new(&map, 1, 3).is_none(), "not aligned for f32");
        assert!(MappedSlice::<f32>::new(&map, 64, 4).is_none(), "past the end");
        let mut rows = Rows::Mapped(MappedSlice::<f32>::new(&map, 64, 3).unwrap());
        assert_eq!(&*rows, &values);
        rows.to_mut()[0] = 9.0;
        assert!(!rows.is_mapped());
        assert_eq!(&*rows, &[9.0, -2.0, 3.25]);
        assert_eq!(&map.bytes()[64..68], &1.5f32.to_ne_bytes(), "the file is unchanged");
    }
}
