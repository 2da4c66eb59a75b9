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
