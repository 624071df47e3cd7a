//! One vector index in memory: the vectors (normalised for cosine), their metadata, an HNSW
//! graph (hnsw_rs) over them, and tombstones for deleted or replaced vectors, which searches
//! skip and which a rebuild drops once they pile up. Storage (redb) is the source of truth; an
//! index is rebuilt from it after a restart.

use std::collections::HashMap;

use anndists::dist::Distance;
use hnsw_rs::hnsw::Hnsw;
use serde_json::Value;

use super::VectorError;
use super::filter::Filter;

/// How similarity is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    Cosine,
    Euclidean,
    Dotproduct,
}

impl Metric {
    pub fn parse(s: &str) -> Option<Metric> {
        match s {
            "cosine" => Some(Metric::Cosine),
            "euclidean" => Some(Metric::Euclidean),
            "dotproduct" => Some(Metric::Dotproduct),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::Cosine => "cosine",
            Metric::Euclidean => "euclidean",
            Metric::Dotproduct => "dotproduct",
        }
    }
}

/// Sums `term(a[i], b[i])` over eight independent accumulators, which lets the compiler use SIMD
/// lanes (a single running float sum must keep its order and cannot be vectorised).
#[inline(always)]
fn lane_sum(a: &[f32], b: &[f32], term: impl Fn(f32, f32) -> f32) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| term(*x, *y))
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += term(x[i], y[i]);
        }
    }
    acc.iter().sum::<f32>() + tail
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    lane_sum(a, b, |x, y| x * y)
}

fn l2(a: &[f32], b: &[f32]) -> f32 {
    lane_sum(a, b, |x, y| (x - y) * (x - y)).sqrt()
}

/// The graph's dissimilarity: smaller is closer, never negative (hnsw_rs asserts that).
#[derive(Debug, Clone, Copy)]
pub struct GraphDistance(Metric);

impl Distance<f32> for GraphDistance {
    fn eval(&self, a: &[f32], b: &[f32]) -> f32 {
        match self.0 {
            // Vectors are stored normalised, so 1 - a·b is the cosine distance.
            Metric::Cosine => (1.0 - dot(a, b)).max(0.0),
            Metric::Euclidean => l2(a, b),
            // softplus(-a·b): positive and decreasing in a·b, so it orders like the dot product.
            Metric::Dotproduct => {
                let x = -dot(a, b);
                if x > 20.0 { x } else { x.exp().ln_1p() }
            }
        }
    }
}

/// Graph parameters: 16 links per node, construction and search breadth.
const LINKS: usize = 24;
const EF_CONSTRUCTION: usize = 100;
const MAX_LAYERS: usize = 16;
/// Filters matching at most this share of the live vectors are answered by exact search.
const EXACT_SHARE: f64 = 0.05;

/// One result before it is dressed for the wire.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub id: String,
    pub score: f32,
    pub metadata: Value,
}

pub struct VectorIndex {
    pub dimension: usize,
    pub metric: Metric,
    /// Internal slot → external id; `None` marks a deleted or replaced vector.
    ids: Vec<Option<String>>,
    slots: HashMap<String, usize>,
    /// Slot-major, `dimension` floats per slot (normalised for cosine).
    vectors: Vec<f32>,
    metadata: Vec<Value>,
    graph: Hnsw<'static, f32, GraphDistance>,
    /// Search breadth; at least k.
    pub ef_search: usize,
}

impl VectorIndex {
    pub fn new(dimension: usize, metric: Metric, capacity: usize) -> VectorIndex {
        VectorIndex {
            dimension,
            metric,
            ids: Vec::new(),
            slots: HashMap::new(),
            vectors: Vec::new(),
            metadata: Vec::new(),
            graph: new_graph(metric, capacity),
            ef_search: 96,
        }
    }

    /// Live vectors.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    pub fn contains(&self, id: &str) -> bool {
        self.slots.contains_key(id)
    }

    /// Checks a vector's shape and values; returns it as it is stored and searched.
    pub fn prepare(&self, v: &[f64]) -> Result<Vec<f32>, VectorError> {
        if v.len() != self.dimension {
            return Err(VectorError::Invalid(format!(
                "vector has {} dimensions, the index has {}",
                v.len(),
                self.dimension
            )));
        }
        let mut out: Vec<f32> = v.iter().map(|x| *x as f32).collect();
        if out.iter().any(|x| !x.is_finite()) {
            return Err(VectorError::Invalid(
                "vectors must not contain NaN or infinite values".into(),
            ));
        }
        if self.metric == Metric::Cosine {
            let norm = dot(&out, &out).sqrt();
            if norm == 0.0 {
                return Err(VectorError::Invalid(
                    "a zero vector has no direction for cosine similarity".into(),
                ));
            }
            out.iter_mut().for_each(|x| *x /= norm);
        }
        Ok(out)
    }

    /// Inserts or replaces vectors (already prepared).
    pub fn upsert(&mut self, items: Vec<(String, Vec<f32>, Value)>) {
        let first = self.ids.len();
        for (id, vector, metadata) in items {
            if let Some(old) = self.slots.remove(&id) {
                self.ids[old] = None;
                self.metadata[old] = Value::Null;
            }
            let slot = self.ids.len();
            self.slots.insert(id.clone(), slot);
            self.ids.push(Some(id));
            self.vectors.extend_from_slice(&vector);
            self.metadata.push(metadata);
        }
        let batch: Vec<(&[f32], usize)> = (first..self.ids.len())
            .map(|s| (self.vector(s), s))
            .collect();
        if batch.len() > 16 {
            self.graph.parallel_insert_slice(&batch);
        } else {
            for item in batch {
                self.graph.insert_slice(item);
            }
        }
        self.compact_if_needed();
    }

    /// Removes vectors; returns how many existed.
    pub fn delete(&mut self, ids: &[String]) -> usize {
        let mut n = 0;
        for id in ids {
            if let Some(slot) = self.slots.remove(id) {
                self.ids[slot] = None;
                self.metadata[slot] = Value::Null;
                n += 1;
            }
        }
        self.compact_if_needed();
        n
    }

    fn vector(&self, slot: usize) -> &[f32] {
        &self.vectors[slot * self.dimension..(slot + 1) * self.dimension]
    }

    /// Rebuilds the graph without dead slots once they outnumber the live ones.
    fn compact_if_needed(&mut self) {
        let dead = self.ids.len() - self.slots.len();
        if dead < 1024 || dead < self.slots.len() {
            return;
        }
        let mut fresh = VectorIndex::new(self.dimension, self.metric, self.slots.len());
        fresh.ef_search = self.ef_search;
        let mut live: Vec<(String, Vec<f32>, Value)> = Vec::with_capacity(self.slots.len());
        for (slot, id) in self.ids.iter().enumerate() {
            if let Some(id) = id {
                live.push((
                    id.clone(),
                    self.vector(slot).to_vec(),
                    std::mem::take(&mut self.metadata[slot]),
                ));
            }
        }
        fresh.upsert(live);
        *self = fresh;
    }

    fn score(&self, query: &[f32], slot: usize) -> f32 {
        let v = self.vector(slot);
        match self.metric {
            Metric::Cosine | Metric::Dotproduct => dot(query, v),
            // Higher is better everywhere: 1 / (1 + distance).
            Metric::Euclidean => 1.0 / (1.0 + l2(query, v)),
        }
    }

    fn exact(&self, query: &[f32], k: usize, keep: &dyn Fn(usize) -> bool) -> Vec<(usize, f32)> {
        let mut scored: Vec<(usize, f32)> = (0..self.ids.len())
            .filter(|&s| self.ids[s].is_some() && keep(s))
            .map(|s| (s, self.score(query, s)))
            .collect();
        let k = k.min(scored.len());
        if k == 0 {
            return Vec::new();
        }
        scored.select_nth_unstable_by(k - 1, |a, b| b.1.total_cmp(&a.1));
        scored.truncate(k);
        scored.sort_by(|a, b| b.1.total_cmp(&a.1));
        scored
    }

    /// Ids of the exact `k` best (the baseline the benchmark measures recall against).
    pub fn exact_ids(&self, query: &[f32], k: usize, filter: Option<&Filter>) -> Vec<String> {
        let keep = |s: usize| filter.is_none_or(|f| f.matches(&self.metadata[s]));
        self.exact(query, k, &keep)
            .into_iter()
            .map(|(s, _)| self.ids[s].clone().expect("live slot"))
            .collect()
    }

    /// The `k` best live vectors for `query` (prepared) among those `filter` keeps: exact when
    /// the filter is selective, otherwise a graph search, falling back to exact when the graph
    /// finds fewer than `min(k, matches)`.
    pub fn search(&self, query: &[f32], k: usize, filter: Option<&Filter>) -> Vec<Hit> {
        if k == 0 || self.is_empty() {
            return Vec::new();
        }
        let filter = filter.filter(|f| !f.is_empty());
        let live = |s: usize| self.ids[s].is_some();
        // The filter is evaluated lazily, on the nodes the graph search visits; a sample tells
        // whether it is selective enough to go straight to exact search.
        let seen: std::cell::RefCell<HashMap<usize, bool>> = Default::default();
        let keep = |s: usize| match filter {
            None => true,
            Some(f) => *seen
                .borrow_mut()
                .entry(s)
                .or_insert_with(|| f.matches(&self.metadata[s])),
        };
        let share = filter.map_or(1.0, |f| {
            let step = (self.ids.len() / 512).max(1);
            let sample: Vec<usize> = (0..self.ids.len())
                .step_by(step)
                .filter(|s| live(*s))
                .collect();
            let hits = sample
                .iter()
                .filter(|s| f.matches(&self.metadata[**s]))
                .count();
            hits as f64 / sample.len().max(1) as f64
        });
        let exact_first = self.len() <= 256 || share <= EXACT_SHARE;
        let mut found: Vec<(usize, f32)> = Vec::new();
        if !exact_first {
            let dead = self.ids.len() > self.slots.len();
            // With a filter, ask the graph for proportionally more neighbours and keep the
            // matching ones (hnsw_rs's own filtered search is slow on wide searches).
            let wanted = ((k as f64 / share.max(EXACT_SHARE)) * 2.0).ceil() as usize;
            let ef = self.ef_search.max(wanted);
            let allowed = |d: &usize| live(*d) && keep(*d);
            let neighbours = if dead {
                self.graph
                    .search_filter(query, wanted, ef, Some(&|d: &usize| live(*d)))
            } else {
                self.graph.search(query, wanted, ef)
            };
            found = neighbours
                .into_iter()
                .filter(|n| allowed(&n.d_id))
                .map(|n| (n.d_id, self.score(query, n.d_id)))
                .collect();
            found.sort_by(|a, b| b.1.total_cmp(&a.1));
            found.dedup_by_key(|f| f.0);
        }
        // Fewer than k from the graph: either fewer match, or the graph missed some; exact
        // search settles it (it never returns fewer than min(k, matches)).
        if found.len() < k {
            found = self.exact(query, k, &keep);
        }
        found
            .into_iter()
            .take(k)
            .map(|(s, score)| Hit {
                id: self.ids[s].clone().expect("live slot"),
                score,
                metadata: self.metadata[s].clone(),
            })
            .collect()
    }
}

fn new_graph(metric: Metric, capacity: usize) -> Hnsw<'static, f32, GraphDistance> {
    let mut g = Hnsw::new(
        LINKS,
        capacity.max(1024),
        MAX_LAYERS,
        EF_CONSTRUCTION,
        GraphDistance(metric),
    );
    g.set_searching_mode(false);
    g
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn index(metric: Metric) -> VectorIndex {
        VectorIndex::new(3, metric, 16)
    }

    fn add(ix: &mut VectorIndex, id: &str, v: [f64; 3], meta: Value) {
        let p = ix.prepare(&v).unwrap();
        ix.upsert(vec![(id.into(), p, meta)]);
    }

    #[test]
    fn nearest_first_with_each_metric() {
        for metric in [Metric::Cosine, Metric::Euclidean, Metric::Dotproduct] {
            let mut ix = index(metric);
            add(&mut ix, "x", [1.0, 0.0, 0.0], json!({}));
            add(&mut ix, "y", [0.0, 1.0, 0.0], json!({}));
            add(&mut ix, "z", [0.0, 0.0, 1.0], json!({}));
            let q = ix.prepare(&[0.9, 0.2, 0.0]).unwrap();
            let hits = ix.search(&q, 2, None);
            assert_eq!(
                hits.iter().map(|h| h.id.as_str()).collect::<Vec<_>>(),
                ["x", "y"],
                "{metric:?}"
            );
            assert!(hits[0].score > hits[1].score);
        }
    }

    #[test]
    fn replaced_and_deleted_vectors_never_come_back() {
        let mut ix = index(Metric::Cosine);
        add(&mut ix, "a", [1.0, 0.0, 0.0], json!({"v": 1}));
        add(&mut ix, "b", [0.0, 1.0, 0.0], json!({}));
        add(&mut ix, "a", [0.0, 0.0, 1.0], json!({"v": 2}));
        assert_eq!(ix.len(), 2);
        let q = ix.prepare(&[1.0, 0.0, 0.0]).unwrap();
        let hits = ix.search(&q, 5, None);
        assert_eq!(hits.len(), 2);
        let a = hits.iter().find(|h| h.id == "a").unwrap();
        assert_eq!(a.metadata, json!({"v": 2}));
        assert!(a.score.abs() < 1e-6, "the old vector is gone");
        assert_eq!(ix.delete(&["b".into(), "nope".into()]), 1);
        assert_eq!(ix.search(&q, 5, None).len(), 1);
    }

    #[test]
    fn bad_vectors_are_refused() {
        let ix = index(Metric::Cosine);
        assert!(
            ix.prepare(&[1.0, 2.0])
                .unwrap_err()
                .to_string()
                .contains("3")
        );
        assert!(ix.prepare(&[f64::NAN, 0.0, 0.0]).is_err());
        assert!(ix.prepare(&[f64::INFINITY, 0.0, 0.0]).is_err());
        assert!(ix.prepare(&[0.0, 0.0, 0.0]).is_err());
        assert!(index(Metric::Euclidean).prepare(&[0.0, 0.0, 0.0]).is_ok());
    }

    #[test]
    fn filtered_search_returns_the_true_top_k_among_matches() {
        let mut ix = VectorIndex::new(8, Metric::Cosine, 4096);
        let mut rng = 1u64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            (rng % 1000) as f64 / 1000.0 - 0.5
        };
        let items: Vec<(String, Vec<f32>, Value)> = (0..3000)
            .map(|i| {
                let v: Vec<f64> = (0..8).map(|_| next()).collect();
                (
                    format!("v{i}"),
                    ix.prepare(&v).unwrap(),
                    json!({"group": i % 10, "even": i % 2 == 0}),
                )
            })
            .collect();
        ix.upsert(items);
        let q = ix
            .prepare(&[0.3, -0.2, 0.1, 0.4, 0.0, -0.1, 0.2, 0.3])
            .unwrap();
        for f in [
            json!({"group": 3}),
            json!({"even": true}),
            json!({"group": {"$in": [1, 2]}}),
        ] {
            let filter = Filter::parse(&f).unwrap();
            let got: Vec<String> = ix
                .search(&q, 10, Some(&filter))
                .into_iter()
                .map(|h| h.id)
                .collect();
            let keep = |s: usize| filter.matches(&ix.metadata[s]);
            let exact: Vec<String> = ix
                .exact(&q, 10, &keep)
                .into_iter()
                .map(|(s, _)| ix.ids[s].clone().unwrap())
                .collect();
            let overlap = got.iter().filter(|g| exact.contains(g)).count();
            assert_eq!(got.len(), 10);
            assert!(overlap >= 9, "{f}: {overlap}/10");
        }
        // Fewer matches than k: all of them.
        let one = Filter::parse(&json!({"group": 3, "even": true})).unwrap();
        assert_eq!(ix.search(&q, 5000, Some(&one)).len(), 0, "group 3 is odd");
        let few =
            Filter::parse(&json!({"$or": [{"group": 3}, {"group": 4}], "even": true})).unwrap();
        assert_eq!(ix.search(&q, 5000, Some(&few)).len(), 300);
    }
}
