//! Turning files into searchable chunks: reading text and markdown files, cutting them into
//! overlapping chunks at whitespace, embedding the chunks, and upserting them with their source.

use std::path::{Path, PathBuf};

use serde_json::json;

use super::VectorError;
use super::index::Metric;
use super::store::VectorStore;
use crate::inference::Embedder;

/// Files ingested when a folder is given.
pub const EXTENSIONS: &[&str] = &["txt", "md", "markdown", "rst", "text"];

/// Every ingestible file under `paths` (folders recursively), sorted.
pub fn collect_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, VectorError> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut stack = vec![p.clone()];
            while let Some(dir) = stack.pop() {
                let entries = std::fs::read_dir(&dir).map_err(|e| {
                    VectorError::Invalid(format!("cannot read {}: {e}", dir.display()))
                })?;
                for e in entries.flatten() {
                    let path = e.path();
                    if path.is_dir() {
                        stack.push(path);
                    } else if path
                        .extension()
                        .and_then(|x| x.to_str())
                        .is_some_and(|x| EXTENSIONS.contains(&x))
                    {
                        out.push(path);
                    }
                }
            }
        } else if p.is_file() {
            out.push(p.clone());
        } else {
            return Err(VectorError::Invalid(format!(
                "{} does not exist",
                p.display()
            )));
        }
    }
    out.sort();
    Ok(out)
}

/// Cuts `text` into chunks of at most `size` characters, each starting `size - overlap`
/// characters after the previous one, moved back to the nearest whitespace when there is one.
pub fn chunk_text(text: &str, size: usize, overlap: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let size = size.max(1);
    let overlap = overlap.min(size - 1);
    let mut chunks = Vec::new();
    let mut start = 0;
    while start < chars.len() {
        let mut end = (start + size).min(chars.len());
        if end < chars.len() {
            // Prefer to end at whitespace in the last fifth of the chunk.
            let floor = start + size * 4 / 5;
            if let Some(ws) = (floor..end).rev().find(|&i| chars[i].is_whitespace()) {
                end = ws;
            }
        }
        let chunk: String = chars[start..end].iter().collect();
        if !chunk.trim().is_empty() {
            chunks.push(chunk.trim().to_string());
        }
        if end >= chars.len() {
            break;
        }
        start = (end.saturating_sub(overlap)).max(start + 1);
    }
    chunks
}

/// One chunk ready to embed.
pub struct Chunk {
    pub id: String,
    pub source: String,
    pub number: usize,
    pub text: String,
}

pub fn chunks_of(path: &Path, size: usize, overlap: usize) -> Result<Vec<Chunk>, VectorError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        VectorError::Invalid(format!("cannot read {} as text: {e}", path.display()))
    })?;
    let source = path.display().to_string();
    Ok(chunk_text(&text, size, overlap)
        .into_iter()
        .enumerate()
        .map(|(i, text)| Chunk {
            id: format!("{source}#{i}"),
            source: source.clone(),
            number: i,
            text,
        })
        .collect())
}

/// Embeds and upserts a batch of chunks (creating the index on first use). Ids are
/// `path#chunk`, so ingesting a file again replaces its chunks.
pub async fn upsert_chunks(
    store: std::sync::Arc<VectorStore>,
    index: &str,
    embedder: &dyn Embedder,
    chunks: Vec<Chunk>,
) -> Result<usize, VectorError> {
    if chunks.is_empty() {
        return Ok(0);
    }
    let vectors = embedder
        .embed(chunks.iter().map(|c| c.text.clone()).collect())
        .await
        .map_err(|e| VectorError::Invalid(format!("embedding failed: {e}")))?;
    let dimension = vectors[0].len();
    let index = index.to_string();
    let n = chunks.len();
    tokio::task::spawn_blocking(move || {
        store.create_index(&index, dimension, Metric::Cosine)?;
        let ids = chunks.iter().map(|c| c.id.clone()).collect();
        let metadata = chunks
            .iter()
            .map(|c| json!({"source": c.source, "chunk": c.number, "text": c.text}))
            .collect();
        let vectors = vectors
            .into_iter()
            .map(|v| v.into_iter().map(f64::from).collect())
            .collect();
        store.upsert(&index, vectors, metadata, Some(ids))
    })
    .await
    .map_err(|e| VectorError::Storage(e.to_string()))??;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_overlap_and_break_at_whitespace() {
        let text = "one two three four five six seven eight nine ten";
        let chunks = chunk_text(text, 20, 5);
        assert!(chunks.len() >= 3, "{chunks:?}");
        assert!(chunks.iter().all(|c| c.chars().count() <= 20));
        assert!(
            chunks
                .iter()
                .all(|c| !c.starts_with(' ') && !c.ends_with(' '))
        );
        assert_eq!(chunks[0], "one two three four");
        // Overlap: the start of each chunk repeats the end of the one before.
        assert!(
            chunks[1].starts_with("four") || chunks[1].starts_with("our"),
            "{chunks:?}"
        );
        assert_eq!(chunk_text("short", 100, 10), ["short"]);
        assert!(chunk_text("   ", 10, 2).is_empty());
        let unicode = chunk_text(&"é".repeat(50), 20, 0);
        assert_eq!(unicode.len(), 3);
    }
}
