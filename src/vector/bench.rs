//! `edgestra bench vector`: build time, recall@10 against exact search computed in the same run,
//! queries per second on one and two threads, filtered recall, upsert rate and memory, on
//! clustered data (Gaussian clusters around random centres, normalised) — uniform random
//! vectors have no neighbourhoods and tell nothing about a real workload.

use std::time::Instant;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

use super::filter::Filter;
use super::index::{Metric, VectorIndex};

fn gaussian(rng: &mut StdRng) -> f64 {
    // Box-Muller.
    let u1: f64 = rng.random::<f64>().max(1e-12);
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

fn around(center: &[f64], spread: f64, rng: &mut StdRng) -> Vec<f64> {
    center.iter().map(|c| c + spread * gaussian(rng)).collect()
}

fn recall(got: &[Vec<String>], truth: &[Vec<String>]) -> f64 {
    let mut hit = 0usize;
    let mut total = 0usize;
    for (g, t) in got.iter().zip(truth) {
        total += t.len();
        hit += g.iter().filter(|id| t.contains(id)).count();
    }
    hit as f64 / total.max(1) as f64
}

pub fn run(n: usize, dimension: usize, queries: usize, clusters: usize) {
    let mut rng = StdRng::seed_from_u64(42);
    let spread = 1.0 / (dimension as f64).sqrt();
    let centers: Vec<Vec<f64>> = (0..clusters)
        .map(|_| (0..dimension).map(|_| gaussian(&mut rng)).collect())
        .collect();
    let data: Vec<Vec<f64>> = (0..n)
        .map(|i| around(&centers[i % clusters], spread * 0.6, &mut rng))
        .collect();
    // Buckets drawn independently of the clusters, so a bucket filter keeps 10% of every cluster.
    let buckets: Vec<u32> = (0..n).map(|_| rng.random_range(0..10)).collect();
    let qs: Vec<Vec<f64>> = (0..queries)
        .map(|_| {
            around(
                &centers[rng.random_range(0..clusters)],
                spread * 0.6,
                &mut rng,
            )
        })
        .collect();
    println!(
        "edgestra bench vector — {n} × {dimension} vectors in {clusters} clusters, {queries} queries, cosine"
    );

    let mut ix = VectorIndex::new(dimension, Metric::Cosine, n);
    let started = Instant::now();
    for (chunk_no, chunk) in data.chunks(1000).enumerate() {
        let items = chunk
            .iter()
            .enumerate()
            .map(|(j, v)| {
                let i = chunk_no * 1000 + j;
                (
                    format!("v{i}"),
                    ix.prepare(v).expect("finite"),
                    json!({"bucket": buckets[i]}),
                )
            })
            .collect();
        ix.upsert(items);
    }
    let build = started.elapsed().as_secs_f64();
    println!("build: {build:.1} s ({:.0} upserts/s)", n as f64 / build);

    let prepared: Vec<Vec<f32>> = qs.iter().map(|q| ix.prepare(q).expect("finite")).collect();
    let started = Instant::now();
    let truth: Vec<Vec<String>> = prepared.iter().map(|q| ix.exact_ids(q, 10, None)).collect();
    let exact_qps = queries as f64 / started.elapsed().as_secs_f64();

    for ef in [32, 64, 96, 128] {
        ix.ef_search = ef;
        let started = Instant::now();
        let got: Vec<Vec<String>> = prepared
            .iter()
            .map(|q| ix.search(q, 10, None).into_iter().map(|h| h.id).collect())
            .collect();
        let qps1 = queries as f64 / started.elapsed().as_secs_f64();
        let started = Instant::now();
        std::thread::scope(|s| {
            let (a, b) = prepared.split_at(prepared.len() / 2);
            let ix = &ix;
            let h = s.spawn(move || {
                a.iter()
                    .map(|q| ix.search(q, 10, None).len())
                    .sum::<usize>()
            });
            b.iter()
                .map(|q| ix.search(q, 10, None).len())
                .sum::<usize>();
            h.join().expect("search thread");
        });
        let qps2 = queries as f64 / started.elapsed().as_secs_f64();
        println!(
            "ef {ef:>3}: recall@10 {:.3}, {qps1:.0} queries/s on 1 thread, {qps2:.0} on 2 ({:.1}x exact search, {exact_qps:.0}/s)",
            recall(&got, &truth),
            qps1 / exact_qps
        );
    }
    ix.ef_search = 96;
    let filter = Filter::parse(&json!({"bucket": 3})).expect("valid filter");
    let truth: Vec<Vec<String>> = prepared
        .iter()
        .map(|q| ix.exact_ids(q, 10, Some(&filter)))
        .collect();
    let started = Instant::now();
    let got: Vec<Vec<String>> = prepared
        .iter()
        .map(|q| {
            ix.search(q, 10, Some(&filter))
                .into_iter()
                .map(|h| h.id)
                .collect()
        })
        .collect();
    let fqps = queries as f64 / started.elapsed().as_secs_f64();
    println!(
        "filtered (10% selectivity): recall@10 {:.3}, {fqps:.0} queries/s on 1 thread",
        recall(&got, &truth)
    );
    println!("RSS: {:.0} MiB", crate::inference::bench::rss_mib());
}
