//! Vector records: `store \0 index → {dimension, metric}` and
//! `store \0 index \0 id → [dimension: u32][f32 × dimension][metadata JSON]`.

use redb::{ReadTransaction, ReadableTable, TableDefinition, WriteTransaction};
use serde_json::Value;

use super::{Result, StorageError};

pub(super) const INDEXES: TableDefinition<'static, &'static str, &'static [u8]> =
    TableDefinition::new("vector_indexes");
pub(super) const RECORDS: TableDefinition<'static, &'static [u8], &'static [u8]> =
    TableDefinition::new("vector_records");

/// A stored vector record.
#[derive(Debug, Clone, PartialEq)]
pub struct VectorRecord {
    pub id: String,
    pub vector: Vec<f32>,
    pub metadata: Value,
}

fn index_key(store: &str, index: &str) -> Result<String> {
    if store.contains('\0') || index.contains('\0') {
        return Err(StorageError::Invalid("names must not contain NUL".into()));
    }
    Ok(format!("{store}\0{index}"))
}

fn record_prefix(store: &str, index: &str) -> Vec<u8> {
    format!("{store}\0{index}\0").into_bytes()
}

fn record_key(prefix: &[u8], id: &str) -> Vec<u8> {
    let mut key = prefix.to_vec();
    key.extend_from_slice(id.as_bytes());
    key
}

fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    // The prefix ends with \0, so the same prefix ending in \x01 bounds it.
    let mut end = prefix.to_vec();
    *end.last_mut().expect("non-empty prefix") = 1;
    end
}

fn encode(vector: &[f32], metadata: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + vector.len() * 4 + 32);
    out.extend_from_slice(&(vector.len() as u32).to_le_bytes());
    for x in vector {
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.extend_from_slice(&serde_json::to_vec(metadata).expect("JSON serialises"));
    out
}

fn decode(id: String, bytes: &[u8]) -> Result<VectorRecord> {
    let bad = || StorageError::Codec(format!("vector record {id:?} is truncated"));
    let dim =
        u32::from_le_bytes(bytes.get(..4).ok_or_else(bad)?.try_into().expect("4 bytes")) as usize;
    let body = bytes.get(4..4 + dim * 4).ok_or_else(bad)?;
    let vector = body
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
        .collect();
    let metadata = serde_json::from_slice(&bytes[4 + dim * 4..])?;
    Ok(VectorRecord {
        id,
        vector,
        metadata,
    })
}

pub fn put_index(tx: &WriteTransaction, store: &str, index: &str, meta: &Value) -> Result<()> {
    tx.open_table(INDEXES)?.insert(
        index_key(store, index)?.as_str(),
        serde_json::to_vec(meta)?.as_slice(),
    )?;
    Ok(())
}

pub fn get_index(tx: &ReadTransaction, store: &str, index: &str) -> Result<Option<Value>> {
    match tx
        .open_table(INDEXES)?
        .get(index_key(store, index)?.as_str())?
    {
        Some(v) => Ok(Some(serde_json::from_slice(v.value())?)),
        None => Ok(None),
    }
}

/// [`get_index`] inside a write transaction (read-modify-write).
pub fn get_index_for_update(
    tx: &WriteTransaction,
    store: &str,
    index: &str,
) -> Result<Option<Value>> {
    match tx
        .open_table(INDEXES)?
        .get(index_key(store, index)?.as_str())?
    {
        Some(v) => Ok(Some(serde_json::from_slice(v.value())?)),
        None => Ok(None),
    }
}

/// Names of the indexes of `store`, sorted.
pub fn list_indexes(tx: &ReadTransaction, store: &str) -> Result<Vec<String>> {
    let table = tx.open_table(INDEXES)?;
    let lo = format!("{store}\0");
    let hi = format!("{store}\u{1}");
    let mut out = Vec::new();
    for entry in table.range(lo.as_str()..hi.as_str())? {
        let (k, _) = entry?;
        out.push(k.value()[lo.len()..].to_string());
    }
    Ok(out)
}

/// Deletes an index and all its records; returns whether it existed.
pub fn delete_index(tx: &WriteTransaction, store: &str, index: &str) -> Result<bool> {
    let existed = tx
        .open_table(INDEXES)?
        .remove(index_key(store, index)?.as_str())?
        .is_some();
    let prefix = record_prefix(store, index);
    let end = prefix_end(&prefix);
    tx.open_table(RECORDS)?
        .retain_in(prefix.as_slice()..end.as_slice(), |_, _| false)?;
    Ok(existed)
}

/// Inserts or replaces records.
pub fn put_records(
    tx: &WriteTransaction,
    store: &str,
    index: &str,
    records: &[VectorRecord],
) -> Result<()> {
    let mut table = tx.open_table(RECORDS)?;
    let prefix = record_prefix(store, index);
    for r in records {
        let key = record_key(&prefix, &r.id);
        table.insert(key.as_slice(), encode(&r.vector, &r.metadata).as_slice())?;
    }
    Ok(())
}

/// Deletes records by id.
pub fn delete_records(
    tx: &WriteTransaction,
    store: &str,
    index: &str,
    ids: &[String],
) -> Result<()> {
    let mut table = tx.open_table(RECORDS)?;
    let prefix = record_prefix(store, index);
    for id in ids {
        let key = record_key(&prefix, id);
        table.remove(key.as_slice())?;
    }
    Ok(())
}

/// Records by id (missing ones are skipped).
pub fn get_records(
    tx: &ReadTransaction,
    store: &str,
    index: &str,
    ids: &[String],
) -> Result<Vec<VectorRecord>> {
    let table = tx.open_table(RECORDS)?;
    let prefix = record_prefix(store, index);
    let mut out = Vec::new();
    for id in ids {
        let key = record_key(&prefix, id);
        if let Some(v) = table.get(key.as_slice())? {
            out.push(decode(id.clone(), v.value())?);
        }
    }
    Ok(out)
}

/// Every record of an index, in id order.
pub fn scan_records(tx: &ReadTransaction, store: &str, index: &str) -> Result<Vec<VectorRecord>> {
    let table = tx.open_table(RECORDS)?;
    let prefix = record_prefix(store, index);
    let end = prefix_end(&prefix);
    let mut out = Vec::new();
    for entry in table.range(prefix.as_slice()..end.as_slice())? {
        let (k, v) = entry?;
        let id = String::from_utf8_lossy(&k.value()[prefix.len()..]).into_owned();
        out.push(decode(id, v.value())?);
    }
    Ok(out)
}
