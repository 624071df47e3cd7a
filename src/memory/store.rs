//! Threads, messages and working memory in redb: threads indexed by resource, messages by
//! thread and by resource (ordered by their creation time), working memory keyed by thread or
//! resource. Every function here is blocking; callers run them off the executor.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::storage::collection::{
    self, MESSAGES, Order, Page, Record, THREADS, WORKING_MEMORY, Window, get, get_for_update,
    list_by, page_by, put, remove,
};
use crate::storage::{Result, Store};

/// A thread as stored and as sent (§3.12).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Thread {
    pub id: String,
    pub resource_id: String,
    pub title: String,
    pub metadata: Value,
    pub created_at: String,
    pub updated_at: String,
    /// Creation time in epoch milliseconds (the index order); not sent.
    #[serde(default, skip_serializing)]
    pub created_ms: u64,
    #[serde(default, skip_serializing)]
    pub updated_ms: u64,
}

/// The stored form of a thread (the wire form above plus its times).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ThreadRecord {
    #[serde(flatten)]
    thread: Thread,
    created_ms: u64,
    updated_ms: u64,
}

impl Record for ThreadRecord {
    const COLLECTION: &'static collection::Collection = &THREADS;
    fn id(&self) -> &str {
        &self.thread.id
    }
    fn index_keys(&self) -> Vec<(String, u64)> {
        vec![(self.thread.resource_id.clone(), self.created_ms)]
    }
}

impl ThreadRecord {
    fn new(thread: Thread) -> ThreadRecord {
        ThreadRecord {
            created_ms: thread.created_ms,
            updated_ms: thread.updated_ms,
            thread,
        }
    }
    fn into_thread(self) -> Thread {
        Thread {
            created_ms: self.created_ms,
            updated_ms: self.updated_ms,
            ..self.thread
        }
    }
}

/// A message as stored: the MastraMessageV2 JSON and the keys it is found by.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredMessage {
    pub id: String,
    pub thread_id: String,
    pub resource_id: String,
    pub created_ms: u64,
    /// The V2 message.
    pub message: Value,
}

impl Record for StoredMessage {
    const COLLECTION: &'static collection::Collection = &MESSAGES;
    fn id(&self) -> &str {
        &self.id
    }
    fn index_keys(&self) -> Vec<(String, u64)> {
        vec![
            (self.thread_id.clone(), self.created_ms),
            (self.resource_id.clone(), self.created_ms),
        ]
    }
}

/// Working memory text of a thread (`thread:<id>`) or resource (`resource:<id>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct WorkingMemory {
    key: String,
    text: String,
    updated_ms: u64,
}

impl Record for WorkingMemory {
    const COLLECTION: &'static collection::Collection = &WORKING_MEMORY;
    fn id(&self) -> &str {
        &self.key
    }
    fn index_keys(&self) -> Vec<(String, u64)> {
        Vec::new()
    }
}

/// Where a working memory lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkingMemoryKey<'a> {
    Thread(&'a str),
    Resource(&'a str),
}

impl WorkingMemoryKey<'_> {
    fn key(&self) -> String {
        match self {
            WorkingMemoryKey::Thread(id) => format!("thread:{id}"),
            WorkingMemoryKey::Resource(id) => format!("resource:{id}"),
        }
    }
}

pub fn get_thread(store: &Store, id: &str) -> Result<Option<Thread>> {
    store.read_blocking(|tx| Ok(get::<ThreadRecord>(tx, id)?.map(ThreadRecord::into_thread)))
}

/// Inserts or replaces a thread.
pub fn put_thread(store: &Store, thread: &Thread) -> Result<()> {
    store.write_blocking(|tx| put(tx, &ThreadRecord::new(thread.clone())).map(|_| ()))
}

/// Applies `change` to a thread in one transaction; `None` when there is no such thread.
pub fn update_thread(
    store: &Store,
    id: &str,
    change: impl FnOnce(&mut Thread),
) -> Result<Option<Thread>> {
    store.write_blocking(|tx| {
        let Some(record) = get_for_update::<ThreadRecord>(tx, id)? else {
            return Ok(None);
        };
        let mut thread = record.into_thread();
        change(&mut thread);
        put(tx, &ThreadRecord::new(thread.clone()))?;
        Ok(Some(thread))
    })
}

/// Deletes a thread, its messages and its working memory. Returns the deleted message ids
/// (their vectors go too), or `None` when there is no such thread.
pub fn delete_thread(store: &Store, id: &str) -> Result<Option<Vec<String>>> {
    store.write_blocking(|tx| {
        if remove::<ThreadRecord>(tx, id)?.is_none() {
            return Ok(None);
        }
        let ids = collection::ids_by_for_update::<StoredMessage>(tx, 0, id, Order::Oldest)?;
        for m in &ids {
            remove::<StoredMessage>(tx, m)?;
        }
        remove::<WorkingMemory>(tx, &WorkingMemoryKey::Thread(id).key())?;
        Ok(Some(ids))
    })
}

/// Threads of a resource, newest first by creation.
pub fn threads_of(store: &Store, resource_id: &str) -> Result<Vec<Thread>> {
    store.read_blocking(|tx| {
        Ok(list_by::<ThreadRecord>(tx, 0, resource_id, Order::Newest)?
            .into_iter()
            .map(ThreadRecord::into_thread)
            .collect())
    })
}

/// A page of a resource's threads in creation order.
pub fn threads_page(store: &Store, resource_id: &str, window: Window) -> Result<Page<Thread>> {
    store.read_blocking(|tx| {
        let page = page_by::<ThreadRecord>(tx, 0, resource_id, &window, None)?;
        Ok(Page {
            items: page
                .items
                .into_iter()
                .map(ThreadRecord::into_thread)
                .collect(),
            total: page.total,
        })
    })
}

/// Saves messages (replacing any with the same id) and touches their threads' `updatedAt`.
pub fn save_messages(store: &Store, messages: &[StoredMessage], now: (&str, u64)) -> Result<()> {
    store.write_blocking(|tx| {
        let mut touched: Vec<&str> = Vec::new();
        for m in messages {
            put(tx, m)?;
            if !touched.contains(&m.thread_id.as_str()) {
                touched.push(&m.thread_id);
            }
        }
        for thread_id in touched {
            if let Some(record) = get_for_update::<ThreadRecord>(tx, thread_id)? {
                let mut thread = record.into_thread();
                thread.updated_at = now.0.to_string();
                thread.updated_ms = now.1;
                put(tx, &ThreadRecord::new(thread))?;
            }
        }
        Ok(())
    })
}

/// A thread's messages, oldest first.
pub fn messages_of_thread(store: &Store, thread_id: &str) -> Result<Vec<StoredMessage>> {
    store.read_blocking(|tx| list_by::<StoredMessage>(tx, 0, thread_id, Order::Oldest))
}

/// Ids of a thread's messages, oldest first (read from the index alone).
pub fn message_ids_of_thread(store: &Store, thread_id: &str) -> Result<Vec<String>> {
    store.read_blocking(|tx| collection::ids_by::<StoredMessage>(tx, 0, thread_id, Order::Oldest))
}

/// The `n` latest messages of a thread, oldest first.
pub fn latest_messages_of_thread(
    store: &Store,
    thread_id: &str,
    n: usize,
) -> Result<Vec<StoredMessage>> {
    store.read_blocking(|tx| {
        let mut ids = collection::ids_by::<StoredMessage>(tx, 0, thread_id, Order::Newest)?;
        ids.truncate(n);
        ids.reverse();
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(m) = get::<StoredMessage>(tx, &id)? {
                out.push(m);
            }
        }
        Ok(out)
    })
}

/// A resource's messages across its threads, oldest first.
pub fn messages_of_resource(store: &Store, resource_id: &str) -> Result<Vec<StoredMessage>> {
    store.read_blocking(|tx| list_by::<StoredMessage>(tx, 1, resource_id, Order::Oldest))
}

/// Messages by id (missing ids are skipped).
pub fn messages_by_id(store: &Store, ids: &[String]) -> Result<Vec<StoredMessage>> {
    store.read_blocking(|tx| {
        let mut out = Vec::new();
        for id in ids {
            if let Some(m) = get::<StoredMessage>(tx, id)? {
                out.push(m);
            }
        }
        Ok(out)
    })
}

/// Deletes messages by id; returns the ones that existed.
pub fn delete_messages(store: &Store, ids: &[String]) -> Result<Vec<StoredMessage>> {
    store.write_blocking(|tx| {
        let mut out = Vec::new();
        for id in ids {
            if let Some(m) = remove::<StoredMessage>(tx, id)? {
                out.push(m);
            }
        }
        Ok(out)
    })
}

pub fn get_working_memory(store: &Store, key: WorkingMemoryKey) -> Result<Option<String>> {
    store.read_blocking(|tx| Ok(get::<WorkingMemory>(tx, &key.key())?.map(|w| w.text)))
}

pub fn set_working_memory(
    store: &Store,
    key: WorkingMemoryKey,
    text: &str,
    now_ms: u64,
) -> Result<()> {
    store.write_blocking(|tx| {
        put(
            tx,
            &WorkingMemory {
                key: key.key(),
                text: text.to_string(),
                updated_ms: now_ms,
            },
        )
        .map(|_| ())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn thread(id: &str, resource: &str, ms: u64) -> Thread {
        Thread {
            id: id.into(),
            resource_id: resource.into(),
            title: format!("T {id}"),
            metadata: json!({}),
            created_at: format!("{ms}"),
            updated_at: format!("{ms}"),
            created_ms: ms,
            updated_ms: ms,
        }
    }

    fn message(id: &str, thread: &str, resource: &str, ms: u64) -> StoredMessage {
        StoredMessage {
            id: id.into(),
            thread_id: thread.into(),
            resource_id: resource.into(),
            created_ms: ms,
            message: json!({"id": id}),
        }
    }

    #[test]
    fn threads_messages_and_working_memory_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        put_thread(&store, &thread("t1", "r", 1)).unwrap();
        put_thread(&store, &thread("t2", "r", 2)).unwrap();
        put_thread(&store, &thread("t3", "other", 3)).unwrap();
        let ids: Vec<String> = threads_of(&store, "r")
            .unwrap()
            .into_iter()
            .map(|t| t.id)
            .collect();
        assert_eq!(ids, ["t2", "t1"]);
        let wire = serde_json::to_value(get_thread(&store, "t1").unwrap().unwrap()).unwrap();
        assert_eq!(wire["resourceId"], "r");
        assert!(wire.get("created_ms").is_none() && wire.get("createdMs").is_none());

        save_messages(
            &store,
            &[
                message("m2", "t1", "r", 20),
                message("m1", "t1", "r", 10),
                message("m3", "t2", "r", 15),
            ],
            ("later", 99),
        )
        .unwrap();
        let in_t1: Vec<String> = messages_of_thread(&store, "t1")
            .unwrap()
            .into_iter()
            .map(|m| m.id)
            .collect();
        assert_eq!(in_t1, ["m1", "m2"]);
        assert_eq!(messages_of_resource(&store, "r").unwrap().len(), 3);
        let t1 = get_thread(&store, "t1").unwrap().unwrap();
        assert_eq!(
            (t1.updated_at.as_str(), t1.updated_ms, t1.created_ms),
            ("later", 99, 1)
        );

        set_working_memory(&store, WorkingMemoryKey::Thread("t1"), "# Notes", 5).unwrap();
        set_working_memory(&store, WorkingMemoryKey::Resource("r"), "shared", 5).unwrap();
        assert_eq!(
            get_working_memory(&store, WorkingMemoryKey::Thread("t1"))
                .unwrap()
                .as_deref(),
            Some("# Notes")
        );

        let updated = update_thread(&store, "t2", |t| t.title = "Renamed".into()).unwrap();
        assert_eq!(updated.unwrap().title, "Renamed");
        assert!(update_thread(&store, "nope", |_| {}).unwrap().is_none());

        let deleted = delete_thread(&store, "t1").unwrap().unwrap();
        assert_eq!(deleted.len(), 2);
        assert!(get_thread(&store, "t1").unwrap().is_none());
        assert!(messages_of_thread(&store, "t1").unwrap().is_empty());
        assert_eq!(messages_of_resource(&store, "r").unwrap().len(), 1);
        assert!(
            get_working_memory(&store, WorkingMemoryKey::Thread("t1"))
                .unwrap()
                .is_none()
        );
        assert_eq!(
            get_working_memory(&store, WorkingMemoryKey::Resource("r"))
                .unwrap()
                .as_deref(),
            Some("shared")
        );
        assert!(delete_thread(&store, "t1").unwrap().is_none());

        let gone = delete_messages(&store, &["m3".into(), "zz".into()]).unwrap();
        assert_eq!(gone.len(), 1);
    }
}
