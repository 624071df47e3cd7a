//! The memory engine: threads and messages over [`super::store`], semantic recall over a
//! private vector index of message embeddings, and working memory. Agents call [`Memory::recall`]
//! before a call and [`Memory::remember`] after it.

use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::OnceCell;

use super::config::{MemoryConfig, Scope};
use super::messages::{self, CoreMessage, Defaults, MessageV2};
use super::store::{self, StoredMessage, Thread, WorkingMemoryKey};
use crate::inference::{Embedder, InferenceError};
use crate::storage::collection::{Order, Page, Window};
use crate::storage::{StorageError, Store};
use crate::vector::VectorError;
use crate::vector::index::Metric;
use crate::vector::store::VectorStore;

/// The vector index holding message embeddings (in a store of its own, not listed by the API).
pub const MESSAGE_INDEX: &str = "memory_messages";
const VECTOR_STORE: &str = "edgestra-memory";

#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    #[error("Thread not found")]
    ThreadNotFound,
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Forbidden(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Inference(#[from] InferenceError),
    #[error(transparent)]
    Vector(#[from] VectorError),
    #[error("{0}")]
    Failed(String),
}

type Result<T> = std::result::Result<T, MemoryError>;

pub fn now() -> (String, u64) {
    let ts = jiff::Timestamp::now();
    let ms = ts.as_millisecond().max(0) as u64;
    (iso(ms), ms)
}

pub fn iso(ms: u64) -> String {
    jiff::Timestamp::from_millisecond(ms as i64)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_default()
}

pub fn parse_iso_ms(s: &str) -> Option<u64> {
    s.parse::<jiff::Timestamp>()
        .ok()
        .map(|t| t.as_millisecond().max(0) as u64)
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::result::Result<T, StorageError> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| MemoryError::Failed(format!("the storage task failed: {e}")))?
        .map_err(MemoryError::from)
}

/// The text of a V2 message used for search and embeddings.
pub fn message_text(m: &MessageV2) -> String {
    if let Some(c) = m.content.content.as_deref().filter(|c| !c.is_empty()) {
        return c.to_string();
    }
    m.content
        .parts
        .iter()
        .filter(|p| p["type"] == "text")
        .filter_map(|p| p["text"].as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

/// A message's creation time as Mastra writes dates.
pub fn created_iso(m: &MessageV2) -> String {
    iso(m.created_at.as_millisecond().max(0) as u64)
}

fn decode(m: &StoredMessage) -> Option<MessageV2> {
    serde_json::from_value(m.message.clone()).ok()
}

/// What memory adds to an agent call.
#[derive(Debug, Clone, Default)]
pub struct Recalled {
    /// Earlier messages (semantic matches first, then the latest ones), oldest first in each.
    pub history: Vec<CoreMessage>,
    /// Text for the system context (working memory and its instructions).
    pub system: Option<String>,
}

pub struct Memory {
    store: Store,
    embedder: Option<Arc<dyn Embedder>>,
    vectors: Arc<VectorStore>,
    index_ready: OnceCell<()>,
    /// Creation time of the last thread made here: threads made within one millisecond still
    /// get distinct, ordered times (lists are ordered by creation).
    last_created_ms: std::sync::atomic::AtomicU64,
    /// Whether saved messages are embedded (some agent recalls semantically).
    pub embeds: bool,
}

impl Memory {
    pub fn new(store: Store, embedder: Option<Arc<dyn Embedder>>, embeds: bool) -> Memory {
        Memory {
            vectors: Arc::new(VectorStore::new(VECTOR_STORE, store.clone())),
            store,
            embedder,
            index_ready: OnceCell::new(),
            last_created_ms: std::sync::atomic::AtomicU64::new(0),
            embeds,
        }
    }

    async fn index(&self) -> Result<()> {
        let Some(embedder) = &self.embedder else {
            return Err(MemoryError::Failed(
                "semantic recall needs an embedding model".into(),
            ));
        };
        let dim = embedder.dimensions();
        self.index_ready
            .get_or_try_init(|| async {
                let v = self.vectors.clone();
                tokio::task::spawn_blocking(move || {
                    v.create_index(MESSAGE_INDEX, dim, Metric::Cosine)
                })
                .await
                .map_err(|e| MemoryError::Failed(e.to_string()))??;
                Ok::<_, MemoryError>(())
            })
            .await?;
        Ok(())
    }

    // ---- threads -------------------------------------------------------------------------

    pub async fn create_thread(
        &self,
        resource_id: &str,
        thread_id: Option<String>,
        title: Option<String>,
        metadata: Option<Value>,
    ) -> Result<Thread> {
        let now_ms = {
            use std::sync::atomic::Ordering;
            let now = now().1;
            let prev = self.last_created_ms.fetch_max(now, Ordering::SeqCst);
            if prev >= now {
                self.last_created_ms.fetch_add(1, Ordering::SeqCst) + 1
            } else {
                now
            }
        };
        let now_iso = iso(now_ms);
        let thread = Thread {
            id: thread_id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
            resource_id: resource_id.to_string(),
            title: title.unwrap_or_else(|| format!("New Thread {now_iso}")),
            metadata: metadata.unwrap_or_else(|| json!({})),
            created_at: now_iso.clone(),
            updated_at: now_iso,
            created_ms: now_ms,
            updated_ms: now_ms,
        };
        let store = self.store.clone();
        let t = thread.clone();
        blocking(move || store::put_thread(&store, &t)).await?;
        Ok(thread)
    }

    pub async fn thread(&self, id: &str) -> Result<Option<Thread>> {
        let (store, id) = (self.store.clone(), id.to_string());
        blocking(move || store::get_thread(&store, &id)).await
    }

    /// Applies the given changes; `None` fields keep their value.
    pub async fn update_thread(
        &self,
        id: &str,
        title: Option<String>,
        metadata: Option<Value>,
        resource_id: Option<String>,
    ) -> Result<Thread> {
        let (store, id) = (self.store.clone(), id.to_string());
        let (now_iso, now_ms) = now();
        blocking(move || {
            store::update_thread(&store, &id, |t| {
                if let Some(title) = title {
                    t.title = title;
                }
                if let Some(m) = metadata {
                    t.metadata = m;
                }
                if let Some(r) = resource_id {
                    t.resource_id = r;
                }
                t.updated_at = now_iso;
                t.updated_ms = now_ms;
            })
        })
        .await?
        .ok_or(MemoryError::ThreadNotFound)
    }

    /// Deletes a thread with its messages, their vectors and its working memory.
    pub async fn delete_thread(&self, id: &str) -> Result<()> {
        let (store, tid) = (self.store.clone(), id.to_string());
        let ids = blocking(move || store::delete_thread(&store, &tid))
            .await?
            .ok_or(MemoryError::ThreadNotFound)?;
        self.forget_vectors(ids).await
    }

    async fn forget_vectors(&self, ids: Vec<String>) -> Result<()> {
        if ids.is_empty() || self.embedder.is_none() {
            return Ok(());
        }
        let v = self.vectors.clone();
        match tokio::task::spawn_blocking(move || v.delete_vectors(MESSAGE_INDEX, &ids))
            .await
            .map_err(|e| MemoryError::Failed(e.to_string()))?
        {
            Ok(_) | Err(VectorError::IndexNotFound(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// A resource's threads, ordered by `createdAt` or `updatedAt`.
    pub async fn threads(
        &self,
        resource_id: &str,
        by_updated: bool,
        descending: bool,
    ) -> Result<Vec<Thread>> {
        let (store, r) = (self.store.clone(), resource_id.to_string());
        let mut threads = blocking(move || store::threads_of(&store, &r)).await?;
        threads.sort_by_key(|t| {
            if by_updated {
                t.updated_ms
            } else {
                t.created_ms
            }
        });
        if descending {
            threads.reverse();
        }
        Ok(threads)
    }

    /// A page of a resource's threads (0-based `page` of `per_page`) and how many there are.
    /// In creation order only the page is read; in update order (which no index keeps) every
    /// thread of the resource is read and sorted.
    pub async fn threads_page(
        &self,
        resource_id: &str,
        by_updated: bool,
        descending: bool,
        page: usize,
        per_page: usize,
    ) -> Result<Page<Thread>> {
        let skip = page.saturating_mul(per_page);
        if by_updated {
            let all = self.threads(resource_id, true, descending).await?;
            return Ok(Page {
                total: all.len(),
                items: all.into_iter().skip(skip).take(per_page).collect(),
            });
        }
        let order = if descending {
            Order::Newest
        } else {
            Order::Oldest
        };
        let (store, r) = (self.store.clone(), resource_id.to_string());
        let window = Window::new(order, skip, per_page);
        blocking(move || store::threads_page(&store, &r, window)).await
    }

    // ---- messages ------------------------------------------------------------------------

    /// Saves messages (V2, with thread and resource ids set); embeds their text when semantic
    /// recall is in use. Creation times that collide are spread by a millisecond so that the
    /// stored order is the given order.
    pub async fn save(&self, messages: Vec<MessageV2>) -> Result<Vec<MessageV2>> {
        if messages.is_empty() {
            return Ok(messages);
        }
        let mut stored = Vec::with_capacity(messages.len());
        let mut last_ms = 0u64;
        let mut out = Vec::with_capacity(messages.len());
        for mut m in messages {
            let (Some(thread_id), Some(resource_id)) = (m.thread_id.clone(), m.resource_id.clone())
            else {
                return Err(MemoryError::Invalid(
                    "every message needs a threadId and a resourceId".into(),
                ));
            };
            let mut ms = m.created_at.as_millisecond().max(0) as u64;
            if ms <= last_ms {
                ms = last_ms + 1;
                m.created_at = jiff::Timestamp::from_millisecond(ms as i64).unwrap_or(m.created_at);
            }
            last_ms = ms;
            stored.push(StoredMessage {
                id: m.id.clone(),
                thread_id,
                resource_id,
                created_ms: ms,
                message: serde_json::to_value(&m)
                    .map_err(|e| MemoryError::Failed(e.to_string()))?,
            });
            out.push(m);
        }
        let store = self.store.clone();
        let now = now();
        let to_embed: Vec<StoredMessage> = stored.clone();
        blocking(move || store::save_messages(&store, &stored, (&now.0, now.1))).await?;
        if self.embeds {
            self.embed(&to_embed).await?;
        }
        Ok(out)
    }

    async fn embed(&self, messages: &[StoredMessage]) -> Result<()> {
        let items: Vec<(&StoredMessage, String)> = messages
            .iter()
            .filter_map(|m| decode(m).map(|v| (m, message_text(&v))))
            .filter(|(_, t)| !t.trim().is_empty())
            .collect();
        if items.is_empty() {
            return Ok(());
        }
        self.index().await?;
        let Some(embedder) = &self.embedder else {
            return Ok(());
        };
        let vectors = embedder
            .embed(items.iter().map(|(_, t)| t.clone()).collect())
            .await?;
        let ids: Vec<String> = items.iter().map(|(m, _)| m.id.clone()).collect();
        let metadata: Vec<Value> = items
            .iter()
            .map(|(m, _)| json!({"thread_id": m.thread_id, "resource_id": m.resource_id, "created_ms": m.created_ms}))
            .collect();
        let vectors: Vec<Vec<f64>> = vectors
            .into_iter()
            .map(|v| v.into_iter().map(f64::from).collect())
            .collect();
        let v = self.vectors.clone();
        tokio::task::spawn_blocking(move || v.upsert(MESSAGE_INDEX, vectors, metadata, Some(ids)))
            .await
            .map_err(|e| MemoryError::Failed(e.to_string()))??;
        Ok(())
    }

    /// A thread's messages, oldest first.
    pub async fn thread_messages(&self, thread_id: &str) -> Result<Vec<MessageV2>> {
        let (store, t) = (self.store.clone(), thread_id.to_string());
        let stored = blocking(move || store::messages_of_thread(&store, &t)).await?;
        Ok(stored.iter().filter_map(decode).collect())
    }

    /// A resource's messages across threads, oldest first.
    pub async fn resource_messages(&self, resource_id: &str) -> Result<Vec<MessageV2>> {
        let (store, r) = (self.store.clone(), resource_id.to_string());
        let stored = blocking(move || store::messages_of_resource(&store, &r)).await?;
        Ok(stored.iter().filter_map(decode).collect())
    }

    /// Deletes messages by id; returns how many existed.
    pub async fn delete_messages(&self, ids: Vec<String>) -> Result<usize> {
        let store = self.store.clone();
        let ids2 = ids.clone();
        let gone = blocking(move || store::delete_messages(&store, &ids2)).await?;
        self.forget_vectors(gone.iter().map(|m| m.id.clone()).collect())
            .await?;
        Ok(gone.len())
    }

    /// The `top_k` messages most similar to `query` in a thread or a resource, best first.
    pub async fn similar(
        &self,
        query: &str,
        resource_id: &str,
        thread_id: Option<&str>,
        top_k: usize,
    ) -> Result<Vec<(String, f32)>> {
        let Some(embedder) = &self.embedder else {
            return Ok(Vec::new());
        };
        self.index().await?;
        let q = embedder.embed(vec![query.to_string()]).await?;
        let q: Vec<f64> = q
            .into_iter()
            .next()
            .unwrap_or_default()
            .into_iter()
            .map(f64::from)
            .collect();
        let filter = match thread_id {
            Some(t) => json!({"thread_id": t}),
            None => json!({"resource_id": resource_id}),
        };
        let v = self.vectors.clone();
        let k = top_k.max(1);
        let hits = tokio::task::spawn_blocking(move || {
            v.query(MESSAGE_INDEX, &q, k, Some(&filter), false)
        })
        .await
        .map_err(|e| MemoryError::Failed(e.to_string()))??;
        Ok(hits.into_iter().map(|h| (h.id, h.score)).collect())
    }

    // ---- working memory ------------------------------------------------------------------

    pub async fn working_memory(
        &self,
        cfg: &MemoryConfig,
        thread_id: &str,
        resource_id: Option<&str>,
    ) -> Result<Option<String>> {
        let store = self.store.clone();
        let key = match (cfg.working_memory.scope, resource_id) {
            (Scope::Resource, Some(r)) => format!("r{r}"),
            _ => format!("t{thread_id}"),
        };
        blocking(move || {
            let k = match key.split_at(1) {
                ("r", r) => WorkingMemoryKey::Resource(r),
                (_, t) => WorkingMemoryKey::Thread(t),
            };
            store::get_working_memory(&store, k)
        })
        .await
    }

    pub async fn set_working_memory(
        &self,
        cfg: &MemoryConfig,
        thread_id: &str,
        resource_id: Option<&str>,
        text: &str,
    ) -> Result<()> {
        if let Some(schema) = &cfg.working_memory.schema {
            let value: Value = serde_json::from_str(text).map_err(|e| {
                MemoryError::Invalid(format!("working memory must be JSON for this agent: {e}"))
            })?;
            let v = jsonschema::validator_for(schema)
                .map_err(|e| MemoryError::Invalid(e.to_string()))?;
            if let Some(e) = v.iter_errors(&value).next() {
                return Err(MemoryError::Invalid(format!(
                    "working memory does not follow its schema: {e}"
                )));
            }
        }
        let store = self.store.clone();
        let (scope_resource, r, t) = (
            cfg.working_memory.scope == Scope::Resource && resource_id.is_some(),
            resource_id.unwrap_or_default().to_string(),
            thread_id.to_string(),
        );
        let text = text.to_string();
        let ms = now().1;
        blocking(move || {
            let key = if scope_resource {
                WorkingMemoryKey::Resource(&r)
            } else {
                WorkingMemoryKey::Thread(&t)
            };
            store::set_working_memory(&store, key, &text, ms)
        })
        .await
    }

    // ---- agent calls ---------------------------------------------------------------------

    /// What an agent call on `thread_id` should see: the latest `last_messages`, semantically
    /// similar earlier messages (with their neighbours), and working memory.
    pub async fn recall(
        &self,
        cfg: &MemoryConfig,
        thread_id: &str,
        resource_id: &str,
        query: &str,
    ) -> Result<Recalled> {
        let (store, t, n) = (self.store.clone(), thread_id.to_string(), cfg.last_messages);
        let latest: Vec<MessageV2> = if n == 0 {
            Vec::new()
        } else {
            blocking(move || store::latest_messages_of_thread(&store, &t, n))
                .await?
                .iter()
                .filter_map(decode)
                .collect()
        };
        let mut recalled: Vec<MessageV2> = Vec::new();
        if let Some(sr) = &cfg.semantic_recall
            && !query.trim().is_empty()
        {
            let scope_thread = (sr.scope == Scope::Thread).then_some(thread_id);
            let hits = self
                .similar(query, resource_id, scope_thread, sr.top_k)
                .await?;
            let latest_ids: Vec<String> = latest.iter().map(|m| m.id.clone()).collect();
            let (store, range) = (self.store.clone(), (sr.before, sr.after));
            let hit_ids: Vec<String> = hits.into_iter().map(|(id, _)| id).collect();
            // Each hit with its neighbours in its own thread, read by id (not the whole pool).
            let found = blocking(move || {
                let hits = store::messages_by_id(&store, &hit_ids)?;
                let mut order: std::collections::HashMap<String, Vec<String>> = Default::default();
                let mut wanted: Vec<String> = Vec::new();
                for h in &hits {
                    if !order.contains_key(&h.thread_id) {
                        let ids = store::message_ids_of_thread(&store, &h.thread_id)?;
                        order.insert(h.thread_id.clone(), ids);
                    }
                    let ids = &order[&h.thread_id];
                    if let Some(i) = ids.iter().position(|id| id == &h.id) {
                        let hi = (i + range.1).min(ids.len().saturating_sub(1));
                        for id in &ids[i.saturating_sub(range.0)..=hi] {
                            if !wanted.contains(id) && !latest_ids.contains(id) {
                                wanted.push(id.clone());
                            }
                        }
                    }
                }
                store::messages_by_id(&store, &wanted)
            })
            .await?;
            recalled = found.iter().filter_map(decode).collect();
            recalled.sort_by_key(|m| m.created_at);
        }
        let mut history = messages::v2_to_core(&recalled);
        history.extend(messages::v2_to_core(&latest));
        let system = if cfg.working_memory.enabled {
            let current = self
                .working_memory(cfg, thread_id, Some(resource_id))
                .await?;
            Some(working_memory_instructions(cfg, current.as_deref()))
        } else {
            None
        };
        Ok(Recalled { history, system })
    }

    /// Stores a call's new messages on its thread, creating the thread when it is new.
    pub async fn remember(
        &self,
        thread_id: &str,
        resource_id: &str,
        messages: &[CoreMessage],
    ) -> Result<Thread> {
        let thread = match self.thread(thread_id).await? {
            Some(t) => t,
            None => {
                self.create_thread(resource_id, Some(thread_id.to_string()), None, None)
                    .await?
            }
        };
        let new_id = || uuid::Uuid::new_v4().to_string();
        let defaults = Defaults {
            thread_id: Some(thread_id),
            resource_id: Some(resource_id),
            new_id: &new_id,
            now: jiff::Timestamp::now(),
        };
        let v2 = messages::core_to_v2(messages, &defaults);
        self.save(v2).await?;
        Ok(thread)
    }
}

/// The system-context text that shows working memory and how to update it.
pub fn working_memory_instructions(cfg: &MemoryConfig, current: Option<&str>) -> String {
    let (format, body) = match &cfg.working_memory.schema {
        Some(schema) => (
            "JSON",
            current
                .map(String::from)
                .unwrap_or_else(|| format!("(empty; it follows this JSON Schema: {schema})")),
        ),
        None => (
            "Markdown",
            current
                .map(String::from)
                .unwrap_or_else(|| cfg.working_memory.template.clone()),
        ),
    };
    format!(
        "WORKING MEMORY ({format}) — what you know about the user; keep it up to date with the updateWorkingMemory tool when you learn something new:\n{body}"
    )
}
