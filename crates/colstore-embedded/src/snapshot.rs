//! The in-memory copy of one index collection and exact (brute-force) top-k search over it.
//!
//! A [`Snapshot`] holds every vector of a collection in one contiguous array of `f32` (row `i` at `i * dim`), beside the
//! points' ids and payloads at the same positions. Loaded from a snapshot file, the vectors, int8 codes and payload
//! texts are read where the mapped file holds them ([`crate::mapped`]); the first write copies them into memory of the
//! copy's own. Payloads stay JSON text (a quarter of the memory of parsed objects,
//! and no parsing when loading); they are parsed for the hits returned, and all at once the first time a filter
//! needs them. Which points a filter selects is remembered for the last few filters until the next write, so
//! repeated filtered searches cost what unfiltered ones do. It is labelled with the collection's row id and version in
//! the database, so the index can tell whether it still shows the collection as stored. Positions carry no meaning:
//! ties are broken by comparing ids, so rows may be appended and swap-removed as writes are applied.
//!
//! Scanning 100 000 vectors of 384 `f32` reads 154 MB, which takes longer than the search budget on a small machine
//! (the scan is bound by memory bandwidth, not arithmetic). So cosine and dot collections also keep an int8 copy of
//! every vector (a quarter of the bytes) with a rigorous per-vector error bound ([`kernel::quantise`]). A search
//! first scans the codes to get, for every point, an interval that surely holds its exact score; only points whose
//! interval reaches the k-th best lower bound can be in the top k, and only those are scored exactly in `f32`, with
//! the same kernel as a full scan. The result is therefore identical to the full exact scan, which remains the path
//! for Euclidean collections, small collections, large `limit`s and degenerate data.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use colstore_domain::{Distance, Filter, PointId};
use serde_json::{Map, Value};

use crate::kernel::{self, Quantised, QuantisedQuery};
use crate::mapped::{Payloads, Rows};

/// Below this many `f32` (4 MiB of vectors) a search runs on one thread: spawning costs more than it saves.
const PARALLEL_MIN_FLOATS: usize = 1 << 20;

/// Below this many `f32` the int8 pre-scan is not worth its bookkeeping.
const PRESCAN_MIN_FLOATS: usize = 1 << 18;

/// Most threads one search uses.
const MAX_THREADS: usize = 8;

/// One collection as loaded from the database at `version`.
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    /// The collection's row id (never reused, so a re-created collection never matches an old snapshot).
    pub(crate) collection_id: i64,
    /// The collection's version this copy shows (writes applied to it in place advance it).
    pub(crate) version: i64,
    /// The vectors' dimension.
    pub(crate) dim: usize,
    /// How vectors are compared.
    pub(crate) distance: Distance,
    ids: Vec<PointId>,
    vectors: Rows<f32>,
    payloads: Payloads,
    /// The payloads parsed, once a filter needed them (kept up to date by writes from then on).
    objects: OnceLock<Vec<Map<String, Value>>>,
    /// Which points recent filters select.
    masks: MaskCache,
    /// Each id's position; built on the first write when the copy was loaded from its parts.
    positions: Option<HashMap<PointId, usize>>,
    /// int8 codes of every vector (row `i` at `i * dim`), for cosine and dot collections; empty for Euclid.
    codes: Rows<i8>,
    /// Scale and error bound of every row's codes.
    quantised: Vec<Quantised>,
}

/// A collection's rows by position, owned: what [`Snapshot::from_parts`] takes.
#[derive(Debug, Default)]
pub(crate) struct Parts {
    pub(crate) ids: Vec<PointId>,
    pub(crate) payloads: Payloads,
    /// Row `i` at `i * dim`.
    pub(crate) vectors: Rows<f32>,
    /// Row `i` at `i * dim`; empty for Euclidean collections.
    pub(crate) codes: Rows<i8>,
    /// One per row; empty for Euclidean collections.
    pub(crate) quantised: Vec<Quantised>,
}

/// A collection's rows by position, borrowed from a [`Snapshot`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct PartsRef<'a> {
    pub(crate) ids: &'a [PointId],
    pub(crate) payloads: &'a Payloads,
    pub(crate) vectors: &'a [f32],
    pub(crate) codes: &'a [i8],
    pub(crate) quantised: &'a [Quantised],
}

/// Which points a scan considers: all, or those whose position is `true` in the mask.
pub(crate) type Selection<'a> = Option<&'a [bool]>;

fn selected(selection: Selection<'_>, index: usize) -> bool {
    selection.is_none_or(|mask| mask[index])
}

/// Filters kept in a [`MaskCache`].
const MASKS_KEPT: usize = 8;

/// The masks of the most recently used filters, most recent first. Every write clears it; a copy starts empty.
#[derive(Debug, Default)]
struct MaskCache(Mutex<Vec<(Filter, Arc<[bool]>)>>);

impl Clone for MaskCache {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl MaskCache {
    fn clear(&mut self) {
        self.0.get_mut().unwrap_or_else(PoisonError::into_inner).clear();
    }
}

fn parse_object(json: &str) -> Result<Map<String, Value>, String> {
    match serde_json::from_str(json) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err("a payload is not a JSON object".to_owned()),
        Err(e) => Err(format!("a payload is not valid JSON: {e}")),
    }
}

/// A search hit: a position in the snapshot and its score (higher is closer).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Hit {
    pub(crate) score: f32,
    pub(crate) id: PointId,
    pub(crate) index: usize,
}

impl Hit {
    /// Better hits sort first: higher score, then lower id. Scores are never NaN (see [`Snapshot::scan`]).
    fn rank(&self, other: &Self) -> Ordering {
        other.score.partial_cmp(&self.score).unwrap_or(Ordering::Equal).then_with(|| self.id.cmp(&other.id))
    }
}

/// Orders hits worst-last, so a max-heap keeps the worst of the current top k on top.
struct Ranked(Hit);

impl PartialEq for Ranked {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Ranked {}

impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.rank(&other.0)
    }
}

impl Snapshot {
    /// An empty collection.
    pub(crate) fn new(collection_id: i64, version: i64, dim: usize, distance: Distance) -> Self {
        Self {
            collection_id,
            version,
            dim,
            distance,
            ids: Vec::new(),
            vectors: Rows::default(),
            payloads: Payloads::default(),
            objects: OnceLock::new(),
            masks: MaskCache::default(),
            positions: Some(HashMap::new()),
            codes: Rows::default(),
            quantised: Vec::new(),
        }
    }

    /// A collection from its prepared parts (as a snapshot file holds them): rows by position, distinct ids, `codes`
    /// and `quantised` empty for Euclidean collections and complete otherwise.
    ///
    /// # Errors
    /// A description of lengths that do not fit together.
    pub(crate) fn from_parts(collection_id: i64, version: i64, dim: usize, distance: Distance, parts: Parts) -> Result<Self, String> {
        let Parts { ids, payloads, vectors, codes, quantised } = parts;
        let mut snap = Self::new(collection_id, version, dim, distance);
        let n = ids.len();
        let rows = if snap.quantises() { n } else { 0 };
        if payloads.len() != n
            || vectors.len() != n.saturating_mul(dim)
            || quantised.len() != rows
            || codes.len() != rows.saturating_mul(dim)
        {
            return Err(format!(
                "{n} ids, {} payloads, {} floats, {} code rows and {} codes do not fit dimension {dim}",
                payloads.len(),
                vectors.len(),
                quantised.len(),
                codes.len()
            ));
        }
        // Searches never need the id → position map: a load from parts leaves it to the first write.
        snap.positions = None;
        snap.ids = ids;
        snap.payloads = payloads;
        snap.vectors = vectors;
        snap.codes = codes;
        snap.quantised = quantised;
        Ok(snap)
    }

    /// The rows by position, as [`Snapshot::from_parts`] takes them.
    pub(crate) fn parts(&self) -> PartsRef<'_> {
        PartsRef { ids: &self.ids, payloads: &self.payloads, vectors: &self.vectors, codes: &self.codes, quantised: &self.quantised }
    }

    #[cfg(test)]
    /// Whether both hold the same rows in the same positions, bit for bit (the label aside).
    pub(crate) fn same_rows(&self, other: &Self) -> bool {
        let floats = |a: &[f32], b: &[f32]| a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
        let bits = |q: &Quantised| [q.scale.to_bits(), q.error.to_bits(), q.l1.to_bits()];
        (self.dim, self.distance, &self.ids, &*self.codes) == (other.dim, other.distance, &other.ids, &*other.codes)
            && self.payloads.iter().eq(other.payloads.iter())
            && floats(&self.vectors, &other.vectors)
            && self.quantised.len() == other.quantised.len()
            && self.quantised.iter().zip(&other.quantised).all(|(a, b)| bits(a) == bits(b))
    }

    /// Each id's position, built when missing.
    fn positions(&mut self) -> &mut HashMap<PointId, usize> {
        self.positions.get_or_insert_with(|| self.ids.iter().enumerate().map(|(i, id)| (*id, i)).collect())
    }

    /// Whether this collection keeps int8 codes (the pre-scan's bounds hold for inner products only).
    pub(crate) fn quantises(&self) -> bool {
        self.distance != Distance::Euclid
    }

    /// Reserves room for `n` more points.
    pub(crate) fn reserve(&mut self, n: usize) {
        self.ids.reserve(n);
        self.vectors.to_mut().reserve(n * self.dim);
        self.payloads.to_mut().reserve(n);
        if let Some(objects) = self.objects.get_mut() {
            objects.reserve(n);
        }
        if let Some(positions) = &mut self.positions {
            positions.reserve(n);
        }
        if self.quantises() {
            self.codes.to_mut().reserve(n * self.dim);
            self.quantised.reserve(n);
        }
    }

    /// How many points it holds.
    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }

    /// The ids, by position.
    pub(crate) fn ids(&self) -> &[PointId] {
        &self.ids
    }

    /// The payload at a position, as JSON text.
    pub(crate) fn payload_json(&self, index: usize) -> &str {
        self.payloads.get(index)
    }

    /// Every payload parsed, by position (parsed on first use).
    ///
    /// # Errors
    /// A description of the first payload that is not a JSON object.
    pub(crate) fn objects(&self) -> Result<&[Map<String, Value>], String> {
        if let Some(objects) = self.objects.get() {
            return Ok(objects);
        }
        let parsed = self.payloads.iter().map(parse_object).collect::<Result<Vec<_>, _>>()?;
        // Two searches may race to parse; both results are equal, so either may win.
        Ok(self.objects.get_or_init(|| parsed))
    }

    /// Which points `filter` selects, by position: remembered until the next write.
    ///
    /// # Errors
    /// As [`Snapshot::objects`].
    pub(crate) fn mask(&self, filter: &Filter, threads: usize) -> Result<Arc<[bool]>, String> {
        {
            let mut masks = self.masks.0.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(i) = masks.iter().position(|(f, _)| f == filter) {
                let hit = masks.remove(i);
                let mask = Arc::clone(&hit.1);
                masks.insert(0, hit);
                return Ok(mask);
            }
        }
        let objects = self.objects()?;
        let mut mask = vec![false; objects.len()];
        let per = objects.len().div_ceil(threads.max(1)).max(1);
        std::thread::scope(|scope| {
            for (out, objects) in mask.chunks_mut(per).zip(objects.chunks(per)) {
                scope.spawn(move || {
                    for (m, o) in out.iter_mut().zip(objects) {
                        *m = filter.matches(o);
                    }
                });
            }
        });
        let mask: Arc<[bool]> = mask.into();
        let mut masks = self.masks.0.lock().unwrap_or_else(PoisonError::into_inner);
        masks.insert(0, (filter.clone(), Arc::clone(&mask)));
        masks.truncate(MASKS_KEPT);
        Ok(mask)
    }

    /// Whether the vectors (and payloads) and the codes are read from a mapped snapshot file (a write copies them out).
    #[cfg(test)]
    pub(crate) fn is_mapped(&self) -> (bool, bool) {
        (self.vectors.is_mapped() && self.payloads.is_mapped(), self.codes.is_mapped())
    }

    /// The vector at a position.
    #[cfg(test)]
    pub(crate) fn vector(&self, index: usize) -> &[f32] {
        &self.vectors[index * self.dim..(index + 1) * self.dim]
    }

    /// Inserts or replaces a point. `vector` must have the snapshot's dimension and be stored as it is (already
    /// normalised for cosine); `object` is `payload` parsed, when the caller has it.
    pub(crate) fn upsert(&mut self, id: PointId, vector: &[f32], payload: Box<str>, object: Option<Map<String, Value>>) {
        debug_assert_eq!(vector.len(), self.dim);
        self.masks.clear();
        let position = self.positions().get(&id).copied();
        if let Some(objects) = self.objects.get_mut() {
            match object.map_or_else(|| parse_object(&payload), Ok) {
                Ok(o) => match position {
                    Some(i) => objects[i] = o,
                    None => objects.push(o),
                },
                // Forget the parsed payloads: the next filtered search parses them again and reports the bad one.
                Err(_) => self.objects = OnceLock::new(),
            }
        }
        match position {
            Some(i) => {
                self.vectors.to_mut()[i * self.dim..(i + 1) * self.dim].copy_from_slice(vector);
                self.payloads.to_mut()[i] = payload;
                if self.quantises() {
                    let mut codes = Vec::with_capacity(self.dim);
                    self.quantised[i] = kernel::quantise(vector, &mut codes);
                    self.codes.to_mut()[i * self.dim..(i + 1) * self.dim].copy_from_slice(&codes);
                }
            }
            None => {
                let end = self.ids.len();
                self.positions().insert(id, end);
                self.ids.push(id);
                self.vectors.to_mut().extend_from_slice(vector);
                self.payloads.to_mut().push(payload);
                if self.quantises() {
                    let q = kernel::quantise(vector, self.codes.to_mut());
                    self.quantised.push(q);
                }
            }
        }
    }

    /// Removes a point if present (the last row takes its place).
    pub(crate) fn remove(&mut self, id: &PointId) {
        let Some(i) = self.positions().remove(id) else { return };
        self.masks.clear();
        let last = self.ids.len() - 1;
        if i != last {
            self.vectors.to_mut().copy_within(last * self.dim..(last + 1) * self.dim, i * self.dim);
        }
        self.vectors.to_mut().truncate(last * self.dim);
        if self.quantises() {
            if i != last {
                self.codes.to_mut().copy_within(last * self.dim..(last + 1) * self.dim, i * self.dim);
            }
            self.codes.to_mut().truncate(last * self.dim);
            self.quantised.swap_remove(i);
        }
        self.ids.swap_remove(i);
        self.payloads.to_mut().swap_remove(i);
        if let Some(objects) = self.objects.get_mut() {
            objects.swap_remove(i);
        }
        if i != last {
            let moved = self.ids[i];
            self.positions().insert(moved, i);
        }
    }

    /// The `limit` best points for `query` (already normalised for cosine) among those whose payload matches
    /// `filter`, best first: highest score, ties by id. Large collections are scanned by several threads.
    ///
    /// # Errors
    /// As [`Snapshot::objects`], when a filter needs the payloads and one is damaged.
    pub(crate) fn search(&self, query: &[f32], limit: usize, filter: Option<&Filter>) -> Result<Vec<Hit>, String> {
        let threads = threads_for(self.len(), self.dim);
        let mask = filter.map(|f| self.mask(f, threads)).transpose()?;
        let selection = mask.as_deref();
        if self.prescan_pays(limit)
            && let Some(hits) = self.search_prescanned(query, limit, selection, threads)
        {
            return Ok(hits);
        }
        Ok(self.search_with_threads(query, limit, selection, threads))
    }

    /// Whether the int8 pre-scan is worth it: a large enough inner-product collection and a `limit` that keeps the
    /// candidates few.
    fn prescan_pays(&self, limit: usize) -> bool {
        self.quantises() && self.len().saturating_mul(self.dim) >= PRESCAN_MIN_FLOATS && limit.saturating_mul(16) <= self.len()
    }

    /// The exact top `limit` through the int8 pre-scan (see the module docs), or `None` when the query cannot be
    /// bounded or too many points remain candidates (the caller then scans in full).
    pub(crate) fn search_prescanned(&self, query: &[f32], limit: usize, selection: Selection<'_>, threads: usize) -> Option<Vec<Hit>> {
        assert_eq!(query.len(), self.dim, "the caller checks the query's dimension");
        let n = self.len();
        if !self.quantises() {
            return None;
        }
        let quantised_query = QuantisedQuery::new(query)?;
        if limit == 0 || n == 0 {
            return Some(Vec::new());
        }
        let qq = &quantised_query;
        // Upper bounds of each point's exact score; NaN for points the filter rejects (NaN passes no comparison).
        let mut upper = vec![f64::NAN; n];
        let threads = threads.clamp(1, n);
        let per = n.div_ceil(threads);
        let lowers: Vec<Vec<f64>> = if threads == 1 {
            vec![self.bound_rows(qq, 0, &mut upper, limit, selection)]
        } else {
            std::thread::scope(|scope| {
                let mut parts = upper.chunks_mut(per).enumerate();
                let first = parts.next();
                let spawned: Vec<_> =
                    parts.map(|(t, out)| scope.spawn(move || self.bound_rows(qq, t * per, out, limit, selection))).collect();
                let mut all = Vec::with_capacity(threads);
                if let Some((_, out)) = first {
                    all.push(self.bound_rows(qq, 0, out, limit, selection));
                }
                for handle in spawned {
                    match handle.join() {
                        Ok(part) => all.push(part),
                        Err(panic) => std::panic::resume_unwind(panic),
                    }
                }
                all
            })
        };
        // The k-th best lower bound: at least k points score at least this, so a point whose upper bound is below
        // it cannot be in the top k.
        let mut lows: Vec<f64> = lowers.into_iter().flatten().collect();
        let threshold = if lows.len() < limit {
            f64::NEG_INFINITY
        } else {
            lows.sort_unstable_by(|a, b| b.total_cmp(a));
            lows[limit - 1]
        };
        let candidates: Vec<usize> = upper.iter().enumerate().filter(|(_, u)| **u >= threshold).map(|(i, _)| i).collect();
        if candidates.len() > (n / 8).max(limit.saturating_mul(64)) {
            return None;
        }
        let mut hits: Vec<Hit> = candidates
            .into_iter()
            .map(|index| {
                let s = kernel::dot(query, &self.vectors[index * self.dim..(index + 1) * self.dim]);
                Hit { score: if s.is_nan() { f32::NEG_INFINITY } else { s }, id: self.ids[index], index }
            })
            .collect();
        hits.sort_unstable_by(Hit::rank);
        hits.truncate(limit);
        Some(hits)
    }

    /// Bounds the exact scores of rows `start..start + upper.len()` from their codes: writes each matching row's
    /// upper bound into `upper` and returns the `limit` largest lower bounds.
    fn bound_rows(&self, query: &QuantisedQuery, start: usize, upper: &mut [f64], limit: usize, selection: Selection<'_>) -> Vec<f64> {
        let end = start + upper.len();
        let rows = self.codes[start * self.dim..end * self.dim].chunks_exact(self.dim);
        let mut lows: BinaryHeap<std::cmp::Reverse<Low>> = BinaryHeap::with_capacity(limit + 1);
        for (((index, codes), q), up) in (start..end).zip(rows).zip(&self.quantised[start..end]).zip(upper.iter_mut()) {
            if !selected(selection, index) {
                continue;
            }
            let (low, high) = query.bound(codes, q);
            *up = high;
            if lows.len() < limit {
                lows.push(std::cmp::Reverse(Low(low)));
            } else if let Some(mut min) = lows.peek_mut()
                && low > min.0.0
            {
                *min = std::cmp::Reverse(Low(low));
            }
        }
        lows.into_iter().map(|l| l.0.0).collect()
    }

    /// The full exact scan with an explicit thread count.
    pub(crate) fn search_with_threads(&self, query: &[f32], limit: usize, selection: Selection<'_>, threads: usize) -> Vec<Hit> {
        assert_eq!(query.len(), self.dim, "the caller checks the query's dimension");
        let n = self.len();
        if limit == 0 || n == 0 {
            return Vec::new();
        }
        let threads = threads.clamp(1, n);
        let mut hits = if threads == 1 {
            self.scan(query, 0..n, limit, selection)
        } else {
            let per = n.div_ceil(threads);
            std::thread::scope(|scope| {
                let spawned: Vec<_> = (1..threads)
                    .map(|t| {
                        let range = (t * per).min(n)..((t + 1) * per).min(n);
                        scope.spawn(move || self.scan(query, range, limit, selection))
                    })
                    .collect();
                // The calling thread takes the first part instead of waiting idle.
                let mut all = self.scan(query, 0..per.min(n), limit, selection);
                for handle in spawned {
                    match handle.join() {
                        Ok(part) => all.extend(part),
                        Err(panic) => std::panic::resume_unwind(panic),
                    }
                }
                all
            })
        };
        hits.sort_unstable_by(Hit::rank);
        hits.truncate(limit);
        hits
    }

    /// The best `limit` hits among the rows in `range`, best first.
    fn scan(&self, query: &[f32], range: std::ops::Range<usize>, limit: usize, selection: Selection<'_>) -> Vec<Hit> {
        match self.distance {
            Distance::Cosine | Distance::Dot => self.scan_with(query, range, limit, selection, kernel::dot),
            Distance::Euclid => self.scan_with(query, range, limit, selection, |a, b| -kernel::squared_distance(a, b).sqrt()),
        }
    }

    fn scan_with(
        &self,
        query: &[f32],
        range: std::ops::Range<usize>,
        limit: usize,
        selection: Selection<'_>,
        score: impl Fn(&[f32], &[f32]) -> f32,
    ) -> Vec<Hit> {
        let mut heap: BinaryHeap<Ranked> = BinaryHeap::with_capacity(limit.min(range.len()) + 1);
        let rows = self.vectors[range.start * self.dim..range.end * self.dim].chunks_exact(self.dim);
        for (index, row) in range.zip(rows) {
            if !selected(selection, index) {
                continue;
            }
            let mut s = score(query, row);
            if s.is_nan() {
                // A NaN (from a NaN or infinite component) ranks below every real score instead of poisoning the order.
                s = f32::NEG_INFINITY;
            }
            if heap.len() == limit {
                let worst = heap.peek().map_or(f32::NEG_INFINITY, |w| w.0.score);
                // The common case once the heap is full: not better than the worst kept hit, so not a candidate.
                if s < worst {
                    continue;
                }
                let hit = Hit { score: s, id: self.ids[index], index };
                if let Some(mut top) = heap.peek_mut()
                    && hit.rank(&top.0) == Ordering::Less
                {
                    *top = Ranked(hit);
                }
            } else {
                heap.push(Ranked(Hit { score: s, id: self.ids[index], index }));
            }
        }
        heap.into_sorted_vec().into_iter().map(|r| r.0).collect()
    }
}

/// A lower bound, ordered by `total_cmp` (never NaN here).
#[derive(Debug, Clone, Copy)]
struct Low(f64);

impl PartialEq for Low {
    fn eq(&self, other: &Self) -> bool {
        self.0.total_cmp(&other.0).is_eq()
    }
}

impl Eq for Low {}

impl PartialOrd for Low {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Low {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// How many threads to scan `n` vectors of `dim` floats with.
pub(crate) fn threads_for(n: usize, dim: usize) -> usize {
    if n.saturating_mul(dim) < PARALLEL_MIN_FLOATS {
        return 1;
    }
    std::thread::available_parallelism().map_or(1, |p| p.get()).clamp(1, MAX_THREADS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use uuid::Uuid;

    fn id(n: u128) -> PointId {
        PointId(Uuid::from_u128(n))
    }

    fn meta(n: u64) -> Box<str> {
        json!({"n": n, "even": n.is_multiple_of(2)}).to_string().into()
    }

    fn sample(n: usize, dim: usize, distance: Distance) -> Snapshot {
        let mut s = Snapshot::new(1, 0, dim, distance);
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for i in 0..n {
            let v: Vec<f32> = (0..dim)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    // Few distinct values, so exact ties happen.
                    ((x >> 60) as f32) - 8.0
                })
                .collect();
            // Ids in an order unrelated to positions.
            s.upsert(id(((i as u128) * 7919) % 100_003), &v, meta(i as u64), None);
        }
        s
    }

    fn reference(s: &Snapshot, q: &[f32], limit: usize, filter: Option<&Filter>) -> Vec<(PointId, f32)> {
        let mut all: Vec<(PointId, f32)> = (0..s.len())
            .filter(|&i| filter.is_none_or(|f| f.matches(&parse_object(s.payload_json(i)).unwrap())))
            .map(|i| {
                let v = s.vector(i);
                let score = match s.distance {
                    Distance::Euclid => -v.iter().zip(q).map(|(a, b)| (a - b) * (a - b)).sum::<f32>().sqrt(),
                    _ => v.iter().zip(q).map(|(a, b)| a * b).sum::<f32>(),
                };
                (s.ids[i], score)
            })
            .collect();
        all.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap_or(Ordering::Equal).then(a.0.cmp(&b.0)));
        all.truncate(limit);
        all
    }

    #[test]
    fn top_k_matches_a_full_sort_for_any_thread_count() {
        for distance in [Distance::Dot, Distance::Euclid] {
            let s = sample(997, 20, distance);
            let q: Vec<f32> = (0..20).map(|i| (i % 5) as f32 - 2.0).collect();
            let even: Filter = serde_json::from_value(json!({"must": [{"match": {"key": "even", "value": true}}]})).unwrap_or_default();
            for filter in [None, Some(&even)] {
                for limit in [1, 10, 2000] {
                    let want = reference(&s, &q, limit, filter);
                    for threads in [1, 2, 3, 8] {
                        let got: Vec<(PointId, f32)> = s
                            .search_with_threads(&q, limit, filter.map(|f| s.mask(f, threads).unwrap()).as_deref(), threads)
                            .iter()
                            .map(|h| (h.id, h.score))
                            .collect();
                        assert_eq!(got.len(), want.len(), "{distance} limit {limit} threads {threads}");
                        for (g, w) in got.iter().zip(&want) {
                            assert_eq!(g.0, w.0, "{distance} limit {limit} threads {threads}: order by score, ties by id");
                            assert!((g.1 - w.1).abs() < 1e-3, "{distance}: score {} vs {}", g.1, w.1);
                        }
                    }
                }
            }
        }
    }

    /// Pseudo-random vectors: Gaussian-ish, some normalised, plus the degenerate rows the bounds must survive.
    fn varied(n: usize, dim: usize, distance: Distance, seed: u64) -> Snapshot {
        let mut s = Snapshot::new(1, 0, dim, distance);
        let mut x = seed | 1;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        };
        for i in 0..n {
            let mut v: Vec<f32> = (0..dim).map(|_| next() + next() + next()).collect();
            match i % 97 {
                0 => v.iter_mut().for_each(|x| *x = 0.0),
                1 => v[0] = f32::NAN,
                2 => v.iter_mut().for_each(|x| *x *= 1e20),
                3 => v.iter_mut().for_each(|x| *x *= 1e-20),
                4 => v = s.vectors[..dim].to_vec(),
                _ => {}
            }
            if distance == Distance::Cosine {
                kernel::normalise(&mut v);
            }
            s.upsert(id(((i as u128) * 7919) % 1_000_003), &v, meta(i as u64), None);
        }
        s
    }

    #[test]
    fn prescanned_search_equals_the_full_scan() {
        let even: Filter = serde_json::from_value(json!({"must": [{"match": {"key": "even", "value": true}}]})).unwrap_or_default();
        for distance in [Distance::Cosine, Distance::Dot] {
            for (n, dim) in [(3000, 64), (500, 7), (2000, 384)] {
                let s = varied(n, dim, distance, n as u64 + dim as u64);
                for qseed in 0..3u64 {
                    // Row 5 of another sample: an ordinary vector (rows 0-4 are the degenerate ones).
                    let mut q = varied(6, dim, Distance::Dot, 1000 + qseed).vector(5).to_vec();
                    if distance == Distance::Cosine {
                        kernel::normalise(&mut q);
                    }
                    for filter in [None, Some(&even)] {
                        for limit in [1, 10, 100] {
                            let mask = filter.map(|f| s.mask(f, 1).unwrap());
                            let selection = mask.as_deref();
                            let full = s.search_with_threads(&q, limit, selection, 1);
                            for threads in [1, 2, 3] {
                                let pre = s.search_prescanned(&q, limit, selection, threads).expect("random data prunes well");
                                let a: Vec<(PointId, u32)> = full.iter().map(|h| (h.id, h.score.to_bits())).collect();
                                let b: Vec<(PointId, u32)> = pre.iter().map(|h| (h.id, h.score.to_bits())).collect();
                                assert_eq!(a, b, "{distance} n {n} dim {dim} limit {limit} threads {threads} filter {}", filter.is_some());
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn prescan_gives_up_on_ties_and_unbounded_queries() {
        let mut s = Snapshot::new(1, 0, 4, Distance::Dot);
        for i in 0..1000u64 {
            s.upsert(id(u128::from(i)), &[1.0, 2.0, 3.0, 4.0], meta(i), None);
        }
        assert!(s.search_prescanned(&[1.0, 0.0, 0.0, 0.0], 5, None, 2).is_none(), "all tied: every point is a candidate");
        let hits: Vec<PointId> = s.search(&[1.0, 0.0, 0.0, 0.0], 3, None).unwrap().iter().map(|h| h.id).collect();
        assert_eq!(hits, [id(0), id(1), id(2)], "the full scan breaks the tie by id");
        assert!(s.search_prescanned(&[f32::NAN, 0.0, 0.0, 0.0], 5, None, 1).is_none());
        let e = Snapshot::new(1, 0, 4, Distance::Euclid);
        assert!(e.search_prescanned(&[1.0, 0.0, 0.0, 0.0], 5, None, 1).is_none(), "no codes for euclid");
    }

    #[test]
    fn codes_follow_upserts_and_removes() {
        let mut s = varied(300, 16, Distance::Dot, 5);
        let ids: Vec<PointId> = s.ids.clone();
        for (k, pid) in ids.iter().enumerate().filter(|(k, _)| k % 3 == 0) {
            if k % 2 == 0 {
                s.remove(pid);
            } else {
                s.upsert(*pid, &[k as f32; 16], meta(k as u64), None);
            }
        }
        assert_eq!(s.codes.len(), s.len() * 16);
        assert_eq!(s.quantised.len(), s.len());
        for i in 0..s.len() {
            let mut codes = Vec::new();
            assert_eq!(kernel::quantise(s.vector(i), &mut codes), s.quantised[i], "row {i}");
            assert_eq!(codes, s.codes[i * 16..(i + 1) * 16], "row {i}");
        }
    }

    #[test]
    fn upsert_and_remove_keep_rows_aligned() {
        let mut s = Snapshot::new(1, 0, 2, Distance::Dot);
        for i in 0..5u64 {
            s.upsert(id(u128::from(i)), &[i as f32, 1.0], meta(i), None);
        }
        s.remove(&id(1));
        s.remove(&id(4));
        s.remove(&id(42));
        s.upsert(id(2), &[20.0, 1.0], meta(20), None);
        assert_eq!(s.len(), 3);
        let q = [1.0, 0.0];
        let hits = s.search(&q, 10, None).unwrap();
        let n = |i: usize| serde_json::from_str::<Value>(s.payload_json(i)).unwrap()["n"].clone();
        let got: Vec<(PointId, f32, Value)> = hits.iter().map(|h| (h.id, h.score, n(h.index))).collect();
        assert_eq!(got, [(id(2), 20.0, json!(20)), (id(3), 3.0, json!(3)), (id(0), 0.0, json!(0))]);
    }

    #[test]
    fn nan_scores_rank_last() {
        let mut s = Snapshot::new(1, 0, 1, Distance::Dot);
        s.upsert(id(1), &[f32::NAN], meta(1), None);
        s.upsert(id(2), &[-5.0], meta(2), None);
        let hits: Vec<PointId> = s.search(&[1.0], 2, None).unwrap().iter().map(|h| h.id).collect();
        assert_eq!(hits, [id(2), id(1)]);
    }

    #[test]
    fn parsed_payloads_follow_writes_once_parsed() {
        let mut s = sample(50, 4, Distance::Dot);
        let fresh = |s: &Snapshot| (0..s.len()).map(|i| parse_object(s.payload_json(i)).unwrap()).collect::<Vec<_>>();
        assert_eq!(s.objects().unwrap(), fresh(&s).as_slice());
        let ids = s.ids.clone();
        s.remove(&ids[3]);
        s.upsert(ids[10], &[1.0; 4], meta(1000), None);
        s.upsert(ids[11], &[1.0; 4], meta(1001), parse_object(&meta(1001)).ok());
        s.upsert(id(999_999), &[1.0; 4], meta(1002), None);
        assert_eq!(s.objects().unwrap(), fresh(&s).as_slice(), "kept in step with every write");

        s.upsert(id(1), &[1.0; 4], "not json".into(), None);
        let even: Filter = serde_json::from_value(json!({"must": [{"match": {"key": "even", "value": true}}]})).unwrap_or_default();
        assert!(s.search(&[1.0; 4], 3, Some(&even)).is_err(), "a damaged payload is reported when a filter needs it");
        assert_eq!(s.search(&[1.0; 4], 3, None).map(|h| h.len()), Ok(3), "searches without a filter do not parse payloads");
    }

    #[test]
    fn masks_are_remembered_until_a_write() {
        let mut s = sample(100, 4, Distance::Dot);
        let even: Filter = serde_json::from_value(json!({"must": [{"match": {"key": "even", "value": true}}]})).unwrap_or_default();
        let first = s.mask(&even, 2).unwrap();
        assert_eq!(first.iter().filter(|m| **m).count(), 50);
        assert!(Arc::ptr_eq(&first, &s.mask(&even, 1).unwrap()), "the same filter reuses its mask");
        let ids = s.ids.clone();
        let odd_position = (0..s.len()).find(|&i| !first[i]).unwrap();
        s.upsert(ids[odd_position], &[0.0; 4], meta(2), None);
        let after = s.mask(&even, 2).unwrap();
        assert!(!Arc::ptr_eq(&first, &after), "a write forgets the masks");
        assert_eq!(after.iter().filter(|m| **m).count(), 51, "and the new mask sees the write");
        s.remove(&ids[odd_position]);
        assert_eq!(s.mask(&even, 2).unwrap().iter().filter(|m| **m).count(), 50);
        for i in 0..20u64 {
            let f: Filter = serde_json::from_value(json!({"must": [{"match": {"key": "n", "value": i}}]})).unwrap_or_default();
            let want = usize::from(i as usize != odd_position);
            assert_eq!(s.mask(&f, 1).unwrap().iter().filter(|m| **m).count(), want, "n = {i} (point {odd_position} was removed)");
        }
        assert!(s.masks.0.lock().unwrap().len() <= MASKS_KEPT);
    }
}
