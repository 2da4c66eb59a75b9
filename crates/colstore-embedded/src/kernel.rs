//! The arithmetic of exact search: dot products, squared Euclidean distances and cosine normalisation.
//!
//! The loops are written so the compiler vectorises them without `unsafe` or target-specific code: the slices are
//! split into fixed-size `[f32; LANES]` chunks (so there are no bounds checks in the hot loop) and summed into
//! `LANES` independent accumulators (so the additions may be reordered into SIMD lanes). The tail shorter than a
//! chunk is summed separately.

/// Accumulators per kernel: 16 `f32` are four SSE or two AVX registers, enough to hide the add latency.
const LANES: usize = 16;

/// The dot product of two equally long vectors.
#[inline]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let (a_chunks, a_tail) = a.as_chunks::<LANES>();
    let (b_chunks, b_tail) = b.as_chunks::<LANES>();
    let mut acc = [0f32; LANES];
    for (x, y) in a_chunks.iter().zip(b_chunks) {
        for ((s, x), y) in acc.iter_mut().zip(x).zip(y) {
            *s += x * y;
        }
    }
    let mut tail = 0f32;
    for (x, y) in a_tail.iter().zip(b_tail) {
        tail += x * y;
    }
    reduce(acc) + tail
}

/// The squared Euclidean distance between two equally long vectors.
#[inline]
pub(crate) fn squared_distance(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let (a_chunks, a_tail) = a.as_chunks::<LANES>();
    let (b_chunks, b_tail) = b.as_chunks::<LANES>();
    let mut acc = [0f32; LANES];
    for (x, y) in a_chunks.iter().zip(b_chunks) {
        for ((s, x), y) in acc.iter_mut().zip(x).zip(y) {
            let d = x - y;
            *s += d * d;
        }
    }
    let mut tail = 0f32;
    for (x, y) in a_tail.iter().zip(b_tail) {
        let d = x - y;
        tail += d * d;
    }
    reduce(acc) + tail
}

/// The exact dot product of an int16-quantised query and an int8-quantised vector.
///
/// The caller keeps `Σ |p[j]| * 127 <= i32::MAX` (see [`QuantisedQuery::new`]), so no partial sum can overflow in
/// any order; the compiler is free to reassociate the integer sum, and does, into `pmaddwd`.
#[inline]
pub(crate) fn dot_i16_i8(p: &[i16], c: &[i8]) -> i32 {
    debug_assert_eq!(p.len(), c.len());
    let (p_chunks, p_tail) = p.as_chunks::<LANES>();
    let (c_chunks, c_tail) = c.as_chunks::<LANES>();
    let mut acc = [0i32; LANES];
    for (x, y) in p_chunks.iter().zip(c_chunks) {
        for ((s, x), y) in acc.iter_mut().zip(x).zip(y) {
            *s += i32::from(*x) * i32::from(*y);
        }
    }
    let mut total: i32 = acc.iter().sum();
    for (x, y) in p_tail.iter().zip(c_tail) {
        total += i32::from(*x) * i32::from(*y);
    }
    total
}

/// How a vector is approximated by int8 codes, `v[j] ≈ scale * codes[j]`, with what the search needs to bound the
/// error of `dot(q, v)` for any query (see [`quantise`] and [`QuantisedQuery::bound`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Quantised {
    pub(crate) scale: f32,
    /// `r + 3 γ m` (with slack): multiplied by `‖q‖₁` it bounds the quantisation error of the vector plus the
    /// rounding of the exact `f32` kernel. Infinite when the vector cannot be bounded (non-finite or extreme
    /// components): such a point is always rescored.
    pub(crate) error: f32,
    /// `scale * Σ |codes[j]|` (rounded up): multiplied by the query's quantisation error it bounds that error's effect.
    pub(crate) l1: f32,
}

/// Appends `v`'s int8 codes to `codes` and returns its scale and error terms.
///
/// The bound is rigorous, so a pre-scan over the codes can never drop a vector that the exact `f32` scan would rank
/// in the top k. With `m = max |v[j]|`, `s = m / 127`, `c[j] = round(v[j] / s)`, `r = max |v[j] - s c[j]|`, and a
/// query quantised as `q[j] ≈ t p[j]` with `r_q = max |q[j] - t p[j]|`:
/// - `|Σ q v - t s Σ p c| <= |Σ q (v - s c)| + |Σ (q - t p) s c| <= r ‖q‖₁ + r_q s Σ|c|`;
/// - the exact kernel's rounding: `|fl(Σ q v) - Σ q v| <= γₙ Σ|q v| <= γₙ m ‖q‖₁`, `γₙ = n u / (1 - n u)`,
///   `u = 2⁻²⁴`, for any summation order;
/// - `Σ p c` is computed exactly in integers and `t s Σ p c` in `f64` (relative error below 2⁻⁵⁰).
pub(crate) fn quantise(v: &[f32], codes: &mut Vec<i8>) -> Quantised {
    let finite = v.iter().all(|x| x.is_finite());
    let m = v.iter().fold(0f32, |m, x| m.max(x.abs()));
    if !finite || m > 1e30 || (m > 0.0 && m < 1e-30) {
        codes.extend(std::iter::repeat_n(0, v.len()));
        return Quantised { scale: 0.0, error: f32::INFINITY, l1: f32::INFINITY };
    }
    if m == 0.0 {
        codes.extend(std::iter::repeat_n(0, v.len()));
        return Quantised { scale: 0.0, error: 0.0, l1: 0.0 };
    }
    let scale = m / 127.0;
    let mut r = 0f64;
    let mut sum_abs = 0u64;
    for &x in v {
        let c = (x / scale).round().clamp(-127.0, 127.0);
        codes.push(c as i8);
        sum_abs += c.abs() as u64;
        r = r.max((f64::from(x) - f64::from(scale) * f64::from(c)).abs());
    }
    let n = v.len() as f64 + 2.0;
    let u = (2f64).powi(-24);
    let gamma = n * u / (1.0 - n * u);
    let error = (r * (1.0 + 1e-9) + 3.0 * gamma * f64::from(m)) * 1.001;
    let l1 = f64::from(scale) * sum_abs as f64 * (1.0 + 1e-9);
    Quantised { scale, error: (error as f32).next_up(), l1: (l1 as f32).next_up() }
}

/// A query quantised to int16 for the pre-scan: `q[j] ≈ step * codes[j]`.
#[derive(Debug, Clone)]
pub(crate) struct QuantisedQuery {
    pub(crate) codes: Vec<i16>,
    step: f64,
    /// `max |q[j] - step * codes[j]|`, with slack.
    error: f64,
    /// `‖q‖₁`, with slack.
    norm1: f64,
}

impl QuantisedQuery {
    /// Quantises `q`, or `None` when it has non-finite components. The code range is chosen so that
    /// [`dot_i16_i8`] cannot overflow: `127 * max |p| * len <= i32::MAX`.
    pub(crate) fn new(q: &[f32]) -> Option<Self> {
        if !q.iter().all(|x| x.is_finite()) {
            return None;
        }
        let norm1 = q.iter().map(|x| f64::from(x.abs())).sum::<f64>() * (1.0 + 1e-9);
        let m = q.iter().fold(0f32, |m, x| m.max(x.abs()));
        if m == 0.0 {
            return Some(Self { codes: vec![0; q.len()], step: 0.0, error: 0.0, norm1 });
        }
        let max_code = (f64::from(i32::MAX) / (127.0 * q.len().max(1) as f64)).floor().min(32767.0);
        if max_code < 1.0 {
            return None;
        }
        let step = f64::from(m) / max_code;
        let mut error = 0f64;
        let codes = q
            .iter()
            .map(|&x| {
                let c = (f64::from(x) / step).round().clamp(-max_code, max_code);
                error = error.max((f64::from(x) - step * c).abs());
                c as i16
            })
            .collect();
        Some(Self { codes, step, error: error * (1.0 + 1e-9) + f64::from(m) * 1e-15, norm1 })
    }

    /// An interval that surely holds the exact `f32` kernel's `dot(q, v)` for the vector with `codes` and `qv`.
    #[inline]
    pub(crate) fn bound(&self, codes: &[i8], qv: &Quantised) -> (f64, f64) {
        // Products or partial sums near the f32 range could overflow in the exact kernel, where the relative bounds
        // no longer hold: such points are always rescored.
        if !qv.error.is_finite() || f64::from(qv.scale) * 127.0 * self.norm1 >= 1e36 {
            return (f64::NEG_INFINITY, f64::INFINITY);
        }
        let approx = self.step * f64::from(qv.scale) * f64::from(dot_i16_i8(&self.codes, codes));
        // The last terms cover the rounding of `approx` itself and products that underflow to subnormals.
        let slack =
            f64::from(qv.error) * self.norm1 + self.error * f64::from(qv.l1) + approx.abs() * (2f64).powi(-40) + codes.len() as f64 * 1e-44;
        (approx - slack, approx + slack)
    }
}

/// Pairwise sum of the accumulators (a fixed order, so equal inputs always give bit-identical scores).
#[inline]
fn reduce(mut acc: [f32; LANES]) -> f32 {
    let mut width = LANES;
    while width > 1 {
        width /= 2;
        for i in 0..width {
            acc[i] += acc[i + width];
        }
    }
    acc[0]
}

/// Scales `v` to unit length, as Qdrant does for cosine collections; a vector of (near) zero length is left as it is.
pub(crate) fn normalise(v: &mut [f32]) {
    let length = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if length < f32::EPSILON || !length.is_finite() {
        return;
    }
    for x in v {
        *x /= length;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pseudo_random(seed: u64, n: usize) -> Vec<f32> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 40) as f32 / (1u64 << 24) as f32 - 0.5
            })
            .collect()
    }

    #[test]
    fn kernels_agree_with_naive_sums_for_every_length() {
        for len in [0, 1, 3, 15, 16, 17, 31, 32, 33, 100, 384, 385] {
            let a = pseudo_random(len as u64 + 1, len);
            let b = pseudo_random(len as u64 + 1000, len);
            let naive_dot: f64 = a.iter().zip(&b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum();
            let naive_l2: f64 = a.iter().zip(&b).map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2)).sum();
            assert!((f64::from(dot(&a, &b)) - naive_dot).abs() < 1e-4, "dot, len {len}");
            assert!((f64::from(squared_distance(&a, &b)) - naive_l2).abs() < 1e-4, "l2, len {len}");
        }
    }

    #[test]
    fn exact_inputs_give_exact_results() {
        let a: Vec<f32> = (1..=20).map(|i| i as f32).collect();
        let ones = vec![1f32; 20];
        assert_eq!(dot(&a, &ones), 210.0);
        assert_eq!(squared_distance(&a, &a), 0.0);
        assert_eq!(squared_distance(&[3.0, 0.0], &[0.0, 4.0]), 25.0);
    }

    #[test]
    fn quantised_dot_products_stay_within_the_bound() {
        for (seed, scale) in [(1u64, 1.0f32), (2, 1e-6), (3, 1e6), (4, 0.01)] {
            for len in [1, 7, 16, 33, 384, 5000] {
                let v: Vec<f32> = pseudo_random(seed * 1000 + len as u64, len).iter().map(|x| x * scale).collect();
                let mut codes = Vec::new();
                let qv = quantise(&v, &mut codes);
                assert_eq!(codes.len(), len);
                assert!(qv.error.is_finite() && qv.l1.is_finite());
                for qseed in 0..20u64 {
                    let q: Vec<f32> = pseudo_random(qseed + 77, len).iter().map(|x| x * (qseed as f32 + 0.5)).collect();
                    let query = QuantisedQuery::new(&q).expect("a finite query");
                    let exact = f64::from(dot(&q, &v));
                    let (low, high) = query.bound(&codes, &qv);
                    assert!(low <= exact && exact <= high, "len {len} scale {scale}: {exact} outside [{low}, {high}]");
                    // The bound is useful: far below the spread of scores.
                    assert!(high - low <= f64::from(scale) * query.norm1 * 0.02, "len {len}: width {} too loose", high - low);
                }
            }
        }
    }

    #[test]
    fn integer_dot_is_exact_at_the_extremes() {
        let q = vec![1.0f32; 384];
        let query = QuantisedQuery::new(&q).expect("finite");
        assert_eq!(query.codes[0], 32767);
        assert_eq!(dot_i16_i8(&query.codes, &[127; 384]), 32767 * 127 * 384);
        assert_eq!(dot_i16_i8(&query.codes, &[-127; 384]), -32767 * 127 * 384);
        let long = QuantisedQuery::new(&vec![-3.0f32; 65_536]).expect("finite");
        assert_eq!(dot_i16_i8(&long.codes, &vec![127; 65_536]), i32::from(long.codes[0]) * 127 * 65_536);
        assert!(QuantisedQuery::new(&[1.0, f32::NAN]).is_none());
        // Near the f32 range the exact kernel may overflow: no finite interval is claimed.
        let mut big = Vec::new();
        let qv = quantise(&[1e29, 1e29], &mut big);
        let huge = QuantisedQuery::new(&[1e10, 1e10]).expect("finite");
        assert_eq!(huge.bound(&big, &qv), (f64::NEG_INFINITY, f64::INFINITY));
    }

    #[test]
    fn unbounded_vectors_are_flagged() {
        let mut codes = Vec::new();
        assert_eq!(quantise(&[0.0, 0.0], &mut codes), Quantised { scale: 0.0, error: 0.0, l1: 0.0 });
        assert!(quantise(&[1.0, f32::NAN], &mut codes).error.is_infinite());
        assert!(quantise(&[1.0, f32::INFINITY], &mut codes).error.is_infinite());
        assert!(quantise(&[1e-35, 0.0], &mut codes).error.is_infinite());
        assert_eq!(codes.len(), 8);
    }

    #[test]
    fn normalise_gives_unit_length_and_keeps_zero() {
        let mut v = vec![3.0, 4.0, 0.0];
        normalise(&mut v);
        assert_eq!(v, [0.6, 0.8, 0.0]);
        let mut z = vec![0.0; 4];
        normalise(&mut z);
        assert_eq!(z, [0.0; 4]);
    }
}
