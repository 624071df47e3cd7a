//! `edgestra bench serve`: the whole server under a mixed load, as a client sees it — API
//! requests over 8 connections (a tool run, a thread created, a message saved, a thread's
//! messages read), concurrent generations and batches of embeddings — for this binary and, with
//! `--against`, another build of it (the static release file against the glibc build, say).
//! Each run starts the binary's `serve` on a fresh data directory; runs alternate between the
//! two binaries, and the medians are printed with their ratio.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::inference::bench::{median, peak_rss_mib_of};

/// What to run.
pub struct Options {
    /// Another edgestra binary to measure the same way.
    pub against: Option<PathBuf>,
    /// Runs per binary.
    pub runs: usize,
    /// API requests per run.
    pub requests: usize,
}

/// What one run measured.
#[derive(Clone, Copy, Default)]
struct Figures {
    requests_per_s: f64,
    tokens_per_s: f64,
    sentences_per_s: f64,
    peak_rss_mib: f64,
}

const CONNECTIONS: usize = 8;
const GENERATIONS: usize = 4;
const SENTENCES: usize = 32;

/// A `serve` process of `binary` on a fresh data directory, and its base URL.
struct Served {
    child: Child,
    base: String,
    dir: PathBuf,
}

impl Served {
    async fn start(binary: &Path) -> Result<Served, String> {
        let dir =
            std::env::temp_dir().join(format!("edgestra-bench-serve-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        // From an empty folder, with no project settings from the environment: the embedded
        // default project, the same for both binaries.
        let mut child = Command::new(binary)
            .args(["serve", "--port", "0", "--data-dir", "data"])
            .current_dir(&dir)
            .env_remove("EDGESTRA_CONFIG")
            .env_remove("EDGESTRA_API_KEY")
            .env_remove("EDGESTRA_PORT")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let read = tokio::time::timeout(Duration::from_secs(60), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(rest) = line.split("API ").nth(1) {
                    let api = rest.split_whitespace().next().unwrap_or_default();
                    return Some(api.trim_end_matches("/api").to_string());
                }
            }
            None
        });
        let base = read
            .await
            .ok()
            .flatten()
            .ok_or_else(|| format!("{} did not say where it serves", binary.display()))?;
        Ok(Served { child, base, dir })
    }

    fn peak_rss_mib(&self) -> f64 {
        self.child.id().map(peak_rss_mib_of).unwrap_or(0.0)
    }

    async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            // SIGTERM: the graceful stop, as a supervisor would.
            unsafe { libc::kill(pid as i32, libc::SIGTERM) };
        }
        let _ = tokio::time::timeout(Duration::from_secs(15), self.child.wait()).await;
        let _ = self.child.kill().await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn post(client: &reqwest::Client, url: String, body: Value) -> Result<Value, String> {
    let r = client
        .post(&url)
        .json(&body)
        .send()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let status = r.status();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        return Err(format!("{url}: {status} {v}"));
    }
    Ok(v)
}

/// One client's share of the API requests: the four kinds in turn.
async fn api_client(
    client: reqwest::Client,
    base: String,
    who: usize,
    requests: usize,
) -> Result<(), String> {
    let thread = format!("bench-{who}");
    let resource = format!("bench-user-{who}");
    post(
        &client,
        format!("{base}/api/memory/threads?agentId=assistant"),
        json!({"threadId": thread, "resourceId": resource, "title": "bench"}),
    )
    .await?;
    for i in 0..requests {
        match i % 4 {
            0 => {
                post(
                    &client,
                    format!("{base}/api/tools/calculator/execute"),
                    json!({"data": {"expression": format!("({i} + 3) * sqrt(16)")}}),
                )
                .await?;
            }
            1 => {
                post(
                    &client,
                    format!("{base}/api/memory/threads?agentId=assistant"),
                    json!({"resourceId": resource, "title": format!("thread {i}")}),
                )
                .await?;
            }
            2 => {
                let message = json!({"id": format!("m-{who}-{i}"), "threadId": thread, "resourceId": resource,
                    "role": "user", "type": "text", "content": format!("note {i} of client {who}"),
                    "createdAt": "2026-01-01T00:00:00.000Z"});
                post(
                    &client,
                    format!("{base}/api/memory/save-messages?agentId=assistant"),
                    json!({"messages": [message]}),
                )
                .await?;
            }
            _ => {
                let url = format!(
                    "{base}/api/memory/threads/{thread}/messages?agentId=assistant&limit=20"
                );
                let r = client
                    .get(&url)
                    .send()
                    .await
                    .map_err(|e| format!("{url}: {e}"))?;
                if !r.status().is_success() {
                    return Err(format!("{url}: {}", r.status()));
                }
                r.bytes().await.map_err(|e| e.to_string())?;
            }
        }
    }
    Ok(())
}

async fn run_once(binary: &Path, requests: usize) -> Result<Figures, String> {
    let served = Served::start(binary).await?;
    let outcome = measure(&served.base, requests).await;
    let peak = served.peak_rss_mib();
    served.stop().await;
    let mut figures = outcome?;
    figures.peak_rss_mib = peak;
    Ok(figures)
}

async fn measure(base: &str, requests: usize) -> Result<Figures, String> {
    let client = crate::net::http_client().map_err(|e| e.to_string())?;
    let chat = |content: String, max_tokens: u32| {
        json!({"model": "chat", "messages": [{"role": "user", "content": content}],
            "max_tokens": max_tokens, "temperature": 0})
    };
    let sentences: Vec<String> = (0..SENTENCES)
        .map(|i| format!("Sentence number {i} describes a small edge device in a field."))
        .collect();
    // Both models loaded before anything is timed.
    post(
        &client,
        format!("{base}/v1/chat/completions"),
        chat("Hi".into(), 2),
    )
    .await?;
    post(
        &client,
        format!("{base}/v1/embeddings"),
        json!({"model": "embed", "input": "warm"}),
    )
    .await?;

    let started = Instant::now();
    let per_client = requests.div_ceil(CONNECTIONS);
    let clients: Vec<_> = (0..CONNECTIONS)
        .map(|who| {
            tokio::spawn(api_client(
                client.clone(),
                base.to_string(),
                who,
                per_client,
            ))
        })
        .collect();
    for c in clients {
        c.await.map_err(|e| e.to_string())??;
    }
    let requests_per_s = (per_client * CONNECTIONS) as f64 / started.elapsed().as_secs_f64();

    let topics = ["rivers", "bridges", "gardens", "lighthouses"];
    let started = Instant::now();
    let generations: Vec<_> = (0..GENERATIONS)
        .map(|i| {
            let body = chat(
                format!("Write a few sentences about {}.", topics[i % topics.len()]),
                48,
            );
            let (client, url) = (client.clone(), format!("{base}/v1/chat/completions"));
            tokio::spawn(async move { post(&client, url, body).await })
        })
        .collect();
    let mut tokens = 0u64;
    for g in generations {
        let v = g.await.map_err(|e| e.to_string())??;
        tokens += v["usage"]["completion_tokens"].as_u64().unwrap_or(0);
    }
    let tokens_per_s = tokens as f64 / started.elapsed().as_secs_f64();

    let started = Instant::now();
    for _ in 0..4 {
        post(
            &client,
            format!("{base}/v1/embeddings"),
            json!({"model": "embed", "input": sentences}),
        )
        .await?;
    }
    let sentences_per_s = (4 * SENTENCES) as f64 / started.elapsed().as_secs_f64();
    Ok(Figures {
        requests_per_s,
        tokens_per_s,
        sentences_per_s,
        peak_rss_mib: 0.0,
    })
}

impl Figures {
    /// The figures' names, in the order of [`Figures::values`].
    const NAMES: [&'static str; 4] = [
        "API requests/s",
        "generation tokens/s (4 streams)",
        "embeddings sentences/s",
        "peak RSS MiB",
    ];

    fn values(&self) -> [f64; 4] {
        [
            self.requests_per_s,
            self.tokens_per_s,
            self.sentences_per_s,
            self.peak_rss_mib,
        ]
    }
}

/// The median of each figure over `runs`, in the order of [`Figures::values`].
fn medians(runs: &[Figures]) -> [f64; 4] {
    std::array::from_fn(|i| median(runs.iter().map(|f| f.values()[i]).collect()))
}

/// Runs the benchmark and prints its table.
pub async fn run(opts: Options) -> Result<(), String> {
    let this = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut binaries = vec![this];
    if let Some(other) = &opts.against {
        // Each server starts in its own empty folder: the path must not be relative.
        let other = other
            .canonicalize()
            .map_err(|e| format!("{}: {e}", other.display()))?;
        binaries.push(other);
    }
    let runs = opts.runs.max(1);
    println!(
        "edgestra bench serve: {} API requests over {CONNECTIONS} connections, {GENERATIONS} concurrent generations of 48 tokens, {} embedding batches of {SENTENCES}; {runs} runs per binary, alternating",
        opts.requests, 4
    );
    let mut results: Vec<Vec<Figures>> = vec![Vec::new(); binaries.len()];
    for round in 0..runs {
        for (i, binary) in binaries.iter().enumerate() {
            let f = run_once(binary, opts.requests).await?;
            println!(
                "  run {} {}: {:.0} requests/s, {:.1} tokens/s, {:.0} sentences/s, peak RSS {:.0} MiB",
                round + 1,
                binary.display(),
                f.requests_per_s,
                f.tokens_per_s,
                f.sentences_per_s,
                f.peak_rss_mib
            );
            results[i].push(f);
        }
    }
    let m: Vec<[f64; 4]> = results.iter().map(|r| medians(r)).collect();
    println!();
    println!("| median | this build | against | against / this |");
    println!("|---|---|---|---|");
    for (i, name) in Figures::NAMES.iter().enumerate() {
        let this = m[0][i];
        match m.get(1) {
            Some(other) => println!(
                "| {name} | {this:.1} | {:.1} | {:.3} |",
                other[i],
                other[i] / this
            ),
            None => println!("| {name} | {this:.1} | — | — |"),
        }
    }
    if let Some(other) = binaries.get(1) {
        println!(
            "\nthis: {}\nagainst: {}",
            binaries[0].display(),
            other.display()
        );
    }
    Ok(())
}
