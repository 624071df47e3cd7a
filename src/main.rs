//! The `edgestra` command line: `serve` and `validate`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use edgestra::config::{self, ConfigError, Project};
use edgestra::server::{self, ServeOptions};
use edgestra::telemetry::{self, LogFormat};

// musl's malloc is slow with many threads; the static (musl) release files use mimalloc.
#[cfg(target_env = "musl")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// edgestra — run Mastra-compatible agents, tools and workflows locally, from one binary.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the API server and the playground.
    Serve(ServeArgs),
    /// Check a project file and print every problem with its line and column.
    Validate {
        /// The project file (YAML or JSON).
        file: PathBuf,
    },
    /// Chunk text and markdown files, embed the chunks and store them in a vector index.
    Ingest {
        /// The vector store (a name under `vector_stores:`, or `default`).
        #[arg(long, default_value = "default")]
        store: String,
        /// The index; created when missing.
        #[arg(long)]
        index: String,
        /// Files or folders (folders are searched for .txt, .md, .markdown, .rst).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Characters per chunk.
        #[arg(long, default_value_t = 800)]
        chunk_size: usize,
        /// Characters shared by consecutive chunks.
        #[arg(long, default_value_t = 100)]
        overlap: usize,
        /// Project file (for the store's embedder); as for `serve`.
        #[arg(long, short, env = "EDGESTRA_CONFIG")]
        config: Option<PathBuf>,
        /// The data directory of the server whose store to fill (the server must not be running).
        #[arg(long, env = "EDGESTRA_DATA_DIR", default_value = "./.edgestra")]
        data_dir: PathBuf,
    },
    /// Ask a running server whether it is ready (`GET /ready`; with `--live`, only whether it
    /// serves: `GET /health`). Exits 0 when it is, 1 when not or unreachable — for supervisors
    /// and container health checks.
    Health {
        /// The server's base URL.
        #[arg(long, env = "EDGESTRA_URL", default_value = "http://127.0.0.1:4111")]
        url: String,
        /// Liveness only.
        #[arg(long)]
        live: bool,
        /// Seconds to wait for the answer.
        #[arg(long, default_value_t = 5.0)]
        timeout: f64,
    },
    /// List the models: those embedded in this binary and those a project file names.
    Models {
        /// A project file whose `models:` to list as well.
        #[arg(long, short, env = "EDGESTRA_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Measure this machine: `models` (prefill, decode, embeddings, memory), `vector`
    /// (HNSW build, recall, queries per second), `memory` (thread listing and semantic
    /// recall latency) or `workflow` (durable step transitions per second).
    Bench {
        /// What to measure.
        #[arg(value_enum, default_value = "models")]
        target: BenchTarget,
        /// Vectors for the vector benchmark.
        #[arg(long, default_value_t = 100_000)]
        vectors: usize,
        /// Runs for the workflow benchmark.
        #[arg(long, default_value_t = 1_000)]
        runs: usize,
        /// Messages for the memory benchmark (all in one resource).
        #[arg(long, default_value_t = 10_000)]
        messages: usize,
        /// Prompt length for the prefill measurement, in tokens.
        #[arg(long, default_value_t = 400)]
        prompt_tokens: usize,
        /// Tokens to decode for the decode measurement.
        #[arg(long, default_value_t = 128)]
        decode_tokens: usize,
        /// A GGUF chat model to measure instead of the embedded one.
        #[arg(long)]
        model: Option<PathBuf>,
        /// Runs of each model measurement; the median is printed.
        #[arg(long, default_value_t = 3)]
        repeat: usize,
        /// Inference threads (default: the machine's cores).
        #[arg(long, env = "EDGESTRA_THREADS")]
        threads: Option<usize>,
        /// `serve`: another edgestra binary to measure the same way (e.g. the static release
        /// file), with the ratio of its figures to this one's.
        #[arg(long)]
        against: Option<PathBuf>,
        /// `serve`: API requests per run.
        #[arg(long, default_value_t = 4_000)]
        requests: usize,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum BenchTarget {
    Models,
    Vector,
    Memory,
    Workflow,
    /// The whole server under a mixed load (optionally against another build).
    Serve,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Project file. Without it, ./edgestra.yaml if present, else the built-in default project.
    #[arg(long, short, env = "EDGESTRA_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on (use 0.0.0.0 to accept other machines).
    #[arg(long, env = "EDGESTRA_HOST")]
    host: Option<String>,
    /// Port to listen on (0 picks a free one).
    #[arg(long, short, env = "EDGESTRA_PORT")]
    port: Option<u16>,
    /// Where edgestra keeps its data file.
    #[arg(long, env = "EDGESTRA_DATA_DIR", default_value = "./.edgestra")]
    data_dir: PathBuf,
    /// Require `Authorization: Bearer <key>` on /api and /a2a (overrides server.api_key).
    #[arg(long, env = "EDGESTRA_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Development mode: enables dev-only routes such as editing agent instructions.
    #[arg(long, env = "EDGESTRA_DEV")]
    dev: bool,
    /// Serve Prometheus metrics at `GET /metrics` (requests, models, workflow runs, storage).
    #[arg(long, env = "EDGESTRA_METRICS")]
    metrics: bool,
    /// Format of the logs printed on stdout.
    #[arg(
        long,
        env = "EDGESTRA_LOG_FORMAT",
        value_enum,
        default_value = "pretty"
    )]
    log_format: LogFormat,
    /// Inference threads (default: the machine's cores).
    #[arg(long, env = "EDGESTRA_THREADS")]
    threads: Option<usize>,
}

fn load_project(path: Option<&Path>) -> Result<(Project, String), ConfigError> {
    match path {
        Some(p) => Ok((config::load_file(p)?, p.display().to_string())),
        None if Path::new("edgestra.yaml").exists() => Ok((
            config::load_file(Path::new("edgestra.yaml"))?,
            "edgestra.yaml".into(),
        )),
        None => Ok((
            config::load_str(config::DEFAULT_PROJECT, "the default project")?,
            "the default project".into(),
        )),
    }
}

/// Sizes the inference pool (before anything starts it).
fn set_threads(threads: Option<usize>) -> Result<(), edgestra::inference::InferenceError> {
    match threads {
        Some(0) => Err(edgestra::inference::InferenceError::InvalidRequest(
            "--threads must be at least 1".into(),
        )),
        Some(n) => {
            edgestra::inference::engine::pool::configure(n);
            Ok(())
        }
        None => Ok(()),
    }
}

async fn serve(args: ServeArgs) -> ExitCode {
    telemetry::install(Some(args.log_format));
    if let Err(e) = set_threads(args.threads) {
        eprintln!("edgestra: {e}");
        return ExitCode::FAILURE;
    }
    let (project, origin) = match load_project(args.config.as_deref()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let opts = ServeOptions {
        host: args
            .host
            .or_else(|| project.server.host.clone())
            .unwrap_or_else(|| "127.0.0.1".into()),
        port: args.port.or(project.server.port).unwrap_or(4111),
        data_dir: args.data_dir,
        api_key: args.api_key.or_else(|| project.server.api_key.clone()),
        dev: args.dev,
        metrics: args.metrics,
    };
    let running = match server::start(project, opts.clone()).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("edgestra: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Listening for the stop signal before saying so: a SIGTERM sent as soon as the line is read
    // must stop the server gracefully, not kill it.
    let stop = shutdown_signal();
    let base = format!("http://{}", running.addr);
    println!("edgestra is serving {origin}: API {base}/api · playground {base}/");
    tracing::info!(addr = %running.addr, data_dir = %opts.data_dir.display(), "edgestra started");
    stop.await;
    tracing::info!("shutting down");
    running.stop().await;
    ExitCode::SUCCESS
}

/// Starts listening for SIGTERM at once (Ctrl-C too, on the first poll); the future ends at the
/// first of them.
fn shutdown_signal() -> impl Future<Output = ()> {
    #[cfg(unix)]
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
    async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        if let Ok(mut term) = term {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
            return;
        }
        let _ = ctrl_c.await;
    }
}

fn validate(file: &Path) -> ExitCode {
    match config::load_file(file) {
        Ok(p) => {
            println!(
                "{} is valid: {} model(s), {} tool(s), {} agent(s), {} workflow(s)",
                file.display(),
                p.models.len(),
                p.tools.len(),
                p.agents.len(),
                p.workflows.len()
            );
            ExitCode::SUCCESS
        }
        Err(ConfigError::Invalid { problems, .. }) => {
            for p in &problems {
                eprintln!("{}:{p}", file.display());
            }
            eprintln!("{} problem(s) found", problems.len());
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

async fn ingest(
    store_name: &str,
    index: &str,
    paths: &[PathBuf],
    chunk_size: usize,
    overlap: usize,
    config: Option<&Path>,
    data_dir: &Path,
) -> ExitCode {
    use edgestra::vector::ingest;
    let fail = |e: &dyn std::fmt::Display| {
        eprintln!("edgestra ingest: {e}");
        ExitCode::FAILURE
    };
    let project = match load_project(config) {
        Ok((p, _)) => p,
        Err(e) => return fail(&e),
    };
    let files = match ingest::collect_files(paths) {
        Ok(f) if f.is_empty() => return fail(&"no text or markdown files found"),
        Ok(f) => f,
        Err(e) => return fail(&e),
    };
    let embedder_name = project
        .vector_stores
        .get(store_name)
        .and_then(|s| s.embedder.clone())
        .unwrap_or_else(|| edgestra::inference::embedded::EMBEDDING_MODEL.to_string());
    let models = match edgestra::inference::Models::from_project(&project) {
        Ok(m) => m,
        Err(e) => return fail(&e),
    };
    let Some(embedder) = models.embedder(&embedder_name) else {
        return fail(&format!(
            "model `{embedder_name}` is not an embedding model"
        ));
    };
    let db = match edgestra::storage::Store::open(data_dir) {
        Ok(db) => db,
        Err(e) => return fail(&e),
    };
    let stores =
        edgestra::vector::store::VectorStores::new(project.vector_stores.keys().cloned(), &db);
    let store = match stores.get(store_name) {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    let mut chunks = Vec::new();
    for f in &files {
        match ingest::chunks_of(f, chunk_size, overlap) {
            Ok(c) => chunks.extend(c),
            Err(e) => return fail(&e),
        }
    }
    let bar = indicatif::ProgressBar::new(chunks.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} chunks · {per_sec} · ETA {eta} {msg}",
        )
        .expect("valid template"),
    );
    let total = chunks.len();
    let mut rest = chunks;
    while !rest.is_empty() {
        let batch: Vec<_> = rest.drain(..rest.len().min(32)).collect();
        if let Some(first) = batch.first() {
            bar.set_message(first.source.clone());
        }
        let n = batch.len();
        if let Err(e) = ingest::upsert_chunks(store.clone(), index, embedder.as_ref(), batch).await
        {
            bar.abandon();
            return fail(&e);
        }
        bar.inc(n as u64);
    }
    bar.finish_with_message("done");
    println!(
        "ingested {total} chunks from {} file(s) into {store_name}/{index}",
        files.len()
    );
    ExitCode::SUCCESS
}

fn models(config: Option<&Path>) -> ExitCode {
    println!(
        "{:<24} {:<10} {:>9}  {:<12} source",
        "NAME", "KIND", "SIZE", "LICENCE"
    );
    for m in edgestra::inference::embedded::manifest() {
        let size: u64 = m.files.iter().map(|f| f.size).sum();
        println!(
            "{:<24} {:<10} {:>6.1} MB  {:<12} embedded ({}=={})",
            m.name,
            m.kind,
            size as f64 / 1e6,
            m.licence,
            m.package,
            m.version
        );
    }
    if let Some(path) = config {
        let project = match config::load_file(path) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
        };
        for (name, m) in &project.models {
            let source = match (&m.local, &m.path, &m.openai) {
                (Some(l), _, _) => format!("embedded model {l}"),
                (_, Some(p), _) => {
                    let size = std::fs::metadata(p)
                        .map(|md| format!("{:.1} MB", md.len() as f64 / 1e6))
                        .unwrap_or_else(|_| "missing".into());
                    format!("file {p} ({size})")
                }
                (_, _, Some(o)) => format!("{} at {}", o.model, o.base_url),
                _ => "?".into(),
            };
            println!(
                "{name:<24} {:<10} {:>9}  {:<12} {source}",
                "project", "", ""
            );
        }
    }
    ExitCode::SUCCESS
}

/// `edgestra health`: prints the probe's answer (or why there was none) and exits 0 only on 200.
async fn health(url: &str, live: bool, timeout: f64) -> ExitCode {
    let probe = format!(
        "{}/{}",
        url.trim_end_matches('/'),
        if live { "health" } else { "ready" }
    );
    let client = match edgestra::net::http_client() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("edgestra health: {e}");
            return ExitCode::FAILURE;
        }
    };
    let wait = std::time::Duration::from_secs_f64(timeout.clamp(0.1, 3600.0));
    match client.get(&probe).timeout(wait).send().await {
        Ok(answer) => {
            let status = answer.status();
            let body = answer.text().await.unwrap_or_default();
            println!("{probe}: {} {}", status.as_u16(), body.trim());
            if status.is_success() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("edgestra health: {probe}: no answer ({e})");
            ExitCode::FAILURE
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::Validate { file } => validate(&file),
        Command::Models { config } => models(config.as_deref()),
        Command::Health { url, live, timeout } => health(&url, live, timeout).await,
        Command::Ingest {
            store,
            index,
            paths,
            chunk_size,
            overlap,
            config,
            data_dir,
        } => {
            ingest(
                &store,
                &index,
                &paths,
                chunk_size,
                overlap,
                config.as_deref(),
                &data_dir,
            )
            .await
        }
        Command::Bench {
            target: BenchTarget::Serve,
            against,
            requests,
            repeat,
            ..
        } => {
            let opts = server::bench::Options {
                against,
                runs: repeat,
                requests,
            };
            match server::bench::run(opts).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("edgestra bench serve: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Bench {
            target: BenchTarget::Vector,
            vectors,
            ..
        } => {
            edgestra::vector::bench::run(vectors, 384, 1000, 1000);
            ExitCode::SUCCESS
        }
        Command::Bench {
            target: BenchTarget::Workflow,
            runs,
            ..
        } => match edgestra::workflow::bench::run(runs, 8).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("edgestra bench: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Bench {
            target: BenchTarget::Memory,
            messages,
            ..
        } => match edgestra::memory::bench::run(messages, 50).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("edgestra bench: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Bench {
            prompt_tokens,
            decode_tokens,
            model,
            repeat,
            threads,
            ..
        } => match set_threads(threads).and_then(|()| {
            edgestra::inference::bench::run(&edgestra::inference::bench::Options {
                model,
                prompt_tokens,
                decode_tokens,
                runs: repeat.max(1),
            })
        }) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("edgestra bench: {e}");
                ExitCode::FAILURE
            }
        },
    }
}
